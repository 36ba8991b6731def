"""Images in the terminal with Unicode half blocks: two pixels per cell.

Each cell is "▀" with the foreground colour = the top pixel and the background
= the bottom pixel. Colours are truecolor; Rich downgrades them to the 256-colour
palette on terminals that lack it. Images are drawn at the largest scale that fits
their box (nearest-neighbour, so pixels stay sharp), centred both ways. A sample
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


def to_strips(img: np.ndarray, width: int, height: int) -> list[Strip]:
    """An image as at most ``height`` strips of ``width`` cells, centred horizontally."""
    if img is None or width < 1 or height < 1:
        return []
    oh, ow = fit(img.shape[0], img.shape[1], width, height)
    px = resize(np.ascontiguousarray(img[..., :3]), oh, ow)
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
            self._store(k, to_strips(image, width, height))

    def render_line(self, y: int) -> Strip:
        w, h = self.content_size
        key = (self._image_key if self._image_key is not None else id(self.image), w, h)
        if key != self._key:
            strips = self._cache.get(key)
            if self.tiles is not None:
                img, n = mosaic(self.tiles, w, h)
                if strips is None:
                    strips = to_strips(img, w, h)
                    self._store(key, strips)
                if n != self.shown_tiles or not self.border_title:
                    self.shown_tiles = n
                    title = f"{self.tiles_title} ({n} of {len(self.tiles)})"
                    self.call_later(setattr, self, "border_title", title)
            elif strips is None:
                strips = to_strips(self.image, w, h) if self.image is not None else []
                self._store(key, strips)
            self._strips = strips
            self._key = key
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(w, PLAIN)
