"""The lecture's scene: a manim-slides Slide with a slide at every derivation step, and what
scenes do with it (write a derivation line by line, cut, show a schedule's log SNR).

Importing it sets the render's process-wide settings: no manim cache, one torch thread.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from manim import (DOWN, UP, Axes, Create, FadeIn, FadeOut, SingleStringMathTex, Succession, SurroundingRectangle,
                   Transform, VGroup, config, smooth, squish_rate_func)

from animations.mobjects.highlight import Backdrop, covered_glyphs, glyph_bounds
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.plots import snr_panel
from animations.mobjects.text import MAX_WIDTH, derivation, one_line, part

# manim's cache hashes every play() call, which here costs more than rendering the
# frames (about half of a scene's time); these scenes are short, so render afresh.
config.disable_caching = True

# Scenes compute on tiny tensors; more threads only fight manim for the two cores.
torch.set_num_threads(1)


try:
    from manim_slides import Slide as _SlideBase
except ImportError:  # manim-slides is in the animations extra; without it the scenes still render as videos
    from manim import Scene as _SlideBase


def hold_time(lines: int = 1) -> float:
    """How long a result stays fully on screen before anything changes: 2 s plus 1 s per line."""
    return 2.0 + 1.0 * lines


class LectureScene(_SlideBase):
    """A manim-slides Slide whose every derivation step ends with ``pause``.

    ``pause(lines, notes)`` holds the frame for hold_time(lines) (the video's reading time)
    and then ends the slide, so `vdm slides` stops there until the lecturer goes on. Every
    slide ends with a pause, so the number of slides is ``self.pauses`` exactly, and every
    slide carries presenter notes: what the lecturer says over it (``self.slide_notes``;
    the HTML's speaker view and OUT/lecture-notes.md show them). Tool names, module paths
    and code identifiers belong there, never on the students' slide.
    ``next_section`` also names the video section (`vdm render --sections`).
    """

    def __init__(self, *args, output_folder=None, stills=None, **kwargs):
        if _SlideBase.__name__ == "Slide":
            from manim_slides.slide.base import BaseSlide

            # BaseSlide's, not manim_slides.Slide's __init__: that one sets config["write_to_movie"],
            # which manim 0.22 no longer has (its movie is written unless dry_run)
            BaseSlide.__init__(self, *args, output_folder=Path(output_folder or Path(config.media_dir) / "slides"),
                               **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.pauses = 0
        self.slide_names: list[str] = []
        self.slide_notes: list[str] = []  # presenter notes, one per slide, in slide order
        self.layout_log: list = []  # (section, text_boxes) at every pause: what the layout tests check
        self.box_log: list = []  # highlight_boxes at every pause, beside layout_log
        self.mark_log: list = []  # at every pause, glyphs a box's outline runs through or a backdrop wrongly covers
        self._topic = "start"
        self.chain_log: list = []  # (term, the TeX of the two distributions lit) at each slide of play_terms_on_chain
        # with ``stills`` (a folder), every slide's last frame is written there as NNN.png (1-based, slide order):
        # the PDF's pages, rendered at their own size whatever the videos' (render.render_stills)
        self.stills_dir = Path(stills) if stills is not None else None

    def next_section(self, name: str = "unnamed", **kwargs):
        self._topic = name
        from manim import Scene

        Scene.next_section(self, name, **kwargs)

    def pause(self, lines: int = 1, notes: str = "", hold: float | None = None):
        """Hold the result (2 s + 1 s per line unless ``hold``), then end this step's slide with
        ``notes``, what the lecturer says over it (required: a silent slide is a bug)."""
        notes = " ".join(notes.split())
        if not notes:
            raise ValueError(f"{type(self).__name__}: slide {self.pauses + 1} ({self._topic}) has no presenter notes")
        raw = re.search(r"\\[A-Za-z]+|\$", notes)
        if raw:  # notes are read as words (speaker view, lecture-notes.md): LaTeX goes through plain_text first
            raise ValueError(f"{type(self).__name__}: slide {self.pauses + 1} ({self._topic}): presenter notes hold "
                             f"LaTeX {raw.group()!r}: {notes[:80]}")
        self.wait(hold_time(lines) if hold is None else hold)
        if self.stills_dir is not None:
            self.save_still(self.stills_dir / f"{self.pauses + 1:03d}.png")
        self.layout_log.append((self._topic, text_boxes(self)))
        self.box_log.append(highlight_boxes(self))
        self.mark_log.append(mark_problems(self))
        self.pauses += 1
        self.slide_names.append(self._topic)
        self.slide_notes.append(notes)
        if _SlideBase.__name__ == "Slide":
            from manim_slides.slide.base import BaseSlide

            # manim-slides gives next_slide's config to the slide that starts there: these notes belong to the
            # slide that ends here, so they go into the config it was started with
            self._base_slide_config = self._base_slide_config.model_copy(update={"notes": markdown_text(notes)})
            BaseSlide.next_slide.__wrapped__(self, base_slide_config=type(self._base_slide_config)())

    def save_still(self, path: Path) -> None:
        """The frame on screen now as an RGB PNG at the render's pixel size (drawn even when animations are
        skipped: the stills render skips them, and every updater here is a function of its tracker, not of
        the time elapsed, so the frame is the one the video holds at this point)."""
        from PIL import Image

        # the frame is drawn afresh: manim keeps the last animation's still part as a background image, and
        # drawing every mobject over it again would lay each translucent fill on screen twice
        self.renderer.static_image = None
        self.renderer.update_frame(self, ignore_skipping=True)
        Image.fromarray(self.renderer.get_frame()).convert("RGB").save(path)

    def render(self, *args, **kwargs):
        """Scene.render, then (with a movie) manim-slides' slide files: one video per pause.

        Not Slide.render, which sets config["max_files_cached"] to infinity (manim 0.22
        refuses it); render.py sets -1 (unlimited) instead, so no partial movie is
        flushed before the slides are cut from them. Reversed videos are skipped: the
        HTML export does not play backwards.
        """
        from manim import Scene

        Scene.render(self, *args, **kwargs)
        if _SlideBase.__name__ == "Slide" and not (config.dry_run or self.renderer.skip_animations):
            self._save_slides(use_cache=False, flush_cache=False, skip_reversing=True)


def markdown_text(notes: str) -> str:
    """Notes as Markdown that shows them as written: reveal.js's speaker view and lecture-notes.md read
    Markdown, where x_t ... x_0 would turn italic and a * would start a list."""
    for ch in "\\`*_[]<>#":
        notes = notes.replace(ch, "\\" + ch)
    return notes


def _collect(scene, pick) -> list:
    """pick(m) for the outermost mobjects on screen it accepts: each is visited top down, and where pick
    returns a list (possibly empty) that is taken and its submobjects are not visited; None descends."""
    out = []

    def visit(m):
        got = pick(m)
        if got is not None:
            out.extend(got)
            return
        for sub in m.submobjects:
            visit(sub)

    for m in scene.mobjects:
        visit(m)
    return out


def _bounds(points) -> list:
    return [float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())]


def _is_text(m) -> bool:
    return isinstance(m, (SingleStringMathTex, LiveNumber)) or hasattr(m, "tex_string")


def text_boxes(scene) -> list:
    """(text, [x0, y0, x1, y1]) of every outermost piece of text on screen (TeX, live numbers),
    leaving out axis numbers, which belong to their axes."""
    def pick(m):
        if isinstance(m, Axes):
            return []
        if _is_text(m):
            pts = [p.points for p in m.family_members_with_points() if p.get_fill_opacity() > 0.05]
            if not pts:
                return []
            name = m.fmt.format(m.value) if isinstance(m, LiveNumber) else getattr(m, "tex_string", "?")
            return [(name, _bounds(np.concatenate(pts)))]
        return None

    return _collect(scene, pick)


def highlight_boxes(scene) -> list:
    """[x0, y0, x1, y1] of every SurroundingRectangle on screen (the white boxes round a term or a result)."""
    return _collect(scene, lambda m: [_bounds(m.points)] if isinstance(m, SurroundingRectangle) and m.has_points()
                    else None)


OUTLINE_CLEARANCE = 0.05  # frame units (7 px at 1080p) a glyph keeps from a box's outline: nearer, it reads as touching


def mark_problems(scene) -> list[str]:
    """Glyphs on screen a highlight spoils: one a Backdrop lies under without marking it, or one a
    SurroundingRectangle's outline runs through or touches (within OUTLINE_CLEARANCE of it, inside or out)."""
    backdrops = _collect(scene, lambda m: [m] if isinstance(m, Backdrop) else None)
    out = [f"a backdrop at {np.round(b.bounds, 2).tolist()} lies under a glyph at {np.round(g, 2).tolist()}"
           for b in backdrops for g in covered_glyphs(b, scene.mobjects)]
    c = OUTLINE_CLEARANCE
    boxes = highlight_boxes(scene)
    glyphs = _collect(scene, lambda m: glyph_bounds(m) if _is_text(m) else [] if isinstance(m, Axes) else None) \
        if boxes else []
    for r in boxes:
        for g in glyphs:
            near = g[0] < r[2] + c and g[2] > r[0] - c and g[1] < r[3] + c and g[3] > r[1] - c
            inside = g[0] > r[0] + c and g[2] < r[2] - c and g[1] > r[1] + c and g[3] < r[3] - c
            if near and not inside:
                out.append(f"a box at {np.round(r, 2).tolist()} runs through a glyph at {np.round(g, 2).tolist()}")
    return out


def play_derivation(scene, rows, captions, *, say, below, font_size: float = 28, buff: float = 0.35,
                    transform: bool = False, focus=None, terms: dict | None = None, caption_size: float = 26):
    """Write a derivation on the board line by line, a slide per line; returns the lines.

    Each new line comes in (``morph`` from the previous one with
    ``transform``, else a fade from above) with its caption ``captions[i]`` at the bottom
    and ``say[i]`` as the slide's presenter notes;
    ``focus[i]`` (a part of line i, see ``derivation``; or None) is then tinted (a Backdrop) while its
    caption talks about it. Every line stays on screen hold_time(lines shown) seconds:
    2 s plus 1 s per line on the board.
    """
    lines = derivation(rows, font_size=font_size, buff=buff, terms=terms, focus=focus)
    if lines.width > MAX_WIDTH:  # shrink first, then place: scaling moves the top edge
        lines.scale_to_fit_width(MAX_WIDTH)
    lines.next_to(below, DOWN, buff=0.4).set_x(0)
    if len(say) != len(lines) or len(captions) != len(lines):
        raise ValueError(f"{len(lines)} lines need as many captions and notes ({len(captions)}, {len(say)})")
    caps = [one_line(n, size=caption_size).to_edge(DOWN, buff=0.4) for n in captions]
    focus = list(focus or [None] * len(lines))
    box = None
    for i, line in enumerate(lines):
        # the old caption leaves before the new one comes (a cross-fade of two sentences in one place is unreadable)
        cap = Succession(FadeOut(caps[i - 1]), FadeIn(caps[i])) if i else FadeIn(caps[i])
        out = []
        if box is not None:
            out.append(FadeOut(box))
        if transform and i:
            morph(scene, lines[i - 1], line, *out, cap, run_time=1.2)
        else:
            scene.play(FadeIn(line, shift=DOWN * 0.2), *out, cap, run_time=1.2 if i else 1.0)
        box = None
        if focus[i] is not None:
            box = Backdrop(part(line, focus[i]), lines)
            scene.play(FadeIn(box), run_time=0.6)
        scene.pause(i + 1, say[i])
    return lines


def morph_plan(old, new) -> tuple[list, list, list]:
    """How ``new`` (a MathTex) comes out of ``old``: (pairs, gone, fresh). ``pairs``: (part of old, part of new)
    with the same TeX, repeated parts paired left to right; ``gone``: old's parts new lacks; ``fresh``: new's
    parts old lacks."""
    src: dict = {}
    for p in old.submobjects:
        src.setdefault(getattr(p, "tex_string", None), []).append(p)
    dst: dict = {}
    for q in new.submobjects:
        dst.setdefault(getattr(q, "tex_string", None), []).append(q)
    pairs, gone = [], []
    for key, ps in src.items():
        qs = dst.get(key, []) if key is not None else []
        pairs += list(zip(ps, qs))
        gone += ps[len(qs):]
    paired = {id(q) for _, q in pairs}
    return pairs, gone, [q for q in new.submobjects if id(q) not in paired]


class _Emerge(Transform):
    """A part moving to its new place, transparent while it still overlaps where it came from: it fades in
    along the last 60 % of its path (the old line stays on the board, so a copy drifting over it would read
    as a half-merged formula)."""

    def interpolate_mobject(self, alpha: float) -> None:
        super().interpolate_mobject(alpha)
        a = self.rate_func(alpha)
        self.mobject.set_fill(opacity=min(1.0, max(0.0, (a - 0.4) / 0.6)), family=True)


def morph(scene, old, new, *also, run_time: float = 1.2) -> None:
    """Play ``new`` (a MathTex) coming out of a copy of ``old`` (``old`` stays), with ``also`` alongside, in three
    stages that never overlap: the parts of ``old`` that ``new`` lacks fade out where they are, the parts both
    have move to their places in ``new`` (fading in as they leave ``old``, which stays: _Emerge), then ``new``'s
    own parts fade in (morph_plan).

    Not TransformMatchingTex: it merges every copy of a repeated part into one and flies the unmatched parts
    towards the new ones, so a frame mid-way shows a half-merged formula (log p(log)).
    """
    pairs, gone, fresh = morph_plan(old, new)
    movers = [p.copy() for p, _ in pairs]
    anims = [_Emerge(m, q, rate_func=squish_rate_func(smooth, 0.3, 0.75)) for m, (_, q) in zip(movers, pairs)]
    if gone:
        anims.append(FadeOut(VGroup(*[p.copy() for p in gone]), rate_func=squish_rate_func(smooth, 0.0, 0.3)))
    come = VGroup(*[q.copy() for q in fresh])
    if fresh:
        anims.append(FadeIn(come, rate_func=squish_rate_func(smooth, 0.75, 1.0)))
    scene.play(*anims, *also, run_time=run_time)
    scene.remove(*movers, come)
    scene.add(new)


def cut(scene, *keep) -> None:
    """End a section with a hard cut: everything leaves the screen but ``keep``.

    (scene.remove(group) would leave behind the parts that were animated in one by one.)
    """
    scene.clear()
    scene.add(*keep)


def play_snr(scene, schedule, below, why: str, say: tuple[str, str]) -> VGroup:
    """Two slides: the schedule's log SNR curve beside the assignment's (snr_panel), then what the numbers say
    (where each curve puts SNR = 1) and ``why`` it matters here; ``say``: the two slides' presenter notes."""
    panel = snr_panel(schedule)
    panel.next_to(below, DOWN, buff=0.2).set_x(0.3)
    caps = VGroup(*[one_line(s, cv[5], 22) for s, cv in zip(panel.sentences, panel.curves)],
                  one_line(why, size=22)).arrange(DOWN, buff=0.1).to_edge(DOWN, buff=0.2)
    axes, labs, one, curves, legend = panel
    scene.play(Create(axes), FadeIn(labs), FadeIn(one), FadeIn(legend))
    scene.play(*[Create(cv) for cv in curves], run_time=2.0)
    scene.pause(len(legend) + 1, say[0])
    scene.play(FadeIn(caps))
    scene.pause(len(caps) + 1, say[1])
    panel.captions = caps
    return panel


def play_terms_on_chain(scene, terms, intro: tuple[str, str]):
    """The chain graph (mobjects.chain_graph) under the title, a slide with ``intro`` (caption, notes), then a
    slide per term of ``terms`` (ChainTerm): the graph dimmed, the term's two distributions lit on it in the
    term's colour, and below it the term's name, formula and what it measures in words. Returns the graph."""
    from manim import FadeIn, FadeOut

    from animations.mobjects.chain_graph import ChainGraph
    from animations.mobjects.text import label, tex

    graph = ChainGraph()
    graph.move_to(UP * 0.7)  # room above for the formulas of arrows over the top, and below for the term
    cap = one_line(intro[0], size=26).to_edge(DOWN, buff=0.4)
    scene.play(FadeIn(graph), FadeIn(cap))
    scene.pause(2, intro[1])
    shown = [FadeOut(cap)]
    for term in terms:
        lit = VGroup(*[graph.light(d, term.colour) for d in term.dists])
        block = VGroup(label(term.name, term.colour, 30), tex(term.formula, terms={term.formula: term.colour},
                                                              font_size=30), one_line(term.words, size=26))
        block.arrange(DOWN, buff=0.3)
        if block.width > MAX_WIDTH:
            block.scale_to_fit_width(MAX_WIDTH)
        block.to_edge(DOWN, buff=0.4)
        dim = [graph.animate.fade_arrows()] if term is terms[0] else []  # the arrows step back once, for every term
        # the old words out before the new come in: they take the same place, and crossed they read as one
        scene.play(*shown, run_time=0.4)
        scene.play(*dim, FadeIn(lit), FadeIn(block))
        scene.chain_log.append((term.name, [d.tex for d in term.dists]))
        scene.pause(3, term.say)
        shown = [FadeOut(lit), FadeOut(block)]
    scene.play(*shown)
    return graph
