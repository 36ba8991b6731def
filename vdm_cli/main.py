"""The ``vdm`` program: parse, then run one command; every failure the user can fix is one sentence.

Bad input ends with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

from vdm_cli.args import build_parser, command_word
from vdm_cli.errors import EXIT_USAGE, CommandError


def cpu_env() -> None:
    """OpenMP threads that sleep rather than spin while they wait (before torch loads libgomp).

    torch's default (spinning) collapses when other processes share the cores: a training step
    of the assignment's network took 2-5x longer with 2 spinning threads on 2 busy cores
    (benchmarks/RESULTS.md). Sleeping costs little on an idle machine. An explicit setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv=None) -> int:
    """The command line; a Ctrl-C at any moment (torch's import takes seconds) is status 130, never a traceback.

    Three phases for the `vdm` program itself (argv None). While torch loads, a Ctrl-C ends the
    process at once (status 130): a KeyboardInterrupt raised inside torch's C++ start-up callbacks
    is uncatchable there (pybind11 calls std::terminate, status -6), and nothing is written yet.
    While the command runs, Ctrl-C is a KeyboardInterrupt, so that what it writes is finished or
    removed. Once it is done, a late Ctrl-C is ignored: the interpreter's shutdown would restore
    the default action and turn a finished command into death by signal.
    """
    console = argv is None  # the `vdm` program itself, not a caller in the same process
    argv = sys.argv[1:] if argv is None else list(argv)
    command = f"vdm {command_word(argv)}".strip()
    if console:
        signal.signal(signal.SIGINT, lambda signum, frame: _leave_interrupted(command))
    try:
        cpu_env()
        parser = build_parser(only=command_word(argv))  # imports torch for most commands
        args = parser.parse_args(argv)
        args.leave_at_once = console
        if console:
            if args.command != "tui":  # torch now, while a Ctrl-C still ends the process at once: the choices
                # (vdm.config) no longer import it, and a KeyboardInterrupt inside its C++ start-up is
                # uncatchable (pybind11 calls std::terminate, status -6)
                try:
                    import torch  # noqa: F401
                except ImportError:
                    pass  # a command that needs it says so in its own sentence
            signal.signal(signal.SIGINT, signal.default_int_handler)
        status = _run_command(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted.", file=sys.stderr)
        status = 130
    finally:
        if console:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


def _leave_interrupted(command: str):
    """SIGINT before the command has begun: say so and leave now (see main)."""
    os.write(2, f"{command}: interrupted.\n".encode())
    os._exit(130)


def _run_command(args) -> int:
    """args.func, its failures mapped to one sentence and an exit status."""
    try:
        return args.func(args)
    except (CommandError, ValueError) as e:
        print(f"vdm {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `vdm ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except OSError as e:
        reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}.get(e.errno, e.strerror or str(e))
        where = f" at {e.filename}" if e.filename else ""
        print(f"vdm {args.command}: {reason}{where}; nothing already saved was changed.", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"vdm {args.command}: not enough memory for this request; ask for fewer images or steps.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vdm {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
