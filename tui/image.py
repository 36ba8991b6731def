"""Images in the terminal with Unicode half blocks: two pixels per cell.

Each cell is "▀" with the foreground colour = the top pixel and the background
= the bottom pixel. Colours are truecolor; on a 256-colour terminal the image is
quantised here to the xterm palette's 6x6x6 cube and 24 greys, ordered-dithered where
the image varies smoothly and flat areas kept flat (Rich's own downgrade maps every
colour of low saturation to a grey and posterises the rest). Images are drawn at the
largest scale that fits their box (nearest-neighbour, so pixels stay sharp), centred both ways. A sample
grid is re-laid out by ``mosaic``: every tile at the size that fits, separators kept.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from rich.color import Color, ColorTriplet, ColorType
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER = "▀"


PLAIN = Style()  # never a None style: Textual's NO_COLOR filter reads .color of every segment's style
SEPARATOR = (24, 24, 24)  # between tiles of a mosaic


def fit(h: int, w: int, width: int, height: int) -> tuple[int, int]:
    """The (pixel height, pixel width) of an h x w image at the largest scale that fits width x height cells."""
    s = min(width / w, 2 * height / h)
    return max(int(h * s + 1e-9), 1), max(int(w * s + 1e-9), 1)


def grid_tiles(img: np.ndarray, tile: int = 32, pad: int = 1) -> np.ndarray | None:
    """The tiles of a vdm.images.grid image (tile-pixel tiles, pad-pixel padding, an integer upscale) as
    an n x tile x tile x 3 array, or None when the image is not laid out so."""
    h, w = img.shape[:2]
    for scale in (1, 2, 3, 4, 5, 6, 8):
        if h % scale or w % scale:
            continue
        hh, ww = h // scale, w // scale
        if (hh - pad) % (tile + pad) or (ww - pad) % (tile + pad) or hh <= pad or ww <= pad:
            continue
        nrow, ncol = (hh - pad) // (tile + pad), (ww - pad) // (tile + pad)
        native = img[::scale, ::scale, :3]
        out = [native[pad + r * (tile + pad): pad + r * (tile + pad) + tile, pad + c * (tile + pad): pad + c * (tile + pad) + tile]
               for r in range(nrow) for c in range(ncol)]
        return np.stack(out)
    return None


def shrink(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Resize to oh x ow: an area average when shrinking (nearest-neighbour drops whole rows), else nearest."""
    h, w = img.shape[:2]
    if oh >= h and ow >= w:
        return resize(img, oh, ow)
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((ow, oh), Image.BOX))


def mosaic(tiles: np.ndarray, width: int, height: int, min_px: int = 6) -> tuple[np.ndarray, int]:
    """The tiles laid out in the rows and columns that give them the largest size in width x height cells.

    Every tile is shown when each can keep min_px pixels; else as many as can. Tiles are resized
    (area average when shrinking) and separated by a 1-pixel line. Returns (image, tiles shown).
    """
    W, H = max(width, 1), max(2 * height, 1)

    def layout(n: int) -> tuple[int, int, int]:
        best = (-1, 1, n)
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            size = min((W - cols - 1) // cols, (H - rows - 1) // rows)
            if size > best[0]:
                best = (size, cols, rows)
        return best

    for n in range(len(tiles), 0, -1):  # all of them if they keep min_px each, else fewer (n = 1 at worst)
        s, cols, rows = layout(n)
        if s >= min_px:
            break
    s = max(s, 1)
    out = np.empty((rows * (s + 1) + 1, cols * (s + 1) + 1, 3), dtype=np.uint8)
    out[:] = SEPARATOR
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = 1 + r * (s + 1), 1 + c * (s + 1)
        out[y:y + s, x:x + s] = shrink(tiles[i], s, s)
    return out, n


def resize(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 H x W x 3 array."""
    h, w = img.shape[:2]
    rows = np.minimum((np.arange(oh) * h / oh).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(ow) * w / ow).astype(np.int64), w - 1)
    return img[rows][:, cols]


# -- the xterm 256-colour palette: 16-231 a 6x6x6 cube, 232-255 greys (0-15 follow the terminal's theme) --
CUBE = np.array([0, 95, 135, 175, 215, 255])
BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16.0 - 15 / 32  # mean 0
DITHER = 40.0  # the spread of the dither: about one step of the cube
GREY_DITHER = 10.0  # one step of the grey ramp
NEUTRAL = 12  # a colour whose channels differ by less than this is dithered along the grey ramp
MIX_MAX = 45  # the farthest apart (per channel) two colours the dither mixes: one step of the cube above 95
SMOOTH = 0.5  # a change of up to this many palette steps per pixel is a smooth variation (a gradient), more an edge
XTERM_RGB = np.zeros((256, 3))  # the colours of 16-255 (0-15 unused here)
XTERM_RGB[16:232] = np.stack(np.meshgrid(CUBE, CUBE, CUBE, indexing="ij"), -1).reshape(-1, 3)
XTERM_RGB[232:] = (8 + 10 * np.arange(24))[:, None]


def nearest_256(rgb: np.ndarray) -> np.ndarray:
    """The xterm colour number (16-255) nearest to each rgb triple (Euclidean in RGB), same shape less the last axis.

    Exact without trying all 240: the cube is a grid, so its nearest entry is each channel's nearest
    level; the nearest grey (g, g, g) is the one nearest the mean (the distance is 3 (g - mean)^2 + const).
    """
    x = np.asarray(rgb, dtype=np.float64)
    lv = np.abs(x[..., None] - CUBE).argmin(-1)  # each channel's nearest cube level
    cube = CUBE[lv].astype(np.float64)
    gi = np.clip(np.rint((x.mean(-1) - 8) / 10), 0, 23).astype(np.int64)
    grey = (8 + 10 * gi).astype(np.float64)
    d_cube = ((x - cube) ** 2).sum(-1)
    d_grey = ((x - grey[..., None]) ** 2).sum(-1)
    return np.where(d_grey < d_cube, 232 + gi, 16 + 36 * lv[..., 0] + 6 * lv[..., 1] + lv[..., 2])


def _run_length(changes: np.ndarray) -> int:
    """The most common length of the runs of identical rows (or columns), given where each differs from the
    one before: 1 for an image at its own resolution, k for one enlarged k times by nearest neighbour."""
    starts = np.flatnonzero(np.r_[True, changes])
    return int(np.bincount(np.diff(np.r_[starts, len(changes) + 1])).argmax())


def varies_smoothly(x: np.ndarray, step: np.ndarray, radius: int = 2) -> np.ndarray:
    """Where the image varies smoothly: an H x W mask, True at a pixel that lies on a slope, i.e. along some
    line through it (a row, a column or a diagonal) it has, on both sides within ``radius`` pixels, a neighbour
    of another colour that differs from it by at most SMOOTH palette steps (``step``, per pixel) per pixel of
    distance (max over the channels).

    A neighbour further away in colour is across an edge (or in a texture whose nearest colours change
    every few pixels anyway: nothing bands there) and does not count; asking for both sides keeps the edge
    of a uniform area uniform even next to a region of nearly its colour. So a uniform line or frame next to
    a tile, or a flat shape on a background, is not "varying". The radius is in the image's own pixels: times
    the usual run of repeated rows (columns) when it was enlarged by nearest neighbour. An image enlarged 4
    times or more has no varying pixel: each of its pixels is a flat area of 4 x 4 or more on the screen,
    which a dither would checker (its colour changes only from one such square to the next).
    """
    h, w = x.shape[:2]
    ky = _run_length((x[1:] != x[:-1]).any(axis=(1, 2)))
    kx = _run_length((x[:, 1:] != x[:, :-1]).any(axis=(0, 2)))
    if min(ky, kx) >= len(BAYER4):  # each of its pixels covers a Bayer tile or more: a flat area on the screen
        return np.zeros((h, w), bool)
    ry, rx = radius * ky, radius * kx
    pad = np.pad(x, ((ry, ry), (rx, rx), (0, 0)), mode="edge")

    def smooth(j: int, i: int) -> np.ndarray:  # the neighbour at (j, i) image pixels differs, smoothly
        y0, x0 = ry + j * ky, rx + i * kx
        d = np.abs(pad[y0:y0 + h, x0:x0 + w] - x).max(-1)
        return (d > 0) & (d <= SMOOTH * step * max(abs(i), abs(j)))

    out = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ahead = np.zeros((h, w), bool)
        behind = np.zeros((h, w), bool)
        for r in range(1, radius + 1):
            ahead |= smooth(r * dy, r * dx)
            behind |= smooth(-r * dy, -r * dx)
        out |= ahead & behind
    return out


def quantise_256(img: np.ndarray, dither: bool = True) -> np.ndarray:
    """An H x W x 3 uint8 image as xterm colour numbers (H x W), ordered-dithered (Bayer 4x4) where that helps.

    Where dithered, a pixel gets spread * (threshold - mean) added before its nearest palette colour is
    taken (spread: the palette's step near the pixel's colour, GREY_DITHER for near-neutral colours, else
    DITHER), so a colour between two palette entries becomes a fine mix of both whose average is close to it,
    where the nearest colour alone would band (and Rich's downgrade would turn it grey).

    The rule for where: a dither pattern lowers the error the eye sees only where the image itself varies.
    There its texture is masked by the image's, and it replaces the bands (false contours) and the
    offsets of the nearest colour with the right mean colour over a few cells. On a uniform area it is a
    texture the image does not have: a checkerboard, a worse error than the nearest colour's small offset
    in colour. So a pixel is dithered only where the image varies smoothly around it (``varies_smoothly``:
    on both sides of it along a row, column or diagonal, a neighbour within 2 of the image's pixels of a
    different colour, at most half a palette step away per pixel), and only in the 4 x 4 blocks (the Bayer
    matrix's) where the dithered block's mean colour is closer to the image's than the nearest colours' mean.
    A flat area (a background, a tile's padding, the frame round a grid, a flat shape) takes its one nearest
    colour; a gradient is dithered, and bands no more. Nor does it mix two colours more than MIX_MAX apart in a
    channel (black and the cube's 95, a grey of the ramp and a hue of the cube): at a terminal cell's size such a
    mix is a coarse checkerboard, grain that on a sample grid reads as noise the model left; a dark gradient
    bands instead.
    """
    x = img[..., :3].astype(np.float64)
    if not dither:
        return nearest_256(x)
    h, w = x.shape[:2]
    # as wide as the palette's steps where the colour is: 10 for a near-neutral colour (the grey ramp's
    # step: a cube-wide dither there flickers between black and a grey far from it), about 40 for any
    # colour with a hue, dark ones too (they are mixed from black and the cube's first level, 95)
    spread = np.where(np.ptp(x, axis=-1) < NEUTRAL, GREY_DITHER, DITHER)
    varies = varies_smoothly(img[..., :3].astype(np.int16), spread)
    nearest = nearest_256(x)
    if not varies.any():
        return nearest
    offset = spread * np.tile(BAYER4, (h // 4 + 1, w // 4 + 1))[:h, :w]
    dithered = nearest.copy()
    dithered[varies] = nearest_256(np.clip(x[varies] + offset[varies][:, None], 0, 255))
    # a mix of two colours further apart than MIX_MAX is seen at a terminal cell's size as a texture: grain,
    # which on a sample grid reads as noise the model left. Such pixels keep their nearest colour (they band)
    far = np.abs(XTERM_RGB[dithered] - XTERM_RGB[nearest]).max(-1) > MIX_MAX
    dithered = np.where(far, nearest, dithered)
    # and only in the 4 x 4 blocks (the Bayer matrix's) where it brings the block's mean colour closer
    better = _block_error(XTERM_RGB[dithered], x) < _block_error(XTERM_RGB[nearest], x)
    return np.where(better, dithered, nearest)


def _block_error(q: np.ndarray, x: np.ndarray, k: int = 4) -> np.ndarray:
    """Per pixel, the distance between the mean colours of q and x over the k x k block (from the top left) it is in."""
    h, w = x.shape[:2]
    H, W = -(-h // k) * k, -(-w // k) * k
    d = np.pad(q - x, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
    e = np.sqrt((d.reshape(H // k, k, W // k, k, 3).mean(axis=(1, 3)) ** 2).sum(-1))
    return np.repeat(np.repeat(e, k, 0), k, 1)[:h, :w]


_XTERM = [Color(f"color({i})", ColorType.EIGHT_BIT, number=i) for i in range(256)]


def to_strips(img: np.ndarray, width: int, height: int, palette256: bool = False) -> list[Strip]:
    """An image as at most ``height`` strips of ``width`` cells, centred horizontally; with ``palette256``
    in the xterm 256 colours, dithered (quantise_256), for a terminal without truecolor."""
    if img is None or width < 1 or height < 1:
        return []
    oh, ow = fit(img.shape[0], img.shape[1], width, height)
    px = resize(np.ascontiguousarray(img[..., :3]), oh, ow)
    if palette256:
        return _strips_256(quantise_256(px), width, height)
    pad_left = (width - ow) // 2
    blank_l = Segment(" " * pad_left, PLAIN) if pad_left else None
    strips = [Strip.blank(width, PLAIN)] * max((height - (oh + 1) // 2) // 2, 0)  # centred vertically
    for r in range(0, oh, 2):
        top = px[r]
        bot = px[r + 1] if r + 1 < oh else None
        segs = [blank_l] if blank_l else []
        # one Style per cell; the rgb tuples are plain ints for Rich's colour cache
        tl = top.tolist()
        bl = bot.tolist() if bot is not None else None
        for c in range(ow):
            bg = _rgb(bl[c]) if bl is not None else None
            segs.append(Segment(UPPER, Style.from_color(_rgb(tl[c]), bg)))
        strips.append(Strip(segs, pad_left + ow).extend_cell_length(width, PLAIN))
    return strips


def _strips_256(idx: np.ndarray, width: int, height: int) -> list[Strip]:
    """to_strips of an image already quantised to xterm colour numbers."""
    oh, ow = idx.shape
    pad_left = (width - ow) // 2
    blank_l = Segment(" " * pad_left, PLAIN) if pad_left else None
    strips = [Strip.blank(width, PLAIN)] * max((height - (oh + 1) // 2) // 2, 0)
    for r in range(0, oh, 2):
        top = idx[r].tolist()
        bot = idx[r + 1].tolist() if r + 1 < oh else None
        segs = [blank_l] if blank_l else []
        for c in range(ow):
            segs.append(Segment(UPPER, Style.from_color(_XTERM[top[c]], _XTERM[bot[c]] if bot is not None else None)))
        strips.append(Strip(segs, pad_left + ow).extend_cell_length(width, PLAIN))
    return strips


def _rgb(c) -> Color:
    # Color.from_rgb validates and names; this direct form is 2x faster, which matters per frame
    return Color("", ColorType.TRUECOLOR, triplet=ColorTriplet(*c))


class HalfBlockImage(Widget):
    """Shows a uint8 H x W x 3 array; rendered frames are kept in a small LRU cache.

    A rendered cell costs about 600 bytes (a Segment and its Style), so the cache
    is bounded by cells, not frames: ``max_cells`` (~60 MB) holds a few hundred
    32x32 frames or a few dozen large ones.
    """

    DEFAULT_CSS = "HalfBlockImage { width: 1fr; height: 1fr; }"

    def __init__(self, image: np.ndarray | None = None, *, id: str | None = None, classes: str | None = None,
                 max_cells: int = 100_000):
        super().__init__(id=id, classes=classes)
        self.image = image
        self.max_cells = max_cells
        self._image_key = None
        self._key = None
        self._strips: list[Strip] = []
        self._cache: OrderedDict = OrderedDict()
        self._cells = 0
        self.tiles: np.ndarray | None = None  # set_tiles: laid out by mosaic() for the size at drawing time
        self.tiles_title = ""
        self.shown_tiles = 0
        self.palette256 = False  # the terminal has 256 colours, not truecolor: dither (set when mounted)

    def on_mount(self) -> None:
        self.palette256 = getattr(self.app.console, "color_system", None) == "256"

    def frames_that_fit(self) -> int:
        """How many frames of the current image size the cache holds at this widget's size."""
        w, h = self.content_size
        if self.image is None or w < 1 or h < 1:
            return 0
        oh, ow = fit(self.image.shape[0], self.image.shape[1], w, h)
        return max(self.max_cells // max(ow * ((oh + 1) // 2), 1), 1)

    def _store(self, key, strips: list[Strip]) -> None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return
        self._cache[key] = strips
        self._cells += sum(len(s) for s in strips)
        while self._cells > self.max_cells and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cells -= sum(len(s) for s in old)

    def set_tiles(self, tiles: np.ndarray, key, title: str = "samples") -> None:
        """Show n x h x w x 3 tiles as a mosaic laid out for the widget's size when it is drawn (a size
        taken earlier may be stale: shrinking a mosaic to fit drops its separators). The border title
        says how many are shown."""
        self.tiles, self.tiles_title = tiles, title
        self.image = tiles[0] if len(tiles) else None
        self._image_key = ("tiles", key)
        self.refresh()

    def set_image(self, image: np.ndarray | None, key=None) -> None:
        """Show ``image``; a hashable ``key`` lets frames seen before come from the cache."""
        self.tiles = None
        self.image = image
        self._image_key = key if key is not None else id(image)
        self.refresh()

    def prime(self, image: np.ndarray, key, width: int, height: int) -> None:
        """Render ``image`` for a size ahead of time (from a worker thread), so showing it later is a lookup."""
        k = (key, width, height)
        if k not in self._cache:
            self._store(k, to_strips(image, width, height, self.palette256))

    def render_line(self, y: int) -> Strip:
        w, h = self.content_size
        key = (self._image_key if self._image_key is not None else id(self.image), w, h)
        if key != self._key:
            strips = self._cache.get(key)
            if self.tiles is not None:
                img, n = mosaic(self.tiles, w, h)
                if strips is None:
                    strips = to_strips(img, w, h, self.palette256)
                    self._store(key, strips)
                if n != self.shown_tiles or not self.border_title:
                    self.shown_tiles = n
                    title = f"{self.tiles_title} ({n} of {len(self.tiles)})"
                    self.call_later(setattr, self, "border_title", title)
            elif strips is None:
                strips = to_strips(self.image, w, h, self.palette256) if self.image is not None else []
                self._store(key, strips)
            self._strips = strips
            self._key = key
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(w, PLAIN)
