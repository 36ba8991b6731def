"""Images as mobjects: 32x32 pixels drawn as sharp squares, updated in place, framed on black."""

from __future__ import annotations

import numpy as np
import torch
from manim import WHITE, ImageMobject, Rectangle, VGroup
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS
from manim.utils.images import change_to_rgba_array

from vdm.images import as_hwc


def rgb(image: torch.Tensor) -> np.ndarray:
    """One image, uint8 [3, H, W] or float [3, H, W] in [-1, 1], as uint8 H x W x 3."""
    return as_hwc(image.unsqueeze(0))[0]


def pixel_image(image: torch.Tensor, height: float = 2.0) -> ImageMobject:
    """A 32x32 image drawn with nearest-neighbour resampling, so each pixel is a sharp square."""
    m = ImageMobject(rgb(image))
    m.set_resampling_algorithm(RESAMPLING_ALGORITHMS["nearest"])
    m.height = height
    return m


def set_pixels(mob: ImageMobject, image: torch.Tensor) -> None:
    """Replace the pixels of ``mob`` in place, keeping its opacity (for updaters)."""
    mob.pixel_array[:, :, :3] = change_to_rgba_array(rgb(image), "uint8")[:, :, :3]


def framed(mob, color=WHITE):
    """A thin frame around an image, so noise keeps a visible edge on black."""
    return VGroup(Rectangle(width=mob.width, height=mob.height, stroke_width=1.5, stroke_color=color).move_to(mob))
