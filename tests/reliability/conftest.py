"""Fixtures of the reliability tests: one torch thread; a trained tiny run built once a module, copied per test."""

from __future__ import annotations

import shutil

import pytest
import torch
from reliability_helpers import trained_run


@pytest.fixture(autouse=True)
def _one_thread():
    # Trainer(threads=1) sets the process-wide count; put it back for whoever runs next.
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


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
