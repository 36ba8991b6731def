"""A run directory, opened once and validated: the one way every face reads a run.

    run = open_run("runs/demo")          # config.json read and checked, or one ValueError sentence
    run.config                           # the TrainConfig the run was started with
    run.schedule                         # its noise schedule (made from the config, never stored twice;
                                         # a learned one from its newest checkpoint)
    den, meta = run.denoiser()           # the newest complete checkpoint's model, EMA weights if any
    records, bad = run.metrics()         # metrics.jsonl, bad lines counted and skipped
    run.latest_samples                   # samples/latest.png, or None

What is stored where, each once:

- ``config.json`` holds the :class:`~vdm.config.TrainConfig` (and the parameter count). The
  schedule is *asked for* there by name, T and alpha; :func:`schedule_of` turns that into
  the :class:`~vdm.schedule.Schedule`, for every reader alike.
- a checkpoint's sidecar holds the model's identity (:func:`identity_of`: model,
  prediction and the resolved ``Schedule.config()``), so a checkpoint file alone can
  be sampled from; opening it through a run checks that identity against the run's.
  A learned schedule (``--schedule learned``, vdm.continuous) changes in training: its
  ``Schedule.config()`` holds the gamma network's weights, so each sidecar carries the
  schedule of its own step, and the identity compared is its kind and T alone
  (vdm.checkpoint.check_compatible).
- ``metrics.jsonl`` (vdm.metrics) and ``samples/`` are written by the trainer alone.

The trainer writes config.json through :meth:`Run.write_config`; nothing else in vdm, the
terminal UI or the scenes reads config.json or a sidecar itself.
"""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from vdm.atomic import read_regular, refuse_hard_link
from vdm.config import TrainConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
TRAIN_LOG = "train.log"  # the output of a trainer the terminal UI started in the background
LOCK = ".lock"  # held (flock) by the one process writing the run; the kernel drops it when that process dies
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; refuse to read a huge file as one
MAX_POINTS_BYTES = 1 << 24  # samples/*.npy: at most 10,000 points of 2 float64, 160 kB
LATEST = "latest"  # samples/latest.png (and latest.npy for points): a copy of the newest
SAMPLE_FILE = re.compile(r"step-(\d{8,})\.png")  # samples/step-<step>.png, written at that step


def metrics_path(run_dir) -> Path:
    """<run>/metrics.jsonl."""
    return Path(run_dir) / METRICS


def train_log_path(run_dir) -> Path:
    """<run>/train.log."""
    return Path(run_dir) / TRAIN_LOG


def open_train_log(run_dir) -> int:
    """<run>/train.log opened for appending (a descriptor), never through a symbolic or hard link: appending
    through either would write a file outside the run (a ValueError names it)."""
    path = train_log_path(run_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link; a run's log is a file of its own.") from None
        raise
    try:
        refuse_hard_link(fd, path)
    except ValueError:
        os.close(fd)
        raise
    return fd


def checkpoints_dir(run_dir) -> Path:
    """<run>/checkpoints/."""
    return Path(run_dir) / CHECKPOINTS


def samples_dir(run_dir) -> Path:
    """<run>/samples/."""
    return Path(run_dir) / SAMPLES


def sample_path(run_dir, step: int | None = None, suffix: str = ".png") -> Path:
    """<run>/samples/step-<step, 8 digits><suffix>, or latest<suffix> for step None. Points are kept as
    ``.npy`` (float32 [N, 2], no pickle) beside their picture."""
    return samples_dir(run_dir) / (f"{LATEST}{suffix}" if step is None else f"step-{step:08d}{suffix}")


def sample_grids(run_dir) -> list[tuple[int, Path]]:
    """Every samples/step-<step>.png of a run, as (step, path) sorted by step (none: [])."""
    try:
        entries = list(samples_dir(run_dir).iterdir())
    except OSError:
        return []
    found = ((SAMPLE_FILE.fullmatch(p.name), p) for p in entries)
    return sorted((int(m.group(1)), p) for m, p in found if m)


def schedule_of(cfg):
    """The Schedule a TrainConfig asks for: make_schedule(cfg.schedule, cfg.T, cfg.alpha)."""
    from vdm.schedule import make_schedule

    return make_schedule(cfg.schedule, cfg.T, cfg.alpha)


def identity_of(cfg, schedule=None) -> dict:
    """What a checkpoint must match to be this run's model: model, prediction, schedule config."""
    schedule = schedule if schedule is not None else schedule_of(cfg)
    return {"model": cfg.model, "prediction": cfg.prediction, "schedule": schedule.config()}


@dataclass(frozen=True)
class Run:
    """A validated run directory. Paths are attributes; reading anything else goes through methods."""

    path: Path
    config: TrainConfig
    parameters: int | None = None

    @cached_property
    def schedule(self):
        """The run's Schedule; for a learned one, that of the newest complete checkpoint (the initial
        gamma's before the first), read once: a face that follows training opens the run again."""
        if self.config.schedule != "learned":
            return schedule_of(self.config)
        from vdm import checkpoint as ckpt
        from vdm.schedule import Schedule

        sidecar = self.checkpoint()
        if sidecar is None:
            return schedule_of(self.config)
        meta = ckpt.read_meta(sidecar)
        try:
            s = Schedule.from_config(meta["schedule"])
        except ValueError as e:
            raise ValueError(f"the checkpoint {sidecar.name} of {self.path} has no usable learned schedule ({str(e).rstrip('.')}).") from None
        if s.kind != "learned" or s.T != self.config.T:
            raise ValueError(f"the checkpoint {sidecar.name} of {self.path} is not of this run's learned schedule "
                             f"with T = {self.config.T}.")
        return s

    @property
    def identity(self) -> dict:
        return identity_of(self.config, self.schedule)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return metrics_path(self.path)

    @property
    def checkpoints_dir(self) -> Path:
        return checkpoints_dir(self.path)

    @property
    def samples_dir(self) -> Path:
        return samples_dir(self.path)

    @property
    def latest_samples(self) -> Path | None:
        p = sample_path(self.path)
        return p if p.is_file() else None

    def latest_points(self):
        """The newest samples of a 2-D run as float32 [N, 2] (samples/latest.npy), or None (none yet, or unreadable)."""
        return read_points(sample_path(self.path, None, ".npy"))

    def check_config_is_the_checkpoints(self, keys) -> None:
        """ValueError when config.json's value of one of ``keys`` is not the one its newest checkpoint
        was saved under (the sidecar's "config").

        A resume keeps these (vdm.config.RESUME_MUST_MATCH); one edited by hand to another valid value (a
        --weighting default on an edm run, another lr) would change the objective mid-run without a word.
        The model's identity (model, prediction, schedule, T, alpha) is the trainer's to check and name. A
        key the sidecar lacks (saved before that option existed) is not compared; no checkpoint or an
        unreadable sidecar is left to the trainer, which picks the newest complete one.
        """
        from vdm import checkpoint as ckpt

        side = self.checkpoint()
        if side is None:
            return
        try:
            saved = ckpt.read_meta(side).get("config")
        except ValueError:
            return
        if not isinstance(saved, dict):
            return
        for k in keys:
            if k in saved and saved[k] != getattr(self.config, k):
                raise ValueError(f"cannot resume {self.path}: its {CONFIG} says {k} {str(getattr(self.config, k))[:40]} "
                                 f"but its checkpoint {side.name} was trained with {str(saved[k])[:40]}; put {k} back "
                                 f"in {CONFIG} or start a new run.")

    def checkpoint(self) -> Path | None:
        """The sidecar of the newest complete checkpoint (both files there, SHA-256 agreeing), or None."""
        return self._checkpoint()[0]

    def _checkpoint(self) -> tuple[Path | None, str]:
        """(newest complete checkpoint or None, why there is none: '' or resolve's sentence)."""
        from vdm import checkpoint as ckpt

        try:
            if not ckpt.list_checkpoints(self.checkpoints_dir):
                return None, ""
            return ckpt.resolve(self.checkpoints_dir), ""
        except ValueError as e:
            return None, str(e)

    def denoiser(self, device="cpu", use_ema: bool = True, checkpoint: str | os.PathLike | None = None):
        """(Denoiser in eval mode, sidecar) of ``checkpoint`` or the run's newest one, refused if not this run's model."""
        from vdm.denoiser import load_denoiser

        source, why = (checkpoint, "") if checkpoint is not None else self._checkpoint()
        if source is None:
            raise ValueError(why or f"the run {self.path} has no complete checkpoint yet.")
        return load_denoiser(source, device, use_ema=use_ema, expected=self.identity)

    def metrics(self) -> tuple[list[dict], int]:
        """All records of metrics.jsonl and the number of lines skipped (vdm.metrics.read_all); a run without
        the log (it never trained, or the file was removed) is a ValueError saying so in words."""
        from vdm.metrics import read_all

        try:
            return read_all(self.metrics_path)
        except FileNotFoundError:
            raise ValueError(f"{self.path} has no metrics log ({METRICS} is missing), so nothing of its training "
                             "was recorded.") from None

    def test_images(self):
        """The run's held-out data: images uint8 [N, 3, 32, 32] or points float32 [N, 2] (vdm.data.load)."""
        from vdm import data as datasets

        c = self.config
        return datasets.load(c.data, "test", c.data_dir, n=c.data_n, seed=c.seed)

    def lock(self, fresh: bool = False) -> "RunLock":
        """Become the run's one writer, or a ValueError naming the writer there is.

        An advisory ``flock`` on ``<run>/.lock``, held until :meth:`RunLock.release` or the
        process's death (the kernel releases it, so a killed trainer never leaves a stale lock).
        ``fresh``: the run must not exist yet (a second ``--name X`` that lost the race is refused).
        Entries of the run that are links leading out of it are refused: vdm writes only inside.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        check_inside(self.path)
        held = RunLock.take(self.path / LOCK)
        if fresh and (self.config_path.exists() or self.config_path.is_symlink()):
            held.release()
            raise ValueError(f"run {self.path} already exists; pass --resume {self.path} to continue it or choose another --name.")
        return held

    def write_config(self) -> None:
        """config.json, atomically: the run's TrainConfig and parameter count."""
        from vdm.atomic import write_json

        record = asdict(self.config)
        if self.parameters is not None:
            record["parameters"] = self.parameters
        write_json(self.config_path, record)


class RunLock:
    """The run directory's writer lock (see :meth:`Run.lock`)."""

    def __init__(self, fd: int | None):
        self.fd = fd

    @classmethod
    def take(cls, path: Path) -> "RunLock":
        """Lock ``path`` (flock, exclusive, not waiting) and write this process's pid into it, or a ValueError
        naming the pid of the process that holds it.

        Both steps happen under a brief exclusive flock on the run directory itself, which every
        contender takes first: to anyone else, taking the lock and writing the pid are one step, so a
        refused writer reads the holder's pid, never an empty file or a former holder's.
        """
        import fcntl

        guard = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)  # held for a few system calls; closing the fd releases it
            return cls._take(path)
        finally:
            os.close(guard)

    @classmethod
    def _take(cls, path: Path) -> "RunLock":
        import errno
        import fcntl

        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # a read-only run: lock what is there (flock needs no write access); if nothing is,
            # no one can write here at all, and the first write says so naming its own file
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                return cls(None)
        else:
            try:  # the pid is written in place, through every name the file has
                refuse_hard_link(fd, path)
            except ValueError:
                os.close(fd)
                raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(f"run {path.parent} is being written by another vdm process (pid {holder[:12]}); "
                             "wait for it to finish or stop it, then try again.") from None
        try:  # the pid, for the refusal a second writer gets
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # read-only: the lock holds all the same
        return cls(fd)

    def release(self) -> None:
        """Unlock (idempotent). The file stays: removing it would let two writers lock two different files."""
        import fcntl

        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def read_points(path) -> "object | None":
    """float32 [N, 2] points saved by the trainer (numpy's format, pickles refused), or None when missing or not points."""
    import io

    import numpy as np

    try:  # read whole first: a FIFO or device at the name must not block or exhaust the reader
        a = np.load(io.BytesIO(read_regular(path, MAX_POINTS_BYTES, "points")), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if a.ndim != 2 or a.shape[1] != 2 or not np.issubdtype(a.dtype, np.floating):
        return None
    return a.astype(np.float32)


# A grid of the most samples vdm draws (10,000 tiles of 32 x 32 at scale 2) is about 6,600 x 6,600 pixels;
# a file claiming more is refused before it is decoded (a 30,000 x 30,000 PNG is 2.7 GB of pixels).
MAX_GRID_PIXELS = 1 << 26
MAX_GRID_BYTES = 1 << 28  # the file itself: a PNG of MAX_GRID_PIXELS stored without compression
_PNG = b"\x89PNG\r\n\x1a\n"


def read_grid(path) -> "object":
    """A sample grid (samples/*.png) as uint8 [H, W, 3]: the one image reader of every face, or a ValueError
    sentence naming the file and the reason.

    The file must be a regular file (a FIFO would block the reader, a device never end) of at most
    MAX_GRID_BYTES, and its PNG header (IHDR) must claim at most MAX_GRID_PIXELS pixels: width and height
    are read before anything is decoded.
    """
    import io
    import struct

    import numpy as np
    from PIL import Image

    data = read_regular(path, MAX_GRID_BYTES, "a PNG image")
    if len(data) < 24 or data[:8] != _PNG or data[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG image.")
    w, h = struct.unpack(">II", data[16:24])
    if w * h > MAX_GRID_PIXELS:
        raise ValueError(f"{path} is a {w:,} x {h:,} image, more than the {MAX_GRID_PIXELS:,} pixels a sample "
                         "grid can have, so it was not decoded.")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001  (cut short, corrupt, a PNG PIL cannot read: each one sentence)
        raise ValueError(f"{path} could not be read as a PNG image ({type(e).__name__}).") from None


def check_inside(run_dir: Path) -> None:
    """ValueError when an entry vdm writes in ``run_dir`` is a link leading out of it (or nowhere)."""
    root = run_dir.resolve()
    for name in (CONFIG, METRICS, CHECKPOINTS, SAMPLES, LOCK):
        p = run_dir / name
        if p.is_symlink():
            try:
                target = p.resolve()
            except (RuntimeError, OSError):  # a loop of links (RuntimeError before Python 3.13)
                raise ValueError(f"{p} is a loop of symbolic links; vdm writes only inside the run directory, so "
                                 "replace the link with a real file or folder.") from None
            if root not in target.parents:
                raise ValueError(f"{p} is a link to {str(target)[:120]}, outside the run; vdm writes only inside "
                                 "the run directory, so replace the link with a real file or folder.")


def check_name(name: str) -> None:
    """A run name is one folder name inside --runs-dir: not empty, '.', '..', absolute or with a separator."""
    bad = (name in (".", "..") or "\0" in name or os.sep in name or (os.altsep and os.altsep in name)
           or os.path.isabs(name) or len(name.encode(errors="replace")) > 255)
    if bad:
        raise ValueError(f"--name must be one folder name inside --runs-dir (no '/', '.' or '..'), got {name[:80]!r}.")


def _read_config(path: Path):
    p = path / CONFIG
    try:
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a directory"
            raise ValueError(f"{str(path)[:200]!r} {what}, so it is not a run directory.")
        if not (p.exists() or p.is_symlink()):
            raise ValueError(f"{str(path)[:200]!r} is not a run directory (no {CONFIG}).")
    except OSError as e:  # a name too long, a loop of links, no permission
        raise ValueError(f"{str(path)[:200]!r} cannot be read as a run directory ({e.strerror}).") from None
    text = read_regular(p, MAX_CONFIG_BYTES, "a run config")  # no FIFO, device or huge file
    try:
        d = json.loads(text)
        cfg = TrainConfig.from_dict(d)
        cfg.validate()
        schedule_of(cfg)  # T, alpha and kind must make a schedule
    except (ValueError, TypeError, RecursionError, UnicodeDecodeError, OverflowError) as e:
        raise ValueError(f"{p} is not a valid run config ({str(e)[:160].rstrip('.') or type(e).__name__}).") from None
    params = d.get("parameters")
    return cfg, params if isinstance(params, int) and not isinstance(params, bool) else None


def open_run(path: str | os.PathLike) -> Run:
    """Open and validate the run directory ``path``; a missing or bad config.json is one ValueError sentence."""
    if str(path) == "":  # Path("") is the current directory, never what was meant
        raise ValueError("an empty path is not a run directory; give the run's folder, e.g. runs/<name>.")
    path = Path(path)
    cfg, params = _read_config(path)
    return Run(path, cfg, params)


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory with a config.json (valid or not, of any kind): a run, not a checkpoint file."""
    try:  # whatever it is: open_run names a config.json that is a FIFO, a device or a folder
        return os.path.lexists(Path(path) / CONFIG)
    except OSError:
        return False


def new_run(cfg, parameters: int | None = None) -> Run:
    """The Run a fresh TrainConfig asks for: runs_dir/name (name: the date and time when empty), not yet written."""
    import time

    if cfg.name:
        check_name(cfg.name)
    name = cfg.name or time.strftime("%Y%m%d-%H%M%S")
    return Run(Path(cfg.runs_dir) / name, cfg, parameters)


def open_model(path: str | os.PathLike, device="cpu", use_ema: bool = True):
    """(Denoiser, sidecar, Run or None) for a run directory or a checkpoint file.

    A run directory goes through :func:`open_run` (its config checked, its newest complete
    checkpoint, which must be the run's model); a checkpoint file stands alone.
    """
    if is_run(path):
        run = open_run(path)
        den, meta = run.denoiser(device, use_ema)
        return den, meta, run
    # a checkpoint file: inside runs/<name>/checkpoints/ it is still that run's (and checked against it)
    from vdm.checkpoint import resolve
    from vdm.denoiser import load_denoiser

    home = resolve(path).parent.parent
    if is_run(home):
        run = open_run(home)
        den, meta = run.denoiser(device, use_ema, checkpoint=path)
        return den, meta, run
    den, meta = load_denoiser(path, device, use_ema=use_ema)
    return den, meta, None
