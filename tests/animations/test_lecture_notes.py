"""Words for a silent video: every slide carries presenter notes, OUT/lecture-notes.md lists them in slide
order, and the students' slides name no tool, module path or code identifier (those go in the notes).

The scenes are built once with animations skipped (built_scenes.py); the notes file is written from
slide files in manim-slides' layout ({"slides": [{"notes": ...}, ...]}), one per scene.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from animations import render as r
from animations.lecture_scene import markdown_text
from built_scenes import get

# what a student's slide must not show: typewriter text (commands, files), the package's name in lower
# case, a Python file, an escaped underscore (an identifier or path made safe for LaTeX), a command-line option
CODE = re.compile(r"\\texttt|\bvdm\b|\.py\b|\\_|-\{\}-|--[a-z]")
# nor the makers' words: the lecture's parts are not "scenes" to a student, the data is not "embedded", and a
# name is not said twice ("constant alpha: constant alpha = ...")
JARGON = re.compile(r"\bscenes?\b|\bembedded\b|constant[^:]*: constant")


@pytest.mark.parametrize("name", list(r.SCENES))
def test_every_slide_has_its_own_notes(name):
    scene = get(r.scene_class(name))
    assert len(scene.slide_notes) == scene.pauses == len(scene.layout_log)
    assert all(len(n.split()) >= 3 for n in scene.slide_notes), "a slide's notes are a sentence, not a word"


@pytest.mark.parametrize("name", list(r.SCENES))
def test_no_code_on_the_students_slides(name):
    scene = get(r.scene_class(name))
    found = [(i + 1, text) for i, (_, boxes) in enumerate(scene.layout_log) for text, _ in boxes
             if CODE.search(text) or JARGON.search(text)]
    assert not found, found[:5]


def test_code_pattern_catches_what_the_slides_once_showed():
    for shown in (r"\texttt{vdm train}", r"(\texttt{vdm/train.py}, \texttt{loss\_on})", "run lec-1 (given with -{}-run)",
                  r"from \texttt{vdm}: the same curve"):
        assert CODE.search(shown), shown
    for shown in ("the bound the MHVAE scene ended on", "model: trained on the embedded shapes",
                  r"the assignment's constant $\alpha$: constant alpha = 0.98, T = 500"):
        assert JARGON.search(shown), shown
    for fine in (r"A VDM is a Markovian hierarchical VAE", r"$x_{t-1} \sim q(x_{t-1} \mid x_t, x_0)$", "$-$ELBO"):
        assert not CODE.search(fine) and not JARGON.search(fine), fine


def test_notes_file_lists_every_slide_in_order(tmp_path):
    """lecture-notes.md: one heading per scene in the lecture's order, then each slide's notes numbered
    1, 2, ... across the whole lecture, as the HTML numbers its slides."""
    names = list(r.SCENES)
    (tmp_path / "slides").mkdir()
    expected = []
    for name in names:
        scene = get(r.scene_class(name))
        slides = [{"notes": markdown_text(n)} for n in scene.slide_notes]
        (tmp_path / "slides" / f"{r.SCENES[name][1]}.json").write_text(json.dumps({"slides": slides}))
        expected += [s["notes"] for s in slides]
    text = r.write_lecture_notes(names, tmp_path).read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [r.TITLES[n] for n in names]
    items = re.findall(r"^(\d+)\. (.*)$", text, re.M)
    assert [int(k) for k, _ in items] == list(range(1, len(expected) + 1))
    assert [body for _, body in items] == expected


def test_notes_read_as_written_in_markdown():
    """x_t ... x_0 in a note must not turn italic, nor a leading * start a list."""
    md = markdown_text("x_t and x_0 * 2")
    assert md == r"x\_t and x\_0 \* 2"


def test_notes_are_words_not_latex():
    """Notes hold no LaTeX (a speaker view showed "1.09 \\pm 0.05" and "\\times 10^{-14}"): a scene that passes
    LaTeX to its notes fails to build, and plain_text writes the slides' symbols out."""
    from animations.latex import plain_text
    from animations.lecture_scene import LectureScene

    assert plain_text(r"true $-\log q$: 0.22 $\pm$ 0.01, $9.3 \times 10^{-14}$") == "true -log q: 0.22 ± 0.01, 9.3 × 10^-14"
    assert plain_text(r"$\hat{x}_0 = \mathbb{E}[x_0 \mid x_t]$, $\mathrm{SNR}(t)$") == "x̂_0 = E[x_0 | x_t], SNR(t)"

    class Raw(LectureScene):
        def construct(self):
            self.pause(1, r"a gap of 1.09 \pm 0.05 nats")

    with pytest.raises(ValueError, match="LaTeX"):
        Raw(skip_animations=True).construct()


def test_alpha_choice_where_snr_crosses_one():
    """The forward scene's criterion slide: SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (vdm.schedule) falls to 1
    between the two whole steps around the step shown, early for the constant alpha and about half way for
    the cosine schedule at the same T; the captions give those steps."""
    from vdm.schedule import Schedule

    scene = get(r.scene_class("forward"))
    T = scene.schedule.T
    for name, sched in (("constant", scene.schedule), ("cosine", Schedule.cosine(T=T))):
        c = scene.snr_one[name]
        snr = sched.snr.double().numpy()
        assert snr[int(np.floor(c))] > 1 >= snr[int(np.ceil(c))], (name, c)
    assert scene.snr_one["constant"] < T / 10 < T / 3 < scene.snr_one["cosine"] < 2 * T / 3
    shown = " ".join(t for _, boxes in scene.layout_log[-1:] for t, _ in boxes)
    for c in scene.snr_one.values():
        assert f"step {c:.0f}" in shown
