"""Helpers every test suite shares: the installed `vdm` script, the one-sentence check, hypothesis settings."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings


def installed_vdm() -> str | None:
    """The `vdm` console script of this interpreter's environment (.venv/bin/vdm), not whatever is on PATH."""
    exe = Path(sys.executable).with_name("vdm")
    return str(exe) if exe.is_file() else None


def one_sentence(err: str) -> str:
    """The single line of an error report, after checking it is one line and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def run_main(argv, capsys) -> tuple[int, str, str]:
    """`vdm ARGV` in this process -> (exit status, stdout, stderr); argparse's exits count too."""
    from vdm_cli.main import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def fast(n: int):
    """Hypothesis settings for n examples, reproducible (derandomized, no database) and without deadlines."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
