"""Mobjects for 2-D point clouds: a square view of the plane, thousands of points as one image, paths.

    panel = CloudPanel(side=3.0)            # [-view, view]^2 on screen: a frame and the axes through 0
    cloud = panel.cloud(points, XT)         # [N, 2] points as one RGBA ImageMobject (fast at any N)
    cloud.show(other_points)                # redraw in place (for updaters)
    shade = panel.shading(density)          # a [res, res] density (vdm.cloud.density_grid) as faint shading;
                                            # shade.show(other_density) redraws it
    path = panel.path(track, X0)            # one point's positions [K, 2] joined by straight segments

A cloud is rasterised at the screen's own pixel density (config.pixel_height / frame_height), so a
point is a few pixels at every quality and thousands of them cost one image per frame, not thousands
of dots. Nothing here computes a quantity of the model: the scenes pass in what vdm computed.
"""

from __future__ import annotations

import numpy as np
import torch
from manim import DOWN, LEFT, WHITE, Group, ImageMobject, Line, Rectangle, VMobject, config
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS
from manim.utils.color import ManimColor

from vdm.images import POINT_VIEW

DOT = 0.035  # a point's side on screen, in scene units
DOT_ALPHA = 0.55  # opacity of one point; k points on a pixel: 1 - (1 - DOT_ALPHA)^k


def _array(points) -> np.ndarray:
    a = points.detach().cpu().numpy() if torch.is_tensor(points) else np.asarray(points)
    return np.asarray(a, dtype=np.float64).reshape(-1, 2)


def raster(points, colour, res: int, view: float = POINT_VIEW, dot: int = 2, dot_alpha: float = DOT_ALPHA) -> np.ndarray:
    """uint8 [res, res, 4]: the points of [-view, view]^2 as squares of ``dot`` pixels in ``colour`` on a clear
    background, row 0 at the top; a pixel's opacity grows with the points on it. Points outside are left out."""
    a = _array(points)
    col = np.floor((a[:, 0] + view) / (2 * view) * res).astype(np.int64)
    row = np.floor((view - a[:, 1]) / (2 * view) * res).astype(np.int64)
    ok = (col >= 0) & (col < res) & (row >= 0) & (row < res) & np.isfinite(a).all(1)
    counts = np.bincount(row[ok] * res + col[ok], minlength=res * res).reshape(res, res).astype(np.float64)
    if dot > 1:  # each point covers a dot x dot square: sum the shifted count grids
        pad = np.pad(counts, ((0, dot - 1), (0, dot - 1)))
        counts = sum(pad[i:i + res, j:j + res] for i in range(dot) for j in range(dot))
    alpha = 1.0 - (1.0 - dot_alpha) ** counts
    out = np.zeros((res, res, 4), dtype=np.uint8)
    out[..., :3] = (np.array(ManimColor(colour).to_rgb()) * 255).round().astype(np.uint8)
    out[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    return out


class PointCloud(ImageMobject):
    """[N, 2] points drawn as one image over a CloudPanel's square; ``show`` redraws them in place."""

    def __init__(self, points, colour, side: float, res: int, view: float = POINT_VIEW, dot: int = 2):
        self.colour, self.res, self.view, self.dot = colour, res, view, dot
        super().__init__(raster(points, colour, res, view, dot))
        self.set_resampling_algorithm(RESAMPLING_ALGORITHMS["nearest"])
        self.height = side
        self.points_shown = _array(points)

    def show(self, points) -> "PointCloud":
        img = raster(points, self.colour, self.res, self.view, self.dot)
        self.pixel_array[...] = img
        self.orig_alpha_pixel_array = img[:, :, 3].copy()  # what set_opacity (fades) scales
        self.points_shown = _array(points)
        return self


class CloudPanel(Group):
    """A square of ``side`` scene units showing [-view, view]^2: a thin frame and faint axes through 0.

    ``c2p`` maps data coordinates [.., 2] to scene points; ``cloud``, ``shading`` and ``path`` make
    mobjects placed on the panel (add them to the scene, or to the panel, yourself).
    """

    def __init__(self, side: float = 3.0, view: float = POINT_VIEW, frame_colour=WHITE):
        super().__init__()
        self.side, self.view = side, view
        self.frame = Rectangle(width=side, height=side, stroke_width=1.5, stroke_color=frame_colour,
                               stroke_opacity=0.7)
        self.axes = Group(Line(LEFT * side / 2, -LEFT * side / 2, stroke_width=1, stroke_opacity=0.3),
                          Line(DOWN * side / 2, -DOWN * side / 2, stroke_width=1, stroke_opacity=0.3))
        self.add(self.frame, self.axes)

    @property
    def res(self) -> int:
        """Pixels across the panel at the render's resolution (at least 64)."""
        return max(64, int(round(self.side * config.pixel_height / config.frame_height)))

    @property
    def dot_pixels(self) -> int:
        return max(1, int(round(DOT * config.pixel_height / config.frame_height)))

    def c2p(self, xy) -> np.ndarray:
        """Scene points [.., 3] of data points [.., 2] (the panel's centre is the origin of the data)."""
        a = np.asarray(xy, dtype=np.float64)
        scale = self.side / (2 * self.view)
        out = np.zeros(a.shape[:-1] + (3,))
        out[..., :2] = a * scale
        return out + self.frame.get_center()

    def cloud(self, points, colour) -> PointCloud:
        m = PointCloud(points, colour, self.side, self.res, self.view, self.dot_pixels)
        return m.move_to(self.frame.get_center())

    def shading(self, density, colour=WHITE, opacity: float = 0.3) -> "DensityShade":
        m = DensityShade(density, colour, opacity, self.side)
        return m.move_to(self.frame.get_center())

    def path(self, track, colour, stroke_width: float = 2.5) -> VMobject:
        """One point's positions [K, 2] (K >= 1) joined by straight segments."""
        line = VMobject(stroke_color=colour, stroke_width=stroke_width)
        set_path(self, line, track)
        return line


def shade_pixels(density, colour, opacity: float) -> np.ndarray:
    """uint8 [res, res, 4]: a density on a grid (row 0 at the top, as vdm.cloud.density_grid) as ``colour`` with
    opacity ``opacity`` times the square root of density / its maximum (so the tails show)."""
    d = np.asarray(density.detach().cpu() if torch.is_tensor(density) else density, dtype=np.float64)
    a = np.sqrt(np.clip(d / max(float(d.max()), 1e-300), 0, 1)) * opacity
    img = np.zeros(d.shape + (4,), dtype=np.uint8)
    img[..., :3] = (np.array(ManimColor(colour).to_rgb()) * 255).round().astype(np.uint8)
    img[..., 3] = np.rint(a * 255).astype(np.uint8)
    return img


class DensityShade(ImageMobject):
    """A density on a grid drawn as faint shading over a CloudPanel's square; ``show`` redraws it in place."""

    def __init__(self, density, colour, opacity: float, side: float):
        self.colour, self.opacity_ = colour, opacity
        super().__init__(shade_pixels(density, colour, opacity))
        self.set_resampling_algorithm(RESAMPLING_ALGORITHMS["bilinear"])
        self.height = side

    def show(self, density) -> "DensityShade":
        img = shade_pixels(density, self.colour, self.opacity_)
        self.pixel_array[...] = img
        self.orig_alpha_pixel_array = img[:, :, 3].copy()
        return self


def clip_segment(a, b, view: float):
    """The part of the segment a -> b (2-D) inside the square [-view, view]^2, as (a', b'), or None where
    none of it is (Liang-Barsky: the segment a + u (b - a), u in [0, 1], cut by each of the four edges)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = b - a
    u0, u1 = 0.0, 1.0
    for p, q in ((-d[0], a[0] + view), (d[0], view - a[0]), (-d[1], a[1] + view), (d[1], view - a[1])):
        if p == 0:
            if q < 0:
                return None  # parallel to this edge and outside it
            continue
        u = q / p
        if p < 0:
            u0 = max(u0, u)
        else:
            u1 = min(u1, u)
        if u0 > u1:
            return None
    return a + u0 * d, a + u1 * d


def inside(point, view: float) -> bool:
    return bool(np.all(np.abs(np.asarray(point, dtype=np.float64)) <= view))


def set_path(panel: CloudPanel, line: VMobject, track) -> VMobject:
    """Make ``line`` the polyline through ``track`` [K, 2] on ``panel``, cut where it leaves the panel's square:
    a stretch outside is not drawn (a point drawn on the edge would be a place it never was), so the line
    may fall into pieces. K = 1, or nothing inside: a path of zero length at the first point inside, else at
    the centre (nothing visible)."""
    track = _array(track)
    pieces: list[list[np.ndarray]] = []
    for a, b in zip(track[:-1], track[1:]):
        cut = clip_segment(a, b, panel.view)
        if cut is None:
            continue
        if pieces and np.allclose(pieces[-1][-1], cut[0]):
            pieces[-1].append(cut[1])  # the previous segment ends where this one starts: one piece
        else:
            pieces.append([cut[0], cut[1]])
    line.clear_points()
    if not pieces:
        anchor = next((p for p in track if inside(p, panel.view)), np.zeros(2))
        pieces = [[anchor, anchor]]
    for piece in pieces:
        pts = panel.c2p(np.array(piece))
        line.start_new_path(pts[0])
        line.add_points_as_corners(pts[1:])
    return line


def place_head(panel: CloudPanel, dot, point) -> None:
    """Put a traced point's dot at ``point`` on ``panel``, shown only while the point is inside the square."""
    point = _array(point)[0]
    dot.move_to(panel.c2p(np.clip(point, -panel.view, panel.view)))
    dot.set_opacity(1.0 if inside(point, panel.view) else 0.0)
