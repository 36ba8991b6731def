"""``vdm train``: a fresh run or a resumed one, in the terminal UI or with a progress bar."""

from __future__ import annotations

import os
import sys

from vdm.config import IDENTITY_KEYS, RESUME_MUST_MATCH, TrainConfig, fresh_config
from vdm_cli.errors import CommandError
from vdm_cli.faces import after_ui


def cmd_train(args) -> int:
    from dataclasses import fields

    from vdm import distributed
    from vdm.nets import summary
    from vdm.run import Run, open_run, sample_path
    from vdm.train import Trainer, TrainingStopped, new_run_dir

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.resume is not None:  # --resume "" is a mistake, not a fresh run
        run = open_run(args.resume)
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
    else:
        cfg = fresh_config(given)
        run_dir = new_run_dir(cfg)
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
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        total = trainer.steps_per_epoch * cfg.epochs
        bar = tqdm(total=total, initial=trainer.step, unit="step", dynamic_ncols=True, file=sys.stderr)
    first = (trainer.step, trainer.elapsed)  # for the rate: the steps this session has trained

    def progress(tr):
        """The bar follows the limit that binds: with --minutes, its total is the step the time limit
        reaches at the rate so far when that comes before the last epoch's (so % and ETA are honest)."""
        if bar is not None:
            limit = "epochs"
            if cfg.minutes:
                ds, dt = tr.step - first[0], tr.elapsed - first[1]
                if ds > 0 and dt > 0:
                    at_limit = tr.step + ds / dt * max(cfg.minutes * 60 - tr.elapsed, 0.0)
                    if at_limit < total:
                        bar.total, limit = max(int(at_limit), tr.step), f"{cfg.minutes:g} min"
                    else:
                        bar.total = total
            bar.update(tr.step - bar.n)
            bar.set_postfix(epoch=f"{tr.epoch + tr.batch_in_epoch / tr.steps_per_epoch:.2f}", limit=limit)

    try:
        result = trainer.run(progress)
    except TrainingStopped as e:
        if bar is not None:
            bar.close()
        raise CommandError(str(e)) from None
    finally:
        distributed.cleanup()  # leave the process group (torchrun) before the prints
    if bar is not None:
        if result["reason"] == "time limit":  # the limit that bound is reached: 100 %
            bar.total = bar.n
            bar.refresh()
        bar.close()
    ev = result.get("eval")
    print(f"stopped ({result['reason']}) at step {result['step']}, epoch {result['epoch']}.")
    if ev:
        from vdm.report import train_summary_line

        print(train_summary_line(ev, len(trainer.eval_data), run_dir))
    print(f"samples: {sample_path(run_dir)}")
    if result["reason"] in ("SIGINT", "SIGTERM"):
        # a stop asked for and carried out (checkpoint saved) is a success, status 0, as for --minutes;
        # the terminal UI stops its training child this way
        print(f"vdm train: stopped by {result['reason']} at step {result['step']} with a checkpoint saved; "
              f"continue with: vdm train --resume {run_dir}")
    return 0
