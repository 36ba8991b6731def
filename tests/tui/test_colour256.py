"""Images on a 256-colour terminal: ordered dithering to the xterm cube and greys stays faithful.

The palette and the nearest colour are computed here by brute force over all 240 entries, and the
old path by Rich's own downgrade: independent of tui.image's arithmetic.
"""

import numpy as np
import pytest
from rich.color import Color, ColorSystem, ColorType

from tui.image import quantise_256, to_strips

LEVELS = np.array([0, 95, 135, 175, 215, 255])
PALETTE = {16 + 36 * r + 6 * g + b: (LEVELS[r], LEVELS[g], LEVELS[b]) for r in range(6) for g in range(6) for b in range(6)}
PALETTE.update({232 + i: (8 + 10 * i,) * 3 for i in range(24)})
NUMBERS = np.array(sorted(PALETTE))
RGB = np.array([PALETTE[n] for n in NUMBERS], dtype=np.float64)


def brute_nearest(img):
    x = img.reshape(-1, 3).astype(np.float64)
    d = ((x[:, None, :] - RGB[None]) ** 2).sum(-1)
    return NUMBERS[d.argmin(1)].reshape(img.shape[:2])


def rgb_of(numbers):
    return np.array([PALETTE[int(n)] for n in numbers.ravel()], dtype=np.float64).reshape(*numbers.shape, 3)


def seen(img, k=4):
    """What the eye takes from a patch of k x k pixels (cells of half blocks): its mean colour."""
    h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    return img[:h, :w].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))


def _images():
    """A smooth gradient of low saturation (what Rich's downgrade turned grey) and a grid of samples."""
    from vdm.data import shapes
    from vdm.images import grid

    yy, xx = np.mgrid[0:64, 0:128]
    grad = np.stack([90 + xx * 0.6, 80 + yy * 0.5 + xx * 0.2, 70 + yy * 0.4], -1).clip(0, 255).astype(np.uint8)
    samples = grid(shapes(16, "test")[0], scale=1)
    return {"gradient": grad, "samples": samples}


@pytest.mark.parametrize("name", ["gradient", "samples"])
def test_dithered_256_colours_look_closer_than_nearest_colour_and_richs_downgrade(name):
    img = _images()[name]
    truth = seen(img.astype(np.float64))
    dithered = rgb_of(quantise_256(img))
    nearest = rgb_of(brute_nearest(img))
    rich = np.array([Color.from_rgb(*map(int, p)).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
                     for p in img.reshape(-1, 3)], dtype=np.float64).reshape(img.shape)
    err = {k: np.abs(seen(v) - truth).mean() for k, v in (("dithered", dithered), ("nearest", nearest), ("rich", rich))}
    # the grid's flat shapes, flat backgrounds and padding keep their nearest colour (no checkerboards), and
    # its dark backgrounds (between black and the cube's 95) are not mixed: it gains less than the gradient
    assert err["dithered"] < (0.8 if name == "gradient" else 1.0) * err["nearest"], err
    assert err["dithered"] < (0.8 if name == "gradient" else 0.85) * err["rich"], err
    # and the dither stays near the image: every pixel's colour is within one cube step of it
    assert np.abs(dithered - img).max() <= 95, err


def test_without_dither_it_is_the_nearest_palette_colour():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    got = rgb_of(quantise_256(img, dither=False))
    want = rgb_of(brute_nearest(img))
    # the same distance (a tie may pick another entry at the same distance)
    assert np.allclose(((got - img) ** 2).sum(-1), ((want - img) ** 2).sum(-1))


def test_256_colour_strips_carry_xterm_numbers():
    img = _images()["samples"][:32, :32]
    strips = to_strips(img, 32, 16, palette256=True)
    cells = [seg for st in strips for seg in st if seg.text == "▀"]
    assert len(cells) == 32 * 16
    assert all(seg.style.color.type == ColorType.EIGHT_BIT and 16 <= seg.style.color.number <= 255 for seg in cells)
    want = quantise_256(img)
    assert [seg.style.color.number for seg in cells[:32]] == want[0].tolist()
    assert [seg.style.bgcolor.number for seg in cells[:32]] == want[1].tolist()


@pytest.mark.anyio
async def test_the_app_dithers_on_a_256_colour_terminal_and_not_on_truecolor(tmp_path, monkeypatch):
    from tui.app import VdmApp
    from tui.gpu import GpuReader
    from tui_fixtures import wait_for, write_run

    run = write_run(tmp_path / "run", n_train=5)
    for colorterm, want in (("", True), ("truecolor", False)):
        monkeypatch.setenv("TERM", "xterm-256color")
        monkeypatch.setenv("COLORTERM", colorterm)
        app = VdmApp(run, poll_interval=0.05, clock=lambda: 1006.0, gpu_factory=lambda: GpuReader(nvml=object()))
        async with app.run_test(size=(80, 24)) as pilot:
            s = app.screen
            await wait_for(pilot, lambda: s.sample_image is not None)
            await pilot.pause(0.2)
            w = s.query_one("#samples")
            assert w.palette256 is want
            kinds = {seg.style.color.type for st in w._strips for seg in st if seg.text == "▀"}
            assert kinds == ({ColorType.EIGHT_BIT} if want else {ColorType.TRUECOLOR})


# -- flat stays flat: a dither pattern on a uniform area is a checkerboard the image does not have --

FLAT_COLOURS = [(24, 24, 24), (23, 23, 23), (115, 115, 115), (115, 55, 155), (200, 120, 30), (30, 50, 60),
                (0, 0, 0), (255, 255, 255), (95, 135, 175)] + [tuple(c) for c in
                                                              np.random.default_rng(5).integers(0, 256, (12, 3))]


@pytest.mark.parametrize("colour", FLAT_COLOURS)
def test_a_flat_image_is_one_colour_its_nearest(colour):
    img = np.empty((24, 40, 3), np.uint8)
    img[:] = colour
    got = quantise_256(img)
    assert np.unique(got).size == 1, np.unique(got)
    px = img[:1, :1].astype(np.float64)  # the nearest colour (a tie may pick another at the same distance)
    assert np.isclose(((rgb_of(got[:1, :1]) - px) ** 2).sum(), ((rgb_of(brute_nearest(img[:1, :1])) - px) ** 2).sum())


def _gradient_tiles(n=6, size=32):
    """Tiles of smooth gradients in colours between the cube's steps (what dithering is for)."""
    yy, xx = np.mgrid[0:size, 0:size]
    tiles = []
    for i in range(n):
        base = np.array([60 + 25 * i, 150 - 15 * i, 90 + 10 * i], float)
        tiles.append((base + np.stack([xx * 1.5, yy * 1.2, (xx + yy) * 0.7], -1)).clip(0, 255))
    return np.array(tiles, dtype=np.uint8)


@pytest.mark.parametrize("box", [(60, 20), (120, 40)])
def test_the_frame_round_a_mosaic_of_tiles_is_flat_and_the_tiles_still_dithered(box):
    from tui.image import SEPARATOR, mosaic

    img, n = mosaic(_gradient_tiles(), *box)
    assert n == 6
    frame = (img == SEPARATOR).all(-1)
    got = quantise_256(img)
    assert np.unique(got[frame]).size == 1, np.unique(got[frame])
    truth = seen(img.astype(np.float64))
    assert np.abs(seen(rgb_of(got)) - truth).mean() < 0.8 * np.abs(seen(rgb_of(brute_nearest(img))) - truth).mean()


@pytest.mark.parametrize("scale", [1, 3])
def test_a_grid_with_padding_between_palette_steps_has_a_flat_frame(scale):
    """A grid laid out with padding in a colour between two palette entries, at its own size and enlarged
    (nearest neighbour, as the monitor draws a small image in a big box): the padding is one colour."""
    from tui.image import resize

    tiles, pad, size = _gradient_tiles(4), 2, 32
    img = np.empty((2 * (size + pad) + pad, 2 * (size + pad) + pad, 3), np.uint8)
    img[:] = (120, 120, 120)  # between greys 118 and 128, and the cube's 95 and 135
    for i, t in enumerate(tiles):
        r, c = divmod(i, 2)
        y, x = pad + r * (size + pad), pad + c * (size + pad)
        img[y:y + size, x:x + size] = t
    img = resize(img, img.shape[0] * scale, img.shape[1] * scale)
    frame = (img == (120, 120, 120)).all(-1)
    got = quantise_256(img)
    assert np.unique(got[frame]).size == 1, np.unique(got[frame])
    truth = seen(img.astype(np.float64))
    assert np.abs(seen(rgb_of(got)) - truth).mean() < 0.8 * np.abs(seen(rgb_of(brute_nearest(img))) - truth).mean()


def test_dithering_never_moves_a_blocks_mean_colour_further_from_the_image():
    """Where it dithers, the mean colour of every 4 x 4 block is at least as close as the nearest colours' mean."""
    img = _images()["samples"]
    truth = seen(img.astype(np.float64))
    d = np.sqrt(((seen(rgb_of(quantise_256(img))) - truth) ** 2).sum(-1))
    n = np.sqrt(((seen(rgb_of(quantise_256(img, dither=False))) - truth) ** 2).sum(-1))
    assert (d <= n + 1e-9).all(), (d - n).max()


def test_an_enlarged_gradient_is_still_dithered():
    from tui.image import resize

    img = resize(_images()["gradient"], 64 * 3, 128 * 3)
    truth = seen(img.astype(np.float64))
    err = {k: np.abs(seen(rgb_of(q)) - truth).mean() for k, q in (("dithered", quantise_256(img)),
                                                                   ("nearest", brute_nearest(img)))}
    assert err["dithered"] < 0.8 * err["nearest"], err


def test_an_image_enlarged_so_much_that_its_pixels_are_areas_is_not_dithered():
    """Each pixel of a 32 x 32 image drawn 6 times larger is a flat square on the screen: one colour each,
    not a checkerboard inside every one."""
    from tui.image import resize

    img = _images()["gradient"][:32, :32]
    big = quantise_256(resize(img, 32 * 6, 32 * 6))
    assert (big == resize(quantise_256(img, dither=False)[..., None], 32 * 6, 32 * 6)[..., 0]).all()


def texture(img):
    """The mean absolute difference between neighbouring pixels (rows and columns): how grainy a picture is."""
    a = img.astype(np.float64)
    return (np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()) / 2


def test_a_sample_grid_on_256_colours_is_not_much_grainier_than_itself():
    """On a monitor of a diffusion model, grain is what a learner reads as noise the model left in its samples:
    the quantised grid may add texture where it bands or mixes, but not turn smooth dark backgrounds into
    checkerboards of black and the cube's first step (a mix 95 apart; the texture was 1.55x the grid's)."""
    img = _images()["samples"]
    assert texture(rgb_of(quantise_256(img))) < 1.35 * texture(img)
    assert texture(rgb_of(quantise_256(img, dither=False))) < 1.35 * texture(img)  # what the bound allows for
