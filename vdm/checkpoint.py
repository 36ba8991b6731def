"""Checkpoints: safetensors for tensors plus a JSON sidecar for everything else. Never pickle.

A checkpoint is a pair ``ckpt-<step>.safetensors`` / ``ckpt-<step>.json`` in
``<run>/checkpoints/``. The tensors are written first, then the sidecar, each
atomically; the sidecar records the tensors' SHA-256, so a checkpoint counts
only once both are complete and agree. A kill at any moment therefore leaves
the previous checkpoint loadable.

Tensor names: ``model/<param>``, ``ema/<param>``, ``optim/<index>/<key>``,
``rng/<name>``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from vdm.atomic import read_regular, remove_stale_temps, write_bytes, write_json
from vdm.config import MAX_STEP, MAX_T

FORMAT = "vdm-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{8,})\.json$")
_TENSORS = re.compile(r"^ckpt-\d{8,}\.safetensors$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few kB; refuse to read a huge file as one
OWED = ("eval", "sample", "end")  # what may still be due after a checkpoint (see Trainer._epoch_end)


@dataclass
class Checkpoint:
    meta: dict
    tensors: dict
    path: Path  # the sidecar

    def group(self, prefix: str) -> dict:
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(directory: str | os.PathLike, step: int, tensors: dict, meta: dict, keep: int = 2) -> Path:
    """Write checkpoint ``step`` into ``directory`` and keep only the newest ``keep``."""
    from safetensors.torch import save as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"ckpt-{step:08d}"
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = st_save(flat, metadata={"format": FORMAT})
    sidecar = dict(meta, format=FORMAT, version=VERSION, step=step,
                   tensors_file=f"{stem}.safetensors", sha256=hashlib.sha256(data).hexdigest())
    try:
        write_bytes(directory / f"{stem}.safetensors", data)
        write_json(directory / f"{stem}.json", sidecar)
    except BaseException:
        # a full disk or a signal between the two files: drop the tensors without a sidecar, so that
        # they take no space; older checkpoints are untouched (pruning comes only after success)
        if not (directory / f"{stem}.json").exists():
            with contextlib.suppress(OSError):
                (directory / f"{stem}.safetensors").unlink()
        raise
    prune(directory, keep, written=directory / f"{stem}.json")
    # what killed writers left behind: temporaries, and tensors whose sidecar never came
    remove_stale_temps(directory)
    for f in directory.glob("ckpt-*.safetensors"):
        if _TENSORS.match(f.name) and not f.with_suffix(".json").exists() and f.name != f"{stem}.safetensors":
            f.unlink(missing_ok=True)
    return directory / f"{stem}.json"


def prune(directory: Path, keep: int, written: Path | None = None) -> None:
    """Delete every checkpoint older than the newest ``keep`` complete ones (``written`` is known complete).

    Completeness is checked (both files, SHA-256 agreeing), not assumed from a sidecar's presence:
    dangling or corrupt sidecars never count towards ``keep``, so at least one loadable checkpoint
    always stays.
    """
    complete = 0
    for side in reversed(list_checkpoints(directory)):
        if complete >= keep:
            for f in (side, side.with_suffix(".safetensors")):
                f.unlink(missing_ok=True)
            continue
        if side == written:
            complete += 1
            continue
        try:
            read_meta(side, verify=True)
            complete += 1
        except ValueError:
            pass  # not complete: left for now, removed once enough complete ones are newer


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Sidecars in ``directory``, oldest first ([] when it is no folder); a loop of links is a ValueError naming it."""
    d = Path(directory)
    try:
        os.stat(d)
    except OSError as e:
        if e.errno == errno.ELOOP:  # is_dir() alone would call it "no checkpoints yet", and a resume start over
            raise ValueError(f"{d} is a loop of symbolic links, not a folder of checkpoints; replace it with "
                             "the folder itself.") from None
        return []
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _NAME.match(p.name)), key=lambda p: int(_NAME.match(p.name).group(1)))


def _subfolder_with_checkpoints(p: Path) -> Path:
    """A run directory's folder of checkpoints (the first subfolder holding any; vdm.run names it), else ``p``."""
    try:
        subs = sorted(s for s in p.iterdir() if s.is_dir() and not s.is_symlink())
    except OSError:
        return p
    return next((s for s in subs if list_checkpoints(s)), p)


def resolve(path: str | os.PathLike) -> Path:
    """A run directory, a checkpoints directory, a sidecar or a .safetensors file -> a sidecar path.

    For a directory, the newest checkpoint whose two files are complete and agree.
    """
    if str(path) == "":  # Path("") is the current directory, never what was meant (as vdm.run.open_run)
        raise ValueError("an empty path is not a checkpoint; give the run's folder (runs/<name>) or a ckpt-*.json file.")
    p = Path(path)
    try:
        if p.is_dir():
            d = p if list_checkpoints(p) else _subfolder_with_checkpoints(p)
            why = ""
            for cand in reversed(list_checkpoints(d)):
                try:
                    read_meta(cand, verify=True)
                    return cand
                except ValueError as e:
                    why = why or f" (the newest: {str(e).rstrip('.')})"
            raise ValueError(f"{p} holds no complete checkpoint{why}.")
        if p.suffix == ".safetensors":
            if p.is_file() and not p.with_suffix(".json").exists():
                # the tensors without their sidecar: a save cut short (the sidecar is written last)
                raise ValueError(f"checkpoint {str(path)[:200]} has no sidecar {p.with_suffix('.json').name} beside it "
                                 "(a save that did not finish); use the run directory, which picks the newest complete one.")
            p = p.with_suffix(".json")
        if not p.exists():
            raise ValueError(f"{str(path)[:200]} does not exist (give a run directory, runs/<name>, or a ckpt-*.json file).")
        if not p.is_file():
            raise ValueError(f"{str(path)[:200]} is neither a run directory nor a checkpoint file.")
    except OSError as e:  # a name too long, a loop of links, no permission
        raise ValueError(f"checkpoint {str(path)[:200]!r} cannot be read ({e.strerror or type(e).__name__}).") from None
    return p


def read_meta(sidecar: str | os.PathLike, verify: bool = False) -> dict:
    """The sidecar's JSON, checked for our format; with ``verify`` also the tensors' SHA-256."""
    sidecar = Path(sidecar)
    # a regular file of bounded size: a FIFO would block here forever, a link to /dev/zero never end
    data = read_regular(sidecar, MAX_SIDECAR_BYTES, "a vdm checkpoint sidecar")
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        raise ValueError(f"{sidecar} is not a vdm checkpoint sidecar ({type(e).__name__}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{sidecar} is not a vdm checkpoint sidecar (no format '{FORMAT}').")
    if meta.get("version") != VERSION:
        raise ValueError(f"{sidecar} has checkpoint version {repr(meta.get('version'))[:40]}; this vdm reads version {VERSION}.")
    # the tensors must sit beside the sidecar under our own name: no path out of the directory
    if not isinstance(meta.get("tensors_file"), str) or not _TENSORS.match(meta["tensors_file"]):
        raise ValueError(f"{sidecar} names no tensors file of the form ckpt-<step>.safetensors.")
    if not isinstance(meta.get("sha256"), str) or not _SHA.match(meta["sha256"]):
        raise ValueError(f"{sidecar} has no valid SHA-256 of its tensors.")
    if isinstance(meta.get("step"), bool) or not isinstance(meta.get("step"), int) or meta["step"] < 0:
        raise ValueError(f"{sidecar} has no valid step (got {repr(meta.get('step'))[:40]}).")
    if meta["step"] > MAX_STEP:
        raise ValueError(f"{sidecar} has an impossible step {meta['step']} (more than 2^53).")
    if not isinstance(meta.get("model"), str) or not isinstance(meta.get("schedule"), dict):
        raise ValueError(f"{sidecar} does not name its model and schedule.")
    T = meta["schedule"].get("T")
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= MAX_T:
        raise ValueError(f"{sidecar} has a schedule T of {repr(T)[:40]}; vdm allows 1..{MAX_T:,}.")
    if verify:
        tf = sidecar.parent / str(meta.get("tensors_file", ""))
        if not tf.is_file() or _sha256(tf) != meta.get("sha256"):
            raise ValueError(f"{tf} is missing or does not match its sidecar {sidecar.name}.")
    return meta


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint, refusing anything that is not a verified safetensors file of ours."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    sidecar = resolve(path)
    meta = read_meta(sidecar)
    tf = sidecar.parent / str(meta.get("tensors_file", ""))
    if tf.is_symlink():  # a link may lead anywhere; the tensors belong beside their sidecar
        raise ValueError(f"{tf}, the tensors of {sidecar.name}, is a symbolic link; vdm reads only the file itself.")
    if not tf.is_file():  # also no device or FIFO, which would read forever
        raise ValueError(f"{tf}, the tensors of {sidecar.name}, is missing or not a regular file.")
    try:
        data = tf.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {tf} ({e.strerror}).") from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ValueError(f"{tf} does not match the SHA-256 in {sidecar.name}: the file is corrupt or was replaced.")
    # Neither a pickle nor a zip is ever unpickled (safetensors parses only a JSON header and raw
    # bytes); this only names the mistake, and leaves everything shaped like safetensors to its check.
    kind = _foreign_kind(data)
    if kind:
        raise ValueError(f"{tf} is a pickle or zip archive ({kind}), not safetensors; vdm never loads pickles.")
    try:
        tensors = st_load(data)
    except (SafetensorError, Exception) as e:
        raise ValueError(f"{tf} is not a valid safetensors file ({type(e).__name__}).") from None
    if device != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return Checkpoint(meta, tensors, sidecar)


def _foreign_kind(data: bytes) -> str | None:
    """'a pickle' / 'a zip archive (torch.save)' when ``data`` is one, else None.

    A safetensors file starts with its header's length (8 bytes, little-endian) and the header's
    '{': such a file is left to safetensors even when its first byte happens to be 0x80 (a header
    of 128 mod 256 bytes), which a pickle's protocol opcode also is.
    """
    n = int.from_bytes(data[:8], "little") if len(data) >= 9 else -1
    if data[8:9] == b"{" and 0 < n <= len(data) - 8:
        return None
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "a zip archive (torch.save)"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle"
    return None


def set_owed(sidecar: Path, owed: list[str]) -> None:
    """Rewrite ``sidecar`` (atomically, its tensors untouched) with what is still due after it."""
    meta = read_meta(sidecar)
    write_json(sidecar, dict(meta, owed=[o for o in OWED if o in owed]))


def owed_of(meta: dict) -> list[str]:
    """What the trainer still owed when this checkpoint was written: a sub-list of OWED ([] if none or garbage)."""
    owed = meta.get("owed", [])
    return [o for o in OWED if o in owed] if isinstance(owed, list) else []


def check_compatible(meta: dict, expected: dict) -> None:
    """Refuse a checkpoint whose model, prediction or schedule differs from ``expected``, naming the difference."""
    for key in ("model", "prediction", "schedule"):
        if key in expected and _identity(key, meta.get(key)) != _identity(key, expected[key]):
            got, want = meta.get(key), expected[key]
            if key == "schedule" and isinstance(got, dict) and isinstance(want, dict):
                both_learned = got.get("kind") == want.get("kind") == "learned"
                diffs = [f"{k} {_short(got.get(k))} vs {_short(want.get(k))}" for k in ("kind", "T", "params")
                         if got.get(k) != want.get(k) and not (both_learned and k == "params")]
                raise ValueError(f"the checkpoint's schedule differs: {', '.join(diffs)} (checkpoint vs requested).")
            raise ValueError(f"the checkpoint is for {key} {got!r}, not {want!r}.")


def _identity(key: str, value):
    """What must agree between a checkpoint and its model: the value itself, except for a learned schedule,
    whose params (the gamma network's weights, vdm.continuous) change in training: there kind and T only."""
    if key == "schedule" and isinstance(value, dict) and value.get("kind") == "learned":
        return {"kind": "learned", "T": value.get("T")}
    return value


def _short(v) -> str:
    """A value for a sentence: a long list of params is named by its length."""
    if isinstance(v, (list, tuple)) and len(v) > 4:
        return f"[{len(v)} values]"
    return repr(v)[:80]


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer's state_dict into tensors (for safetensors) and JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim/{idx}/{k}"] = v
            else:
                scalars[f"{idx}/{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict, info: dict) -> None:
    """Load what optimizer_to_tensors split, after check_optimizer accepted it.

    Only the numbers (lr, betas, eps, weight_decay) come from the file; the optimizer's own
    switches (fused, capturable, amsgrad...) stay as this process built them.
    """
    state: dict = {}
    for name, v in tensors.items():
        idx, k = name.split("/", 1)
        state.setdefault(int(idx), {})[k] = v
    for name, v in info.get("scalars", {}).items():
        idx, k = name.split("/", 1)
        state.setdefault(int(idx), {})[k] = v
    groups = [dict(mine, params=g["params"], betas=tuple(g["betas"]), **{k: g[k] for k in ("lr", "eps", "weight_decay")})
              for g, mine in zip(info["param_groups"], opt.state_dict()["param_groups"])]
    opt.load_state_dict({"state": state, "param_groups": groups})
    # safetensors keeps tensors contiguous; a channels_last parameter's moments must share its
    # strides, or CUDA's fused Adam refuses them ("must have same dtype, device, and layout")
    for p, s in opt.state.items():
        for k, v in s.items():
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                s[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


# -- checking a checkpoint against the model before anything is loaded --------------------------
# The SHA-256 proves a file intact, not sane: a crafted or foreign checkpoint with an Adam moment of
# the wrong shape made fused CPU Adam write past its buffer (SIGSEGV). Every tensor is therefore
# checked by name, shape and dtype against what will receive it, and every refusal names the tensor.

_OPTIM_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step")
_GROUPS = ("model", "ema", "optim", "rng")


def check_weights(c: Checkpoint, group: str, expected: dict) -> list[str]:
    """Check (and convert in place) ``c``'s ``group`` against ``expected`` (a state_dict); returns notices.

    Names and shapes must match exactly. A floating tensor of another floating dtype is converted
    (a notice says so); anything else of another dtype (int64 for float32) is refused, as are
    non-finite weights, which are never "a good checkpoint", and statistics that cannot be
    negative and are (a BatchNorm's running_var, its num_batches_tracked).
    """
    got = c.group(group)
    missing, extra = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    if missing or extra:
        what = f"lacks {group}/{missing[0]}" if missing else f"has the unknown tensor {group}/{extra[0]}"
        raise ValueError(f"the checkpoint {c.path.name} {what}, so it does not fit this model.")
    converted = set()
    for k, want in expected.items():
        v = got[k]
        if tuple(v.shape) != tuple(want.shape):
            raise ValueError(f"the checkpoint {c.path.name}'s {group}/{k} has shape {list(v.shape)}, "
                             f"the model's {list(want.shape)}.")
        if v.dtype != want.dtype:
            if not (v.dtype.is_floating_point and want.dtype.is_floating_point):
                raise ValueError(f"the checkpoint {c.path.name}'s {group}/{k} is {v.dtype}, the model's {want.dtype}; "
                                 "vdm does not convert it.")
            v = v.to(want.dtype)
            converted.add(str(got[k].dtype))
            c.tensors[f"{group}/{k}"] = v
        if v.dtype.is_floating_point and not bool(v.isfinite().all()):
            raise ValueError(f"the checkpoint {c.path.name} has non-finite weights ({group}/{k}); it is not usable.")
        _check_statistic(c, f"{group}/{k}", v)
    return [f"note: {c.path.name}'s {group} weights were {', '.join(sorted(converted))} and were converted "
            f"to the model's dtype."] if converted else []


# statistics a normalisation layer keeps (BatchNorm's running variance and its count of batches):
# a variance below 0 makes x / sqrt(var + eps) NaN for every sample, a count below 0 is no count
_NON_NEGATIVE = {"running_var": "BatchNorm running variance", "num_batches_tracked": "count of batches"}


def _check_statistic(c: Checkpoint, name: str, v: torch.Tensor) -> None:
    """ValueError when ``name`` is a statistic that cannot be negative (running_var >= 0, counts >= 0) and is."""
    what = _NON_NEGATIVE.get(name.rsplit(".", 1)[-1])
    if what is not None and v.numel() and bool((v < 0).any()):
        raise ValueError(f"the checkpoint {c.path.name} has a negative {what} ({name}, as low as "
                         f"{float(v.min()):.3g}); it is not usable.")


def check_optimizer(c: Checkpoint, opt: torch.optim.Optimizer) -> None:
    """Refuse optimizer tensors or settings in ``c`` that do not fit ``opt`` (names, shapes, dtypes, groups)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    for name, v in c.group("optim").items():
        idx, _, key = name.partition("/")
        if not idx.isdigit() or int(idx) >= len(params) or key not in _OPTIM_KEYS:
            raise ValueError(f"the checkpoint {c.path.name} has the unknown optimizer tensor optim/{name[:60]}.")
        p = params[int(idx)]
        shape, dtype = ((), torch.float32) if key == "step" else (tuple(p.shape), p.dtype)
        if tuple(v.shape) != shape or v.dtype != dtype:
            raise ValueError(f"the checkpoint {c.path.name}'s optimizer tensor optim/{name} is {v.dtype} "
                             f"{list(v.shape)}, not {dtype} {list(shape)} like its parameter.")
    info = c.meta.get("optim")
    groups = info.get("param_groups") if isinstance(info, dict) else None
    if not isinstance(groups, list) or len(groups) != len(opt.param_groups) or not isinstance(info.get("scalars", {}), dict):
        raise ValueError(f"the checkpoint {c.path.name} has no optimizer settings of this model's form.")
    first = 0
    for g, mine in zip(groups, opt.param_groups):
        want = list(range(first, first + len(mine["params"])))
        first += len(mine["params"])
        if not isinstance(g, dict) or g.get("params") != want or not all(
                _number(g.get(k)) for k in ("lr", "eps", "weight_decay")) or not (
                isinstance(g.get("betas"), list) and len(g["betas"]) == 2 and all(map(_number, g["betas"]))):
            raise ValueError(f"the checkpoint {c.path.name}'s optimizer settings do not fit this model.")
    for name, v in info.get("scalars", {}).items():
        idx, _, key = str(name).partition("/")
        if not idx.isdigit() or int(idx) >= len(params) or key not in _OPTIM_KEYS or not _number(v):
            raise ValueError(f"the checkpoint {c.path.name} has the unknown optimizer setting {str(name)[:60]}.")


def check_rng(c: Checkpoint, expected: dict) -> None:
    """Each generator state of ``expected`` (name -> current state tensor) present in ``c`` with its shape and dtype."""
    for k, want in expected.items():
        v = c.tensors.get(f"rng/{k}")
        if v is None or v.dtype != want.dtype or tuple(v.shape) != tuple(want.shape):
            got = "missing" if v is None else f"{v.dtype} {list(v.shape)}"
            raise ValueError(f"the checkpoint {c.path.name}'s generator state rng/{k} is {got}, "
                             f"not {want.dtype} {list(want.shape)}.")
    unknown = sorted(k for k in c.tensors if k.split("/", 1)[0] not in _GROUPS or "/" not in k)
    if unknown:
        raise ValueError(f"the checkpoint {c.path.name} has the unknown tensor {unknown[0][:60]}.")


def check_progress(c: Checkpoint) -> tuple[int, int, float]:
    """(epoch, batch_in_epoch, elapsed) from the sidecar, each of the right type and in range."""
    m = c.meta
    for k in ("epoch", "batch_in_epoch"):
        v = m.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_STEP:
            raise ValueError(f"the checkpoint {c.path.name} has no valid {k} (got {repr(v)[:40]}).")
    elapsed = m.get("elapsed", 0.0)
    if not _number(elapsed) or elapsed < 0:
        raise ValueError(f"the checkpoint {c.path.name} has no valid elapsed time (got {repr(elapsed)[:40]}).")
    return m["epoch"], m["batch_in_epoch"], float(elapsed)


def _number(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
