"""One run API (vdm.run), one reverse step (vdm.diffusion.reverse_step) and its KL (vdm.elbo.matching_kl).

The faces (the command line, the terminal UI, the scenes) open runs only through vdm.run: checked on
their import graph and their source. The reverse step and the KL are checked against independent
routes in float64: the posterior's mean and variance drawn by hand, and the SNR form of the KL.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch

from vdm import DEFAULT_T
from vdm.diffusion import posterior, reverse_table, q_sample, reverse_step
from vdm.elbo import matching_kl
from vdm.run import identity_of, is_run, new_run, open_model, open_run, schedule_of
from vdm.schedule import Schedule, make_schedule
from vdm.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
FACES = sorted([*ROOT.glob("tui/*.py"), *ROOT.glob("animations/*.py"), *ROOT.glob("vdm_cli/*.py")])


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("path", FACES, ids=lambda p: str(p.relative_to(ROOT)))
def test_faces_open_runs_only_through_vdm_run(path):
    """No face imports the checkpoint module or the raw loader, or names config.json itself."""
    imports = _imports(path)
    assert not {"vdm.checkpoint", "vdm.denoiser.load_denoiser", "vdm.train.load_run_config"} & imports, imports
    assert "vdm import checkpoint" not in path.read_text()
    strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    assert not any("config.json" in s and "{" not in s and len(s) < 40 for s in strings), \
        "a face names config.json: read it through vdm.run.open_run"


def test_default_T_is_written_once():
    """The assignment's T = 500 lives in vdm.DEFAULT_T; no other source file spells it as a default."""
    offenders = []
    for p in [*ROOT.glob("vdm/*.py"), *ROOT.glob("tui/*.py")]:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.keyword) and node.arg in ("default", "T") and \
                    isinstance(node.value, ast.Constant) and node.value.value == 500:
                offenders.append(f"{p.name}:{node.value.lineno}")
            if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant) and node.value.value == 500:
                offenders.append(f"{p.name}:{node.lineno}")
    assert offenders == []
    assert DEFAULT_T == 500 and TrainConfig().T == DEFAULT_T


# -- opening a run ---------------------------------------------------------------------

def _write(run: Path, obj) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return run


def test_open_run_reads_the_config_and_makes_its_schedule(tmp_path):
    cfg = TrainConfig(runs_dir=str(tmp_path), name="r", schedule="cosine", T=40, epochs=3)
    run = new_run(cfg, parameters=1234)
    run.path.mkdir()
    run.write_config()
    opened = open_run(run.path)
    assert opened.config == cfg and opened.parameters == 1234
    assert opened.schedule == make_schedule("cosine", 40) == schedule_of(cfg)
    assert opened.identity == {"model": "assignment", "prediction": "x0", "schedule": Schedule.cosine(40).config()}
    assert opened.checkpoint() is None and opened.latest_samples is None
    assert is_run(run.path) and not is_run(tmp_path)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        opened.denoiser()


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "JSON object"),
    ("{not json", "not a valid run config"),
    ({"T": "many"}, "wrong type"),
    ({"T": 0}, "at least 1"),
    ({"schedule": "cosine", "alpha": 0.9}, "only applies to the constant"),
    ({"schedule": "exotic"}, "unknown schedule"),
    ("[" * 5000 + "]" * 5000, "not a valid run config"),
])
def test_a_config_edited_by_hand_is_one_sentence(tmp_path, content, message):
    run = _write(tmp_path / "r", content)
    with pytest.raises(ValueError, match=message) as e:
        open_run(run)
    assert "\n" not in str(e.value) and str(run) in str(e.value)


def test_not_a_run_directory_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, message in ((tmp_path / "missing", "does not exist"), (tmp_path / "file", "not a directory"),
                          (tmp_path, "no config.json")):
        with pytest.raises(ValueError, match=message):
            open_run(path)


def test_a_checkpoint_is_checked_against_its_run(tmp_path):
    """A checkpoint file inside a run is that run's: one of another schedule is refused by name."""
    from vdm import checkpoint as ckpt
    from vdm.nets import build_net

    cfg = TrainConfig(runs_dir=str(tmp_path), name="r", T=20)
    run = new_run(cfg)
    run.path.mkdir()
    run.write_config()
    net = build_net("assignment", 20)
    tensors = {f"model/{k}": v for k, v in net.state_dict().items()}
    side = ckpt.save(run.checkpoints_dir, 7, tensors, identity_of(cfg))
    den, meta, opened = open_model(run.path)
    assert meta["step"] == 7 and opened.path == run.path and den.schedule == schedule_of(cfg)
    den2, _, opened2 = open_model(side)  # the sidecar itself: still the run's, still checked
    assert opened2 is not None and opened2.path == run.path
    other = identity_of(TrainConfig(T=20, schedule="cosine"))
    side = ckpt.save(run.checkpoints_dir, 8, tensors, other)
    with pytest.raises(ValueError, match="schedule differs"):
        open_model(run.path)


# -- the reverse step and its KL, against independent routes -----------------------------

@pytest.mark.parametrize("kind", ["constant", "cosine"])
def test_reverse_step_is_the_posterior_at_x0_hat(kind):
    """x_{t-1} = mu_q(x_t, x̂_0) + sigma_q(t) z, for every t; at t = 1 the mean itself."""
    s = make_schedule(kind, 30)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    x0_hat = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    table = reverse_table(s, dtype=torch.float64)
    for t in (1, 2, 7, 30):
        z = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
        x_prev, mean = reverse_step(table, x_t, x0_hat, t, z)
        # by hand from the schedule: Luo eq. 84's mean and variance
        a, ab, ab_prev = float(s.alpha[t]), float(s.alpha_bar[t]), float(s.alpha_bar[t - 1])
        want_mean = (math.sqrt(a) * (1 - ab_prev) * x_t + math.sqrt(ab_prev) * (1 - a) * x0_hat) / (1 - ab)
        var = (1 - a) * (1 - ab_prev) / (1 - ab)
        torch.testing.assert_close(mean, want_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(x_prev, want_mean + math.sqrt(var) * z, rtol=1e-12, atol=1e-12)
        m, v = posterior(s, x_t, x0_hat, t)
        torch.testing.assert_close(mean, m, rtol=1e-12, atol=1e-12)
    assert torch.equal(reverse_step(table, x_t, x0_hat, 1, z)[0], reverse_step(table, x_t, x0_hat, 1, None)[0])


def test_matching_kl_is_the_snr_form():
    """KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) = 1/2 (SNR(t-1) - SNR(t)) ||x_0 - x̂_0||^2 (Luo eq. 108)."""
    s = make_schedule("constant", 50)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    for t in (2, 10, 50):
        x_t = q_sample(s, x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        kl = matching_kl(s, x_t, x0, x0_hat, t)
        snr = s.snr
        want = 0.5 * float(snr[t - 1] - snr[t]) * ((x0 - x0_hat) ** 2).flatten(1).sum(1)
        torch.testing.assert_close(kl, want, rtol=1e-9, atol=1e-12)
    assert float(matching_kl(s, x_t, x0, x0, 7).abs().max()) == 0.0
