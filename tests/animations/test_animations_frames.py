"""Last frame of every scene against a stored control frame (manim's frames_comparison).

Each test builds its scene with animations skipped and compares the final frame
(854x480) with tests/animations/control_data/scenes/<test>.npz, within manim's
tolerance (one level per channel, 0.001% of the values). After a deliberate
visual change: python3 -m pytest tests/animations --set_test
"""

from __future__ import annotations

from manim.utils.testing.frames_comparison import frames_comparison

from animations.backward_diffusion import BackwardDiffusion
from animations.elbo_consistency import ConsistencyELBO
from animations.elbo_denoising import DenoisingELBO
from animations.forward_diffusion import ForwardDiffusion
from animations.mhvae import MarkovianHVAE
from animations.posterior import Posterior
from built_scenes import BUILT, TEX

__module_test__ = "scenes"
# the session's shared TeX cache (see conftest.py): each formula compiles once per run
TEX.mkdir(exist_ok=True)
TEX = str(TEX)


@frames_comparison(base_scene=ForwardDiffusion, tex_dir=TEX)
def test_forward_diffusion(scene):
    ForwardDiffusion.construct(scene)
    BUILT["ForwardDiffusion"] = scene  # for test_animations_shown.py


@frames_comparison(base_scene=MarkovianHVAE, tex_dir=TEX)
def test_mhvae(scene):
    MarkovianHVAE.construct(scene)
    BUILT["MarkovianHVAE"] = scene  # for test_animations_shown.py


@frames_comparison(base_scene=ConsistencyELBO, tex_dir=TEX)
def test_elbo_consistency(scene):
    ConsistencyELBO.construct(scene)
    BUILT["ConsistencyELBO"] = scene  # for test_animations_shown.py


@frames_comparison(base_scene=DenoisingELBO, tex_dir=TEX)
def test_elbo_denoising(scene):
    DenoisingELBO.construct(scene)
    BUILT["DenoisingELBO"] = scene  # for test_animations_shown.py


@frames_comparison(base_scene=Posterior, tex_dir=TEX)
def test_posterior(scene):
    Posterior.construct(scene)
    BUILT["Posterior"] = scene  # for test_animations_shown.py


@frames_comparison(base_scene=BackwardDiffusion, tex_dir=TEX)
def test_backward_diffusion(scene):
    BackwardDiffusion.construct(scene)
    BUILT["BackwardDiffusion"] = scene  # for test_animations_shown.py
