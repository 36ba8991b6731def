"""Fixtures of the reliability tests: a trained tiny run built once a module, copied per test (one torch thread: tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest
from reliability_helpers import trained_run


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny run trained once per module (reliability_helpers.trained_run)."""
    return trained_run(tmp_path_factory.mktemp("base"))


@pytest.fixture
def run(base, tmp_path):
    """A fresh copy of ``base`` for one test to damage."""
    dst = tmp_path / "run"
    shutil.copytree(base, dst)
    return dst
