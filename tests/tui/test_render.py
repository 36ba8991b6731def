"""Plot downsampling, half-block images and the sample-grid crop."""

import numpy as np

from tui.image import fit, resize, to_strips
from tui.monitor import sample_crop
from tui.plot import Series, downsample, render


def test_downsample_keeps_min_max_per_bucket():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 100, 5000))
    y = rng.normal(size=5000)
    y[1234] = 50.0  # a spike must survive
    lo, hi, last = downsample(x, y, 40, 0.0, 100.0)
    b = np.minimum((x / 100 * 40).astype(int), 39)
    for k in range(40):
        sel = y[b == k]
        assert lo[k] == sel.min() and hi[k] == sel.max() and last[k] == sel[-1]
    assert hi.max() == 50.0


def test_downsample_unsorted_and_non_finite():
    x = np.array([5.0, 1.0, 3.0, np.nan, 2.0])
    y = np.array([1.0, 2.0, np.inf, 4.0, -1.0])
    lo, hi, _ = downsample(x, y, 5, 0.0, 5.0)
    assert lo[1] == 2.0 and lo[2] == -1.0 and np.isnan(lo[3]) and hi[4] == 1.0


def test_render_sizes_and_a_million_points():
    x = np.arange(1_000_000, dtype=float)
    strips = render([Series("a", x, np.exp(-x / 3e5), "cyan")], 60, 12, log=True)
    assert len(strips) == 12 and all(s.cell_length == 60 for s in strips)
    text = "".join(seg.text for s in strips for seg in s)
    assert "1.0e+06" in text and "⠀" in text


def test_half_blocks_two_pixels_per_cell():
    img = np.zeros((4, 2, 3), np.uint8)
    img[0] = [255, 0, 0]
    img[1] = [0, 0, 255]
    strips = to_strips(img, 2, 2)  # fits at scale 1: 2 cells wide, 2 rows
    assert len(strips) == 2
    seg = [s for s in strips[0] if s.text][0]
    assert seg.text == "▀"
    assert seg.style.color.triplet == (255, 0, 0) and seg.style.bgcolor.triplet == (0, 0, 255)


def test_fit_and_nearest_neighbour():
    assert fit(32, 32, 80, 40) == (64, 64)  # integer upscale
    assert fit(32, 32, 24, 20) == (24, 24)  # shrink to the width
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, 2)
    assert resize(img, 2, 2)[..., 0].tolist() == [[0, 2], [8, 10]]


def test_sample_crop_finds_the_grid_layout():
    from vdm.data import shapes
    from vdm.images import grid

    g = grid(shapes(16, "test")[0], scale=2)  # 4 x 4 samples, 32-pixel tiles, 1-pixel padding, doubled
    crop, k, n = sample_crop(g, 34, 17)
    assert n == 16 and k == 2 and crop.shape == (67, 67, 3)
    assert (crop == g[::2, ::2][:67, :67]).all()
    other = np.zeros((50, 70, 3), np.uint8)
    assert sample_crop(other, 30, 10)[1] == 0


def test_frame_cache_is_bounded_by_cells():
    from tui.image import HalfBlockImage

    w = HalfBlockImage(max_cells=2000)
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for i in range(50):
        w.prime(img, i, 32, 16)  # 32 x 16 cells = 512 a frame
    assert w._cells <= 2000 and len(w._cache) == 3
    assert [k[0] for k in w._cache] == [47, 48, 49]  # the newest stay
