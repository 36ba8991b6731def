"""Fixtures of the reliability tests (issue 5): one torch thread, a reference run built once."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Trainer(threads=1) sets the process-wide count; put it back for whoever runs next.
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)
