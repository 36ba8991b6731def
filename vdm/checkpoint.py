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
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from vdm.atomic import remove_stale_temps, write_bytes, write_json

FORMAT = "vdm-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{8,})\.json$")
_TENSORS = re.compile(r"^ckpt-\d{8,}\.safetensors$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few kB; refuse to read a huge file as one


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
    kept = list_checkpoints(directory)
    for old in kept[:-keep] if keep else []:
        for f in (old, old.with_suffix(".safetensors")):
            f.unlink(missing_ok=True)
    # what killed writers left behind: temporaries, and tensors whose sidecar never came
    remove_stale_temps(directory)
    for f in directory.glob("ckpt-*.safetensors"):
        if _TENSORS.match(f.name) and not f.with_suffix(".json").exists() and f.name != f"{stem}.safetensors":
            f.unlink(missing_ok=True)
    return directory / f"{stem}.json"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Sidecars in ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _NAME.match(p.name)), key=lambda p: int(_NAME.match(p.name).group(1)))


def resolve(path: str | os.PathLike) -> Path:
    """A run directory, a checkpoints directory, a sidecar or a .safetensors file -> a sidecar path.

    For a directory, the newest checkpoint whose two files are complete and agree.
    """
    p = Path(path)
    try:
        if p.is_dir():
            d = p / "checkpoints" if (p / "checkpoints").is_dir() else p
            for cand in reversed(list_checkpoints(d)):
                try:
                    read_meta(cand, verify=True)
                    return cand
                except ValueError:
                    continue
            raise ValueError(f"{p} holds no complete checkpoint.")
        if p.suffix == ".safetensors":
            p = p.with_suffix(".json")
        if not p.exists():
            raise ValueError(f"checkpoint {str(path)[:200]} does not exist.")
        if not p.is_file():
            raise ValueError(f"{str(path)[:200]} is neither a run directory nor a checkpoint file.")
    except OSError as e:  # a name too long, a loop of links, no permission
        raise ValueError(f"checkpoint {str(path)[:200]!r} cannot be read ({e.strerror or type(e).__name__}).") from None
    return p


def read_meta(sidecar: str | os.PathLike, verify: bool = False) -> dict:
    """The sidecar's JSON, checked for our format; with ``verify`` also the tensors' SHA-256."""
    sidecar = Path(sidecar)
    try:
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise ValueError(f"{sidecar} is not a vdm checkpoint sidecar (larger than {MAX_SIDECAR_BYTES} bytes).")
        meta = json.loads(sidecar.read_bytes())
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
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
    if not isinstance(meta.get("model"), str) or not isinstance(meta.get("schedule"), dict):
        raise ValueError(f"{sidecar} does not name its model and schedule.")
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
    if not tf.is_file():  # also no device or FIFO behind a link, which would read forever
        raise ValueError(f"{tf}, the tensors of {sidecar.name}, is missing or not a regular file.")
    try:
        data = tf.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {tf} ({e.strerror}).") from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise ValueError(f"{tf} does not match the SHA-256 in {sidecar.name}: the file is corrupt or was replaced.")
    # pickle protocols 2..5 start with 0x80; torch.save writes a zip archive. Neither is ever unpickled:
    # safetensors parses only a JSON header and raw bytes, this just names the mistake.
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise ValueError(f"{tf} is a pickle or zip archive (torch.save), not safetensors; vdm never loads pickles.")
    try:
        tensors = st_load(data)
    except (SafetensorError, Exception) as e:
        raise ValueError(f"{tf} is not a valid safetensors file ({type(e).__name__}).") from None
    if device != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return Checkpoint(meta, tensors, sidecar)


def check_compatible(meta: dict, expected: dict) -> None:
    """Refuse a checkpoint whose model, prediction or schedule differs from ``expected``, naming the difference."""
    for key in ("model", "prediction", "schedule"):
        if key in expected and meta.get(key) != expected[key]:
            got, want = meta.get(key), expected[key]
            if key == "schedule" and isinstance(got, dict) and isinstance(want, dict):
                diffs = [f"{k} {got.get(k)!r} vs {want.get(k)!r}" for k in ("kind", "T", "params") if got.get(k) != want.get(k)]
                raise ValueError(f"the checkpoint's schedule differs: {', '.join(diffs)} (checkpoint vs requested).")
            raise ValueError(f"the checkpoint is for {key} {got!r}, not {want!r}.")


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
    state: dict = {}
    for name, v in tensors.items():
        idx, k = name.split("/", 1)
        state.setdefault(int(idx), {})[k] = v
    for name, v in info.get("scalars", {}).items():
        idx, k = name.split("/", 1)
        state.setdefault(int(idx), {})[k] = v
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in info["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
