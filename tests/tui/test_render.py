"""Plot downsampling, half-block images and the sample-grid crop."""

import numpy as np

from tui.image import SEPARATOR, fit, grid_tiles, mosaic, resize, to_strips
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
    assert fit(32, 32, 80, 40) == (80, 80)  # the largest scale that fits, not rounded down to 2
    assert fit(32, 32, 50, 30) == (50, 50)  # 120x36's box: was 32 x 32, a fifth of the box
    assert fit(32, 32, 24, 20) == (24, 24)  # shrink to the width
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, 2)
    assert resize(img, 2, 2)[..., 0].tolist() == [[0, 2], [8, 10]]


def test_grid_tiles_and_a_mosaic_that_shows_every_sample_with_separators():
    from vdm.data import shapes
    from vdm.images import grid

    x = shapes(16, "test")[0]
    g = grid(x, scale=2)  # 4 x 4 samples, 32-pixel tiles, 1-pixel padding, doubled
    tiles = grid_tiles(g)
    assert tiles.shape == (16, 32, 32, 3)
    assert (tiles[5] == g[::2, ::2][1 + 33:1 + 33 + 32, 1 + 33:1 + 33 + 32]).all()
    assert grid_tiles(np.zeros((50, 70, 3), np.uint8)) is None
    # the monitor's sample box at 80x24 is about 34 x 8 cells: it used to show 1 of 16
    img, n = mosaic(tiles, 34, 8)
    assert n >= 8 and img.shape[1] <= 34 and img.shape[0] <= 16
    # at 200x50 (about 76 x 30 cells) all 16, each larger than 12 pixels
    img, n = mosaic(tiles, 76, 30)
    assert n == 16 and img.shape[0] <= 60 and img.shape[1] <= 76
    s = (img.shape[1] - 1) // 4 - 1
    assert s >= 12
    # separators survive: every (s + 1)-th column is the separator colour, top to bottom
    for c in range(0, img.shape[1], s + 1):
        assert (img[:, c] == SEPARATOR).all()
    # nothing is shown twice and the first tile is the first sample, shrunk by area
    assert abs(img[1:1 + s, 1:1 + s].astype(float).mean() - tiles[0].astype(float).mean()) < 8


def test_a_sparse_series_does_not_hide_the_dense_one():
    """The held-out curve, drawn across the train curve, used to take every shared cell's colour."""
    from rich.style import Style

    x = np.arange(0, 2001, 10, dtype=float)
    train = 1.0 / (1 + x / 200)
    ev_x = np.arange(0, 2001, 400, dtype=float)
    ev = 1.0 / (1 + ev_x / 200) + 0.002  # on top of the train curve, as held-out loss is
    strips = render([Series("train", x, train, "cyan"), Series("held-out", ev_x, ev, "magenta")], 60, 12)
    cyan, magenta = Style.parse("cyan"), Style.parse("magenta")
    count = {"cyan": 0, "magenta": 0}
    for st in strips:
        for seg in st:
            if seg.style == cyan:
                count["cyan"] += sum(ch != "⠀" for ch in seg.text)
            elif seg.style == magenta:
                count["magenta"] += sum(ch != "⠀" for ch in seg.text)
    assert count["cyan"] >= 40, count  # the train curve is there
    assert count["magenta"] >= 5, count  # and every evaluation too


def test_no_segment_without_a_style():
    """Textual's NO_COLOR filter reads style.color of every segment: a None style was a traceback."""
    x = np.arange(10, dtype=float)
    strips = render([Series("a", x, x, "cyan")], 30, 6) + to_strips(np.zeros((8, 8, 3), np.uint8), 20, 10)
    assert strips and all(seg.style is not None for st in strips for seg in st)


def test_frame_cache_is_bounded_by_cells():
    from tui.image import HalfBlockImage

    w = HalfBlockImage(max_cells=2000)
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for i in range(50):
        w.prime(img, i, 32, 16)  # 32 x 16 cells = 512 a frame
    assert w._cells <= 2000 and len(w._cache) == 3
    assert [k[0] for k in w._cache] == [47, 48, 49]  # the newest stay


def test_a_lone_point_is_a_whole_cell_and_a_dense_curve_keeps_its_dots():
    """One evaluation (a run's first) was one braille dot in a corner: the plot looked empty."""
    from rich.style import Style

    strips = render([Series("train", np.array([0.0, 24.0]), np.array([0.43, 0.43]), "cyan"),
                     Series("held-out", np.array([24.0]), np.array([0.34]), "magenta")], 40, 8, x_range=(0.0, 24.0))
    magenta = Style.parse("magenta")
    cells = [ch for st in strips for seg in st if seg.style == magenta for ch in seg.text if ch != "⠀"]
    assert cells == ["⣿"]  # the lone point: one full cell, in its colour
    # a dense curve (a point in every column) is drawn with its dots, no full cells
    x = np.arange(0, 1000, dtype=float)
    dense = render([Series("train", x, np.sin(x / 100), "cyan")], 40, 8)
    assert not any("⣿" in seg.text for st in dense[:-1] for seg in st if seg.style == Style.parse("cyan"))
