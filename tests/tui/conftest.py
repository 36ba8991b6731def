"""Fixtures of the terminal UI tests."""

import pytest

from tui_fixtures import FakeNvml


@pytest.fixture
def fake_nvml():
    return FakeNvml()


@pytest.fixture
def anyio_backend():
    # async tests run through anyio's pytest plugin (installed with Textual's dependencies), on asyncio
    return "asyncio"
