"""The core on a CUDA device agrees with the CPU (skipped where there is no GPU)."""

from __future__ import annotations

import pytest
import torch

from vdm.denoiser import Oracle
from vdm.diffusion import posterior, q_sample
from vdm.elbo import elbo
from vdm.sample import sample
from vdm.schedule import Schedule

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_posterior_and_q_sample_on_cuda():
    s = Schedule.cosine(30)
    x0 = torch.rand(5, 3, 8, 8) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([1, 2, 10, 20, 30])
    x_t = q_sample(s, x0, t, eps)
    torch.testing.assert_close(q_sample(s, x0.cuda(), t.cuda(), eps.cuda()).cpu(), x_t)
    m, v = posterior(s, x_t, x0, t)
    m_c, v_c = posterior(s, x_t.cuda(), x0.cuda(), t.cuda())
    torch.testing.assert_close(m_c.cpu(), m)
    torch.testing.assert_close(v_c.cpu(), v)


def test_elbo_and_sampling_on_cuda():
    s = Schedule.constant(None, 20)
    x0 = (torch.rand(4, 3, 8, 8) * 2 - 1).cuda()
    for form in ("denoising", "consistency"):
        for est in ("full", "uniform"):
            for g in (torch.Generator(device="cuda").manual_seed(0), torch.Generator().manual_seed(0)):
                e = elbo(lambda x, t: (0.8 * x).clamp(-1, 1), s, x0, form, est, g)
                assert e.total.device.type == "cuda" and torch.isfinite(e.total).all()
        assert torch.all(elbo(Oracle(x0), s, x0, "denoising", "full").matching == 0)
    out = sample(Oracle(x0), s, n=4, shape=(3, 8, 8), device="cuda", seed=0)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)


def test_resume_on_cuda_with_fused_adam_and_channels_last(tmp_path):
    """The GPU defaults (fused Adam, channels_last) take a step after a resume from a checkpoint."""
    from vdm.train import TrainConfig, Trainer

    kw = dict(T=20, limit=64, batch_size=32, eval_size=0, n_samples=4, sample_every=0, device="cuda",
              runs_dir=str(tmp_path), name="r", channels_last="on")
    Trainer(TrainConfig(epochs=1, **kw), tmp_path / "r").run()
    tr = Trainer(TrainConfig(epochs=2, **kw), tmp_path / "r", resume=True)
    assert tr.step == 2
    assert tr.run()["step"] == 4
