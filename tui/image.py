"""Images in the terminal with Unicode half blocks: two pixels per cell.

Each cell is "▀" with the foreground colour = the top pixel and the background
= the bottom pixel. Colours are truecolor; Rich downgrades them to the 256-colour
palette on terminals that lack it. Scaling is nearest-neighbour, so pixels stay
sharp; integer factors are used whenever the image fits at least once.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color, ColorTriplet, ColorType
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER = "▀"


def fit(h: int, w: int, width: int, height: int) -> tuple[int, int]:
    """The (pixel height, pixel width) of an h x w image scaled to fit width cells x height cells."""
    s = min(width / w, 2 * height / h)
    if s >= 1:
        s = float(int(s))
    return max(int(h * s), 1), max(int(w * s), 1)


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
    blank_l = Segment(" " * pad_left) if pad_left else None
    strips = []
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
        strips.append(Strip(segs, pad_left + ow).extend_cell_length(width))
    return strips


def _rgb(c) -> Color:
    # Color.from_rgb validates and names; this direct form is 2x faster, which matters per frame
    return Color("", ColorType.TRUECOLOR, triplet=ColorTriplet(*c))


class HalfBlockImage(Widget):
    """Shows a uint8 H x W x 3 array; the rendered strips are cached per image and size."""

    DEFAULT_CSS = "HalfBlockImage { width: 1fr; height: 1fr; }"

    def __init__(self, image: np.ndarray | None = None, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.image = image
        self._key = None
        self._strips: list[Strip] = []
        self._cache: dict = {}

    def set_image(self, image: np.ndarray | None, key=None) -> None:
        """Show ``image``; a hashable ``key`` lets frames seen before come from the cache."""
        self.image = image
        self._image_key = key if key is not None else id(image)
        self.refresh()

    def prime(self, image: np.ndarray, key, width: int, height: int) -> None:
        """Render ``image`` for a size ahead of time (from a worker thread), so showing it later is a lookup."""
        k = (key, width, height)
        if k not in self._cache:
            self._cache[k] = to_strips(image, width, height)

    def render_line(self, y: int) -> Strip:
        w, h = self.content_size
        key = (getattr(self, "_image_key", id(self.image)), w, h)
        if key != self._key:
            strips = self._cache.get(key)
            if strips is None:
                strips = to_strips(self.image, w, h) if self.image is not None else []
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = strips
            self._strips = strips
            self._key = key
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(w)
