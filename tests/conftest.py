"""Fixtures of every suite: one torch thread per test, and the process-wide count put back after it."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Two cores shared with other jobs: a second thread mostly spins (4x slower elementwise ops measured), and
    # exact comparisons need every run to split its work the same way. A Trainer with --threads sets the
    # process-wide count: put it back for whoever runs next.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
