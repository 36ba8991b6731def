"""Writing images: grids, strips, GIF and MP4, with nearest-neighbour upscaling so pixels stay sharp."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from vdm.atomic import atomic_path
from vdm.data import to_uint8


def as_hwc(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] (float) or uint8 -> uint8 numpy [B, H, W, 3]; float images with NaN or
    infinite values are a ValueError (they would become black pixels that look like a picture)."""
    if images.dtype != torch.uint8:
        bad = int((~torch.isfinite(images)).sum())
        if bad:
            raise ValueError(f"{bad} of the {images.numel()} pixel values to draw are NaN or infinite (the model's "
                             "output is not finite), so no image was written.")
        images = to_uint8(images)
    return images.permute(0, 2, 3, 1).cpu().numpy()


def grid(images: torch.Tensor, ncol: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile [B, 3, H, W] into one uint8 array [rows*(H+pad)+pad, ..., 3], upscaled by ``scale``."""
    x = as_hwc(images)
    b, h, w, c = x.shape
    ncol = ncol or math.ceil(math.sqrt(b))
    nrow = math.ceil(b / ncol)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(b):
        r, k = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = x[i]
    return upscale(out, scale)


POINT_VIEW = 2.0  # a scatter shows [-POINT_VIEW, POINT_VIEW]^2: every 2-D data set lies inside (vdm.points)


def scatter(points, reference=None, size: int = 320, view: float = POINT_VIEW, dot: int = 2) -> np.ndarray:
    """A picture [size, size, 3] of a 2-D cloud: the ``reference`` cloud (the data) as grey density shading,
    ``points`` (samples) as orange density shading over it, axes through 0 and a frame in faint grey.

    Each cloud is binned to squares of ``dot`` pixels; a square holding points is shaded
    0.45 + 0.55 log(1 + count) / log(1 + max count), so a lone point shows and dense parts stand out.
    Points outside the view are left out.
    """
    cells = size // dot
    img = np.full((cells * dot, cells * dot, 3), 255.0)
    mid = cells * dot // 2
    img[mid, :] = img[:, mid] = 225.0
    img[[0, -1], :] = img[:, [0, -1]] = 200.0

    def shade(cloud) -> np.ndarray:
        a = np.asarray(cloud.cpu() if torch.is_tensor(cloud) else cloud, dtype=np.float64).reshape(-1, 2)
        col = np.floor((a[:, 0] + view) / (2 * view) * cells).astype(np.int64)
        row = np.floor((view - a[:, 1]) / (2 * view) * cells).astype(np.int64)
        ok = (col >= 0) & (col < cells) & (row >= 0) & (row < cells) & np.isfinite(a).all(1)
        h = np.bincount(row[ok] * cells + col[ok], minlength=cells * cells).reshape(cells, cells).astype(np.float64)
        alpha = np.where(h > 0, 0.45 + 0.55 * np.log1p(h) / np.log1p(max(h.max(), 1.0)), 0.0)
        return upscale(alpha, dot)

    for cloud, colour in ((reference, (150, 150, 150)), (points, (230, 110, 20))):
        if cloud is not None:
            a = shade(cloud)[..., None]
            img = img * (1 - a) + np.array(colour, dtype=np.float64) * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    return img if scale == 1 else img.repeat(scale, 0).repeat(scale, 1)


def save_png(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write atomically: a reader never sees half a PNG."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path


def save_npy(array: np.ndarray, path: str | os.PathLike) -> Path:
    """numpy's .npy, written atomically (a plain array: read back with allow_pickle=False)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    return path


def save_animation(frames: list[np.ndarray], path: str | os.PathLike, fps: int = 20) -> Path:
    """A GIF (or MP4 when the name ends in .mp4) of uint8 frames [H, W, 3], written atomically."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            # H.264 wants even sizes
            frames = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]
            iio.imwrite(tmp, np.stack(frames), extension=".mp4", fps=fps, codec="libx264")
        else:
            iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
    return path
