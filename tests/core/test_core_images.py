"""Image grids, PNGs and animations: layout, values and files."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vdm.images import as_hwc, grid, save_animation, save_png


def test_grid_layout_and_values():
    imgs = torch.zeros(5, 3, 4, 6, dtype=torch.uint8)
    for i in range(5):
        imgs[i, 0] = 10 * i      # red encodes the index
        imgs[i, 2, 1, 2] = 200   # one marked pixel: orientation survives
    g = grid(imgs, ncol=3, pad=1)
    assert g.dtype == np.uint8 and g.shape == (2 * (4 + 1) + 1, 3 * (6 + 1) + 1, 3)
    assert np.all(g[0] == 255) and np.all(g[:, 0] == 255)  # white padding
    for i in range(5):
        r, k = divmod(i, 3)
        tile = g[1 + r * 5: 1 + r * 5 + 4, 1 + k * 7: 1 + k * 7 + 6]
        assert np.all(tile[..., 0] == 10 * i) and tile[1, 2, 2] == 200 and tile[0, 0, 2] == 0
    assert np.all(g[6:10, 15:21] == 255)  # the sixth cell is empty
    big = grid(imgs, ncol=3, pad=1, scale=3)
    assert big.shape == (g.shape[0] * 3, g.shape[1] * 3, 3) and np.array_equal(big[::3, ::3], g)
    # floats in [-1, 1] map to the 256 levels
    f = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert as_hwc(f).reshape(-1).tolist() == [0, 128, 255]


def test_png_and_gif_files(tmp_path):
    img = grid(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), scale=2)
    p = save_png(img, tmp_path / "g.png")
    with Image.open(p) as im:
        assert np.array_equal(np.asarray(im), img)
    frames = [np.full((10, 12, 3), v, np.uint8) for v in (0, 120, 250)]
    gif = save_animation(frames, tmp_path / "a.gif")
    with Image.open(gif) as im:
        assert im.n_frames == 3 and im.size == (12, 10)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.gif", "g.png"]  # no temporary files left
