"""``vdm train``: a fresh run or a resumed one, in the terminal UI or with a progress bar."""

from __future__ import annotations

import os
import sys
from dataclasses import fields

from vdm.config import IDENTITY_KEYS, RESUME_MUST_MATCH, TrainConfig, fresh_config
from vdm_cli.errors import CommandError
from vdm_cli.faces import after_ui


def cmd_train(args) -> int:
    from vdm import distributed
    from vdm.nets import summary
    from vdm.run import Run
    from vdm.train import Trainer, TrainingStopped

    run_dir, cfg = _run_and_config(args)
    rank = distributed.from_env()
    if rank.enabled:  # under torchrun: plain progress from rank 0, silence from the others
        args.tui, args.no_tui = False, True
        if not rank.main:
            args.quiet = True
            sys.stdout = open(os.devnull, "w")
    if args.tui or (not args.no_tui and not args.quiet and sys.stdin.isatty() and sys.stdout.isatty()):
        from tui.training import train_with_tui

        return after_ui(args, train_with_tui(Run(run_dir, cfg), fresh=args.resume is None))
    trainer = Trainer(cfg, run_dir, resume=args.resume is not None)
    print(f"run: {run_dir}")
    print(f"schedule: {trainer.schedule.describe()}; device: {trainer.device}")
    print(summary(trainer.model.net))
    bar, result = None if args.quiet else ProgressBar(trainer), None
    try:
        result = trainer.run(bar.update if bar else None)
    except TrainingStopped as e:
        raise CommandError(str(e)) from None
    finally:
        if bar is not None:  # the limit that bound is reached: 100 %
            bar.close(full=result is not None and result["reason"] == "time limit")
        trainer.release()
        distributed.cleanup(together=result is not None)  # leave the process group (torchrun) before the prints
    _closing_lines(result, trainer, run_dir)
    return 0


def _run_and_config(args):
    """(run directory, TrainConfig): a fresh run from the flags given, or --resume's with the flags it may change.

    A resumed run keeps what RESUME_MUST_MATCH names (model, schedule, data, optimizer); a different
    value for one of those is refused, the others (epochs, minutes, eval...) take the flag.
    """
    from vdm.run import open_run
    from vdm.train import new_run_dir

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.resume is None:
        cfg = fresh_config(given)
        return new_run_dir(cfg), cfg
    run = open_run(args.resume)  # --resume "" is a mistake, not a fresh run
    run_dir, cfg = run.path, run.config
    # a must-match value edited by hand in the config (--weighting default on an edm run) is refused too
    run.check_config_is_the_checkpoints([k for k in RESUME_MUST_MATCH if k not in IDENTITY_KEYS])
    for k, v in given.items():
        if k in ("name", "runs_dir"):
            continue  # the run is the directory given to --resume
        if k not in RESUME_MUST_MATCH:
            setattr(cfg, k, v)
        elif v != getattr(cfg, k):
            have = getattr(cfg, k)
            have = "tuned" if k == "alpha" and have is None else have
            flag = "--" + k.replace("_", "-")
            raise CommandError(f"cannot resume {run_dir} with {k} {v} vs the run's {have}: a resumed run keeps its "
                               f"model, schedule, data and optimizer, so drop {flag} or start a new run.")
    return run_dir, cfg


class ProgressBar:
    """tqdm on stderr that follows the limit that binds.

    With --minutes, the bar's total is the step the time limit reaches at this session's rate so
    far, when that comes before the last epoch's, so that its % and ETA are honest.
    """

    def __init__(self, trainer):
        from tqdm import tqdm

        self.minutes = trainer.cfg.minutes
        self.total = trainer.steps_per_epoch * trainer.cfg.epochs
        self.first = (trainer.step, trainer.elapsed)  # the rate counts only what this session trained
        self.bar = tqdm(total=self.total, initial=trainer.step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def update(self, tr) -> None:
        limit = "epochs"
        if self.minutes:
            ds, dt = tr.step - self.first[0], tr.elapsed - self.first[1]
            if ds > 0 and dt > 0:
                at_limit = tr.step + ds / dt * max(self.minutes * 60 - tr.elapsed, 0.0)
                if at_limit < self.total:
                    self.bar.total, limit = max(int(at_limit), tr.step), f"{self.minutes:g} min"
                else:
                    self.bar.total = self.total
        self.bar.update(tr.step - self.bar.n)
        self.bar.set_postfix(epoch=f"{tr.epoch + tr.batch_in_epoch / tr.steps_per_epoch:.2f}", limit=limit)

    def close(self, full: bool = False) -> None:
        if full:
            self.bar.total = self.bar.n
            self.bar.refresh()
        self.bar.close()


def _closing_lines(result: dict, trainer, run_dir) -> None:
    """Why the run stopped, its held-out -ELBO with its error, and where its samples are."""
    from vdm.report import train_summary_line
    from vdm.run import sample_path
    from vdm.score import cheap_line

    print(f"stopped ({result['reason']}) at step {result['step']}, epoch {result['epoch']}.")
    if result.get("eval"):
        print(train_summary_line(result["eval"], len(trainer.eval_data), run_dir))
    print(f"samples: {sample_path(run_dir)}")
    if result.get("score"):
        print(cheap_line(result["score"], run_dir))
    if result["reason"] in ("SIGINT", "SIGTERM"):
        # a stop asked for and carried out (checkpoint saved) is a success, status 0, as for --minutes;
        # the terminal UI stops its training child this way
        print(f"vdm train: stopped by {result['reason']} at step {result['step']} with a checkpoint saved; "
              f"continue with: vdm train --resume {run_dir}")
