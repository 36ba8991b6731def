"""The commands that open the faces: render and slides (animations/), tui (tui/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from vdm_cli.errors import CommandError


def cmd_render(args) -> int:
    from animations.render import render

    render(args.scene, args.quality, args.out, gif=args.gif, sections=args.sections,
           progress=lambda line: print(line, flush=True), run=args.run)
    return 0


def cmd_slides(args) -> int:
    from animations.render import export_slides, render, scene_names

    names = scene_names(args.scene)
    progress = lambda line: print(line, flush=True)  # noqa: E731
    if args.present:
        from animations.render import check_present

        check_present()  # before minutes of rendering: a machine that cannot present says so now
    if not args.no_render:
        render(args.scene, args.quality, args.out, gif=args.gif, sections=args.sections, progress=progress, run=args.run)
    # the PDF's pages are drawn at 1080p whatever --quality: with --no-render, with the run --run names
    export_slides(names, args.out, html=True, pdf=not args.no_pdf, progress=progress, run=args.run)
    if args.present:
        from animations.render import SCENES

        subprocess_args = [sys.executable, "-m", "manim_slides", "present", "--folder", str(Path(args.out) / "slides"),
                           *[SCENES[n][1] for n in names]]
        import subprocess

        return subprocess.run(subprocess_args).returncode
    return 0


def _serve_tui(args) -> int:
    """`vdm tui --serve`: textual-serve runs `vdm tui ...` (these arguments, less --serve) per browser visitor."""
    import shlex

    host = args.host.strip()
    if not host:  # the server would bind every interface for an empty address, without a word
        raise CommandError("--host is empty; give the address to listen on: localhost (this machine only), "
                           "or 0.0.0.0 for every network interface.")
    try:
        from tui.serve import LocalServer as Server  # textual-serve's, its page asking for nothing off this machine
    except ImportError:
        raise CommandError("vdm tui --serve needs textual-serve: .venv/bin/pip install textual-serve") from None
    argv = [sys.executable, "-m", "vdm_cli", "tui"]
    if args.run:
        argv.append(str(Path(args.run).resolve()))
    for flag, value in (("--checkpoint", args.checkpoint), ("--image", args.image)):
        if value:
            argv += [flag, str(Path(value).resolve())]
    argv += ["--index", str(args.index), "--T", str(args.T), "--seed", str(args.seed)] + (["--chain"] if args.chain else [])
    argv += ["--data", args.data] if args.data else []
    local = host == "localhost" or host == "::1" or host.startswith("127.")
    beyond = "" if local else "; it listens beyond this machine: anyone who can reach the address can open the UI"
    print(f"serving vdm tui on http://{host}:{args.port} (ctrl+c stops){beyond}", flush=True)
    Server(shlex.join(argv), host=host, port=args.port, title="vdm").serve()
    return 0


def _check_run_path(run) -> None:
    """A run the command names must be there: a folder that does not exist (a typo) or a file is one sentence.

    Only a run being started waits for its first record, and that is `vdm train`'s monitor (tui/training.py),
    which makes the folder first; `vdm tui` given a missing folder would otherwise wait for ever.
    """
    if not run:
        return
    p = Path(run)
    if not p.exists():
        raise CommandError(f"{p} does not exist; give a run's folder (runs/<name>) or a folder of runs (runs/).")
    if not p.is_dir():
        raise CommandError(f"{p} is a file, not a run directory; give the run's folder (runs/<name>) "
                           f"or a folder of runs (runs/).")


def cmd_tui(args) -> int:
    _check_run_path(args.run)
    if getattr(args, "serve", False):
        return _serve_tui(args)
    if args.image:
        from vdm import data as datasets  # torch: only imported when needed, so the monitor starts fast

        datasets.load_image(args.image)  # one sentence now rather than an empty screen
    tailer = None
    runs_root = None
    if args.run:
        p = Path(args.run)
        from tui.run_list import is_runs_folder

        if is_runs_folder(p):
            runs_root, args.run = p, None  # `vdm tui runs/`: the list of its runs
    if args.run and not args.chain:
        from vdm.run import metrics_path
        from vdm.tailer import MetricsTailer

        tailer = MetricsTailer(metrics_path(args.run))
        tailer.start_catch_up()  # a long log is read on other processes while the UI below imports
    from tui.app import ChainSource, run_app
    from tui.colour import truecolor_env

    truecolor_env()  # inside tmux, truecolor when the outer terminal has it (tmux does not pass COLORTERM)
    source = ChainSource(args.run, args.checkpoint, args.image, args.index, args.T, args.seed, data=args.data)
    start = "chain" if args.chain or not (args.run or runs_root) else ("runs" if runs_root else "monitor")
    # a finished run's closing report stays in the terminal, as `vdm train --no-tui` leaves it
    run_app(args.run, source=source, start=start, tailer=tailer, runs_root=runs_root, closing=True)
    return after_ui(args, 0)


def after_ui(args, code: int) -> int:
    """The exit status after the terminal UI; the `vdm` program leaves at once.

    Python's teardown of a process that loaded torch and a model takes seconds (2.2 s
    measured after a sampling chain), a wait after `q` with nothing left to do: the
    app has restored the terminal, and training runs in its own process.
    """
    if getattr(args, "leave_at_once", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
