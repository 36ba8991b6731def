"""Exercises 2 and 3 ask what each ELBO term means: both ELBO scenes light, on the assignment's chain graph,
the two distributions each term compares, and say in words what it measures (on the slide and in the notes)."""

from __future__ import annotations

import numpy as np
import pytest

from animations.elbo_consistency import ON_CHAIN as CONSISTENCY_TERMS
from animations.elbo_consistency import ConsistencyELBO
from animations.elbo_denoising import ON_CHAIN as DENOISING_TERMS
from animations.elbo_denoising import DenoisingELBO
from animations.mobjects.chain_graph import ChainGraph
from built_scenes import get

# what each term compares, as the assignment writes the ELBO (exercise 2, then exercise 3)
EXPECTED = {
    "consistency": [("reconstruction", {r"q(x_1 \mid x_0)", r"p_\theta(x_0 \mid x_1)"}),
                    ("prior matching", {r"q(x_T \mid x_{T-1})", r"p(x_T)"}),
                    ("consistency", {r"q(x_t \mid x_{t-1})", r"p_\theta(x_t \mid x_{t+1})"})],
    "denoising": [("reconstruction", {r"q(x_1 \mid x_0)", r"p_\theta(x_0 \mid x_1)"}),
                  ("prior matching", {r"q(x_T \mid x_0)", r"p(x_T)"}),
                  ("denoising matching", {r"q(x_{t-1} \mid x_t, x_0)", r"p_\theta(x_{t-1} \mid x_t)"})],
}
FORMS = {"consistency": (CONSISTENCY_TERMS, ConsistencyELBO), "denoising": (DENOISING_TERMS, DenoisingELBO)}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_term_lights_the_two_distributions_it_compares(form):
    terms = FORMS[form][0]
    assert [(t.name, {d.tex for d in t.dists}) for t in terms] == EXPECTED[form]
    for t in terms:  # both are in the term as the scene writes it, coloured as the term
        assert all(d.tex in t.formula for d in t.dists), (t.name, t.formula)


@pytest.mark.parametrize("form", list(FORMS))
def test_each_distribution_is_drawn_where_it_lives_on_the_chain(form):
    """An encoder step (or the closed form, or the posterior) is an arrow over the nodes, a decoder step one
    under them, from the node it conditions on to the node it is a distribution of; the prior rings x_T."""
    graph = ChainGraph()
    for t in FORMS[form][0]:
        for d in t.dists:
            lit = graph.light(d, t.colour)
            if d.kind == "prior":
                assert np.allclose(lit[0].get_center(), graph.node(d.dst).get_center(), atol=1e-6)
                continue
            arrow, src, dst = lit[0], graph.node(d.src), graph.node(d.dst)
            assert abs(arrow.get_start()[0] - src.get_center()[0]) < graph.radius, (t.name, d.tex)
            assert abs(arrow.get_end()[0] - dst.get_center()[0]) < graph.radius, (t.name, d.tex)
            above = arrow.get_center()[1] > src.get_center()[1]
            assert above == (d.kind != "p"), (t.name, d.tex)
            assert lit[1].tex_string == d.tex  # the formula beside it names it


@pytest.mark.parametrize("form", list(FORMS))
def test_the_chain_slides_show_and_say_each_term(form):
    terms, cls = FORMS[form]
    scene = get(cls)
    assert [(name, set(dists)) for name, dists in scene.chain_log] == EXPECTED[form]
    slides = [i for i, name in enumerate(scene.slide_names) if name == "what each term measures, on the chain"]
    assert len(slides) == 1 + len(terms)  # the graph, then a slide per term
    for i, t in zip(slides[1:], terms):
        shown = {text for text, _ in scene.layout_log[i][1]}
        assert {d.tex for d in t.dists} <= shown and t.formula in shown, t.name  # lit on the graph, and the term
        assert any(t.words in text for text in shown), t.name  # what it measures, in words
        notes = scene.slide_notes[i].lower()
        assert t.name in notes and len(notes.split()) >= 25, t.name
