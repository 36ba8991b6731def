"""The chain screen's schedule plot: a learned schedule draws its log SNR(t) = -gamma(t) and names its
endpoints; a constant one keeps √ᾱ_t and √(1-ᾱ_t). Through Textual's pilot."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from tui_fixtures import text, wait_for
from tui.app import ChainSource, VdmApp
from tui.gpu import GpuReader

NO_GPU = dict(gpu_factory=lambda: GpuReader(nvml=object()))
T = 20


def _learned_net():
    """A GammaNet away from its initial state: endpoints -9.5 and 6.25, a visibly nonlinear interior."""
    from vdm.continuous import GammaNet

    net = GammaNet(gamma_min=-9.5, gamma_max=6.25, n_features=16, seed=3, nonlinear_init=3.0)
    with torch.no_grad():
        net.w2.mul_(4.0)
    return net


class LearnedSource(ChainSource):
    """The chain screen's source with a learned schedule of T steps (what a `--schedule learned` run gives)."""

    def __init__(self, net):
        super().__init__(T=T, index=2)
        self.net = net

    def schedule(self):
        from vdm.continuous import learned_schedule

        return learned_schedule(self.net, T)


@pytest.mark.anyio
async def test_a_learned_schedule_draws_its_log_snr_curve_and_names_its_endpoints():
    net = _learned_net()
    app = VdmApp(None, source=LearnedSource(net), start="chain", **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        plot = s.query_one("#fwd-plot")
        assert [x.name for x in plot.series] == ["log SNR"] and plot.x_range == (0, T)
        x, y = plot.series[0].x, plot.series[0].y
        # the independent truth: gamma evaluated from the net's own formula at t = x / T, float64
        t = torch.linspace(0.0, 1.0, len(x), dtype=torch.float64)
        with torch.no_grad():
            gamma = net(t).numpy()
        assert len(x) >= 100 and np.allclose(x, t.numpy() * T, atol=0, rtol=0)
        assert np.allclose(y, -gamma, rtol=0, atol=1e-9)
        assert np.all(np.diff(y) < 0)  # log SNR falls with t: a monotone gamma
        # the endpoints: gamma(0) = gamma_min, gamma(1) = gamma_min + softplus(rho) = the values it was made with
        assert y[0] == pytest.approx(9.5, abs=1e-5) and y[-1] == pytest.approx(-6.25, abs=1e-5)
        assert "γ_min -9.50 … γ_max 6.25" in str(plot.border_subtitle) and str(plot.border_title) == "log SNR(t) = -γ(t), learned"
        info = text(app, "#fwd-info")
        assert "learned γ γ_min -9.50, γ_max 6.25" in info
        assert "log SNR(t) = ∞" in info  # t = 0 is x_0 itself in the discrete chain: no noise
        await pilot.press("right")
        with torch.no_grad():
            g1, g_end = (float(v) for v in net(torch.tensor([1 / T, 1.0], dtype=torch.float64)))
        assert f"log SNR(t) = -γ(t/T) = {-g1:.6g}" in text(app, "#fwd-info")
        # the drawing: the y axis runs from the curve's max (9.5) at the top to its min (-6.25) at the bottom
        await pilot.pause(0.2)
        rows = [str(plot.render_line(r).text) for r in range(plot.content_size.height)]
        labelled = [r for r in rows if "┤" in r]
        assert labelled[0].split("┤")[0].strip() == "9.5" and labelled[-1].split("┤")[0].strip() == "-6.25"
        await pilot.press("end")
        assert f"log SNR(t) = -γ(t/T) = {-g_end:.6g}" in text(app, "#fwd-info")


@pytest.mark.anyio
async def test_a_constant_schedule_keeps_signal_and_noise():
    app = VdmApp(None, source=ChainSource(T=T, index=2), start="chain", **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        plot = s.query_one("#fwd-plot")
        assert [x.name for x in plot.series] == ["signal", "noise"] and plot.x_range == (0, T)
        a = 0.01 ** (2 / T)  # the constant schedule's default alpha: sqrt(alpha^T) = 0.01
        steps = np.arange(T + 1)
        assert np.allclose(plot.series[0].y, np.sqrt(a ** steps), rtol=1e-6)
        assert np.allclose(plot.series[1].y, np.sqrt(1 - a ** steps), rtol=1e-6)
        assert str(plot.border_title) == "schedule" and "√ᾱ_t" in str(plot.border_subtitle)
        info = text(app, "#fwd-info")
        assert "learned" not in info and "γ" not in info and info.count("\n") == 6
        assert s.query_one("#fwd-info").styles.height.value == 7
