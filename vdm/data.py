"""Data sets: images as uint8 tensors [N, 3, 32, 32] ([-1, 1] floats only inside a step), 2-D points
as float32 [N, 2] (vdm.points).

``shapes``: the embedded default, made by code, no download. Coloured discs,
squares and triangles on a shaded background, deterministic in (split, index).
``cifar10``: torchvision's CIFAR-10, read from ``data_dir`` (downloaded there
when missing and the network allows).
``folder``: every PNG/JPEG in a folder, centre-cropped and resized to 32x32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vdm import points
from vdm.config import DATASETS, POINTS_TEST, POINTS_TRAIN, is_points

SIZE = 32
SHAPES_TRAIN = 20000
SHAPES_TEST = 2000

# Saturated colours far apart, so a few minutes of training can tell them apart.
_PALETTE = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 250, 250], [20, 20, 20],
], dtype=np.float32)


def shape_labels(n: int, split: str = "train", seed: int = 0) -> dict[str, np.ndarray]:
    """What the generator drew for each of the n images of :func:`shapes`, from the same stream.

    kind: 0 disc, 1 square, 2 triangle; colour: the shape's palette index (0..7); top, bottom: the
    background's palette indices at the top and the bottom of its vertical gradient (0..9); r, cx, cy:
    the shape's size and centre in pixels (float32).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    # One row of uniforms per image, drawn row by row: image i is the same whatever n is,
    # so --limit N takes the first N images of the full set.
    u = rng.random((n, 7))
    return {
        "top": (u[:, 0] * len(_PALETTE)).astype(np.int64),
        "bottom": (u[:, 1] * len(_PALETTE)).astype(np.int64),
        "kind": (u[:, 2] * 3).astype(np.int64),
        "colour": (u[:, 3] * (len(_PALETTE) - 2)).astype(np.int64),
        "r": (6 + 5 * u[:, 4]).astype(np.float32),
        "cx": (10 + 12 * u[:, 5]).astype(np.float32),
        "cy": (10 + 12 * u[:, 6]).astype(np.float32),
    }


def render_shapes(labels: dict[str, np.ndarray], shape: bool = True) -> torch.Tensor:
    """The images uint8 [N, 3, 32, 32] that :func:`shape_labels`' attributes describe; ``shape=False``: the
    background gradient alone (0.45 of the palette colour, top to bottom), without the shape."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    bg_a = _PALETTE[labels["top"]] * 0.45
    bg_b = _PALETTE[labels["bottom"]] * 0.45
    ramp = (yy / SIZE)[None, :, :, None]
    img = bg_a[:, None, None, :] * (1 - ramp) + bg_b[:, None, None, :] * ramp
    if shape:
        kind = labels["kind"]
        colour = _PALETTE[labels["colour"]]
        r, cx, cy = (labels[k][:, None, None] for k in ("r", "cx", "cy"))
        dx, dy = xx[None] - cx, yy[None] - cy
        disc = dx ** 2 + dy ** 2 <= r ** 2
        square = (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
        # upward triangle: below the apex, inside both slanted edges
        tri = (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
        mask = np.where(kind[:, None, None] == 0, disc, np.where(kind[:, None, None] == 1, square, tri))
        img = np.where(mask[..., None], colour[:, None, None, :], img)
    return torch.from_numpy(np.clip(np.rint(img), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def shapes(n: int, split: str = "train", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of the procedural data set and their labels (0 disc, 1 square, 2 triangle).

    Each image: a vertical two-colour background gradient and one shape of a
    palette colour, random position and size (:func:`shape_labels` has them all).
    The train and test splits use disjoint random streams.
    """
    labels = shape_labels(n, split, seed)
    return render_shapes(labels), torch.from_numpy(labels["kind"])


def cifar10(data_dir: str | os.PathLike, split: str = "train", download: bool = True) -> torch.Tensor:
    """CIFAR-10 through torchvision as uint8 [N, 3, 32, 32].

    Reads torchvision's on-disk layout (``cifar-10-batches-py`` under data_dir);
    when it is missing and ``download`` is set, torchvision fetches it.
    """
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise ValueError(f"CIFAR-10 needs torchvision, which failed to import ({e}).") from None
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    root = Path(data_dir)
    train = split == "train"
    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise ValueError(f"CIFAR-10 was not found in {root} (expected {root / 'cifar-10-batches-py'}).") from None
        try:
            ds = CIFAR10(str(root), train=train, download=True)
        except Exception as e:
            raise ValueError(
                f"CIFAR-10 is not in {root} and could not be downloaded ({type(e).__name__}); "
                f"copy cifar-10-batches-py there or pass --data-dir."
            ) from None
    except Exception as e:
        raise ValueError(f"CIFAR-10 in {root} could not be read ({type(e).__name__}: {e}).") from None
    return torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """One image file as uint8 [3, 32, 32]: centre-cropped to a square, resized with antialiasing."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p} is not a file." if p.exists() else f"image file {p} does not exist.")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError:  # not an OSError: PIL refuses to decode it, and so do we
        raise ValueError(f"{p} is too large an image to read (more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels).") from None
    except (UnidentifiedImageError, OSError, ValueError, MemoryError) as e:
        raise ValueError(f"{p} is not an image that can be read ({str(e)[:160]}).") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def folder(path: str | os.PathLike) -> torch.Tensor:
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"image folder {p} does not exist.")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise ValueError(f"image folder {p} holds no .png or .jpg files.")
    return torch.stack([load_image(f) for f in files])


def load(name: str = "shapes", split: str = "train", data_dir: str | os.PathLike = "data",
         limit: int | None = None, n: int = 0, seed: int = 0) -> torch.Tensor:
    """The named data set's split: uint8 [N, 3, 32, 32] for images, float32 [N, 2] for points.

    ``n`` and ``seed`` make a point set: n training points (0: POINTS_TRAIN; the test split always
    has POINTS_TEST), drawn from streams of the seed.
    """
    if is_points(name):
        x = points.make(name, (n or POINTS_TRAIN) if split == "train" else POINTS_TEST, split, seed)
    elif name == "shapes":
        x, _ = shapes(limit or (SHAPES_TRAIN if split == "train" else SHAPES_TEST), split)
    elif name == "cifar10":
        x = cifar10(data_dir, split)
    elif name == "folder":
        x = folder(data_dir)
    else:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}.")
    return x[:limit] if limit else x


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float in [-1, 1] on the 256 levels k/127.5 - 1; points (already float) unchanged."""
    if x.dtype != torch.uint8:
        return x.float()
    return x.float() / 127.5 - 1.0


def shape_of(name: str) -> tuple[int, ...]:
    """The shape of one item of the data set: (2,) for points, (3, 32, 32) for images."""
    return (2,) if is_points(name) else (3, SIZE, SIZE)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8, rounding to the nearest level and clipping outside."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
