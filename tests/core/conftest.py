"""Fixtures of the core tests: small schedules, a tiny x_0 batch, a tiny trained run (built once)."""

from __future__ import annotations

import pytest

from vdm.schedule import Schedule


def _schedules(T: int = 40) -> dict:
    return {
        "constant": Schedule.constant(None, T),
        "linear": Schedule.linear(T, 1e-3, 0.2),
        "cosine": Schedule.cosine(T),
    }


@pytest.fixture(scope="session")
def schedules():
    """schedules(T) -> {kind: Schedule}: one of every kind, for what must hold for any schedule."""
    return _schedules


@pytest.fixture(params=["constant", "linear", "cosine"])
def any_schedule(request) -> Schedule:
    return _schedules()[request.param]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory trained for one short epoch through the real CLI: (workdir, run_dir, stdout)."""
    import contextlib
    import io
    import os

    from vdm_cli.main import main

    work = tmp_path_factory.mktemp("e2e")
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(out):
            rc = main(["train", "--name", "x", "--runs-dir", str(work / "runs"), "--epochs", "1", "--limit", "256",
                       "--T", "20", "--eval-size", "32", "--n-samples", "4", "--batch-size", "64", "--quiet"])
    finally:
        os.chdir(cwd)
    assert rc == 0, out.getvalue()
    return work, work / "runs" / "x", out.getvalue()
