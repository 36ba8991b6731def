"""The chain screen's backward chain in fewer steps (k) and with DDIM (d), through Textual's pilot;
its matching term on strided steps; a chain screen that follows the run opened from the run list;
a ChainSource that opens its run once."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tui_fixtures import text, wait_for, write_run
from tui.app import ChainSource, VdmApp
from tui.gpu import GpuReader
from vdm.diffusion import step_sequence

NO_GPU = dict(gpu_factory=lambda: GpuReader(nvml=object()))


def _truth(index: int):
    from vdm.data import shapes
    from vdm.images import as_hwc

    return as_hwc(shapes(index + 1, "test")[0][index:index + 1])[0].astype(int)


@pytest.mark.anyio
async def test_k_and_d_choose_the_steps_and_the_sampler_of_the_backward_chain():
    T = 20
    app = VdmApp(None, source=ChainSource(T=T, index=3), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await pilot.press("b")
        await wait_for(pilot, lambda: s.chains["backward"] is not None)
        c = s.chains["backward"]
        assert c.K == T and s.t() == T and "k steps: all 20" in text(app, "#bwd-info")
        assert "d sampler: ancestral" in text(app, "#bwd-info")

        await pilot.press("k")  # K = 10: the only choice below T = 20 besides every step
        await wait_for(pilot, lambda: s.chains["backward"] is not None and s.chains["backward"].K == 10)
        c = s.chains["backward"]
        assert list(c.steps) == [0, *step_sequence(T, 10)] and s.t() == T
        info = text(app, "#bwd-info")
        assert "k steps: 10 of 20" in info and "t = 20 / 20 → s = 18" in info
        await pilot.press("right")
        assert s.t() == 18 and "t = 18 / 20 (step 1 of 10)" in text(app, "#scrub-text")
        assert "0 nats" in text(app, "#bwd-info")  # the oracle's strided matching term is exactly 0 too
        # the variance shown is the strided posterior's, q(x_16 | x_18, x_0), from vdm
        from vdm.diffusion import posterior
        from vdm.schedule import Schedule

        _, var = posterior(Schedule.constant(None, T), torch.zeros(1), torch.zeros(1), 18, s=16)
        assert float(c.var[9]) == pytest.approx(float(var), rel=1e-6)
        await pilot.press("end")
        assert s.t() == 0 and np.abs(c.x[0].astype(int) - _truth(3)).max() <= 1

        await pilot.press("d")
        await wait_for(pilot, lambda: s.chains["backward"] is not None and s.chains["backward"].sampler == "ddim")
        c = s.chains["backward"]
        assert c.K == 10 and s.t() == 0 and float(np.abs(c.var).max()) == 0.0  # the new sampler opens where we were
        await pilot.press("home")
        assert s.t() == T
        await pilot.press("right")
        info = text(app, "#bwd-info")
        assert "∞" in info and "DDIM" in text(app, "#chain-title") and "d sampler: ddim" in info
        assert len(info.splitlines()) <= s.query_one("#bwd-info").content_size.height  # k and d stay visible
        await pilot.press("end")
        assert np.abs(c.x[0].astype(int) - _truth(3)).max() <= 1  # DDIM with the oracle lands on x_0 too

        await pilot.press("k")  # back to every step
        await wait_for(pilot, lambda: s.chains["backward"] is not None and s.chains["backward"].K == T)


@pytest.mark.anyio
async def test_k_in_the_forward_chain_says_it_applies_to_the_backward_chain():
    app = VdmApp(None, source=ChainSource(T=20), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        await pilot.press("k")
        assert s.steps == 10 and s.mode == "forward"
        assert any("backward chain" in n.message for n in app._notifications)
        await pilot.press("b")
        await wait_for(pilot, lambda: s.chains["backward"] is not None)
        assert s.chains["backward"].K == 10


def _squash(x_t, t):
    return torch.tanh(1.5 * x_t) * (1.0 - t.float().view(-1, 1, 1, 1) / 100.0)


@pytest.mark.parametrize("K", [7, 40])
def test_the_matching_term_of_a_strided_step_is_the_snr_form(K):
    """KL(q(x_s|x_t, x_0) || q(x_s|x_t, x̂_0)) = 1/2 (SNR(s) - SNR(t)) ||x_0 - x̂_0||^2 for any s < t;
    with every step it is vdm.elbo.matching_kl."""
    from tui.chain_data import step_kl
    from vdm.elbo import matching_kl
    from vdm.sample import sample
    from vdm.schedule import Schedule

    sch = Schedule.cosine(40)
    x, chain = sample(_squash, sch, 1, shape=(3, 4, 4), seed=1, steps=K, return_chain=True)
    ref = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    kl = step_kl(sch, chain, ref)
    snr = sch.snr
    for j, i in enumerate(range(2, K + 1)):
        t, s = int(chain.t[i]), int(chain.t[i - 1])
        want = 0.5 * float(snr[s] - snr[t]) * float(((ref[0] - chain.x0_hat[i, 0].double()) ** 2).sum())
        assert float(kl[j]) == pytest.approx(want, rel=1e-7)
    if K == 40:
        ts = torch.arange(2, 41)
        x_t = chain.x[2:, 0].double()
        want = matching_kl(sch, x_t, ref.expand_as(x_t), chain.x0_hat[2:, 0].double(), ts)
        torch.testing.assert_close(kl, want, rtol=1e-10, atol=1e-12)


def _two_runs(root):
    """Runs a (T = 20) and b (T = 30, its config edited) under root, told apart by their schedule's T."""
    write_run(root / "a", n_train=10, with_sample=False)
    b = write_run(root / "b", n_train=10, with_sample=False)
    cfg = json.loads((b / "config.json").read_text())
    cfg["T"] = 30
    cfg["schedule_config"] = {"kind": "constant", "T": 30, "params": [0.01 ** (2 / 30)]}
    (b / "config.json").write_text(json.dumps(cfg))
    return root


@pytest.mark.anyio
async def test_the_chain_screen_follows_the_run_opened_from_the_run_list(tmp_path):
    """It used to keep the first run's source: open a, its chain; back to the list, open b: b's chain."""
    root = _two_runs(tmp_path / "runs")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "ready", False))
        runs_screen = app.screen
        await pilot.press("enter")  # the first row: a
        await wait_for(pilot, lambda: app.screen is not runs_screen)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.chains["forward"] is not None)
        chain_screen = app.screen
        assert chain_screen.source.run_dir == root / "a" and chain_screen.chains["forward"].T == 20
        app.switch_mode("runs")
        await pilot.pause(0.1)
        await pilot.press("escape")  # the monitor of a, back to the list
        await wait_for(pilot, lambda: app.screen is runs_screen)
        await pilot.press("down", "enter")  # b
        await wait_for(pilot, lambda: app.screen is not runs_screen)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.chains["forward"] is not None)
        assert app.screen is chain_screen and chain_screen.source.run_dir == root / "b"
        assert chain_screen.chains["forward"].T == 30 and "T = 30" in text(app, "#chain-title")


def test_a_chain_source_opens_its_run_once(tmp_path, monkeypatch):
    import vdm.run

    opened = []
    real = vdm.run.open_run
    monkeypatch.setattr(vdm.run, "open_run", lambda p: opened.append(p) or real(p))
    later = tmp_path / "later"
    src = ChainSource(later, T=20)
    assert src.run() is None and src.schedule().T == 20  # not a run yet: the constant schedule for T
    write_run(later, n_train=3, with_sample=False)
    for _ in range(3):
        assert src.run() is not None
        src.schedule()
        src.image()
        src.step_image(1)
    assert len(opened) == 1, opened
    assert src.for_run(tmp_path / "x").index == src.index and src.for_run(tmp_path / "x").run_dir == tmp_path / "x"


@pytest.mark.anyio
async def test_the_chain_screen_opens_the_run_once(tmp_path, monkeypatch):
    import vdm.run

    opened = []
    real = vdm.run.open_run
    monkeypatch.setattr(vdm.run, "open_run", lambda p: opened.append(p) or real(p))
    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    app = VdmApp(run, source=ChainSource(run), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        for key in ("n", "s", "n"):
            await wait_for(pilot, lambda: s.chains["forward"] is not None)
            await pilot.press(key)
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        await pilot.press("b")  # no checkpoint: the oracle, after saying so
        await wait_for(pilot, lambda: s.chains["backward"] is not None)
    assert len(opened) == 1, opened
