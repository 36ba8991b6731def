"""The chain screen of 2-D points: a whole cloud through the forward and backward chains.

Left, the cloud x_t at step t (thousands of points, vdm.cloud.forward_cloud or backward_cloud) over
the density of q(x_t) as shading (exact for a Gaussian mixture, vdm.cloud.density_grid; else a
histogram of the forward cloud at t, vdm.cloud.histogram_grid), with the paths of a handful of
points traced from the chain's start to t. Right, the x̂_0 field at t (vdm.cloud.x0_field): from
each point x_t of a grid a segment to x̂_0(x_t, t), over the data's density q(x_0): where the
denoiser (the run's model, or the Bayes-optimal E[x_0 | x_t] of a mixture) sends each x_t.

Everything is computed once per chain in a thread worker; stepping only picks row i.
The keys are the image chain screen's (tui.chain.ChainScreen, which this extends): ← → [ ] home end,
space + -, f b, s a new seed, o the model / the optimal denoiser, k fewer steps, d DDIM; n / p trace
other points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, ProgressBar

from tui.chain import ChainProgress, ChainReady, ChainScreen, Scrubber
from tui.chain_data import Chain, ScheduleTable
from tui.cloud import PATH_COLOURS, Cloud, CloudPanel, Frame, Path, Segments, outside
from tui.dialogs import FIRST_KEYS
from tui.readout import Readout

N_PATHS = 6  # points whose paths are traced
TAIL = 12  # steps of each traced path drawn back from t: a whole ancestral path is a tangle that hides the cloud
FIELD_RES = 13  # the x̂_0 field's grid is FIELD_RES x FIELD_RES points over the view
NEAR = 3.0  # a point is "on a mode" within NEAR of the data's own standard deviations of a mode's centre at t
CLOUD = (255, 150, 40)  # the cloud: vdm.images.scatter's orange, brighter on black
SHADE = (40, 70, 150)  # q(x_t): dark enough that the orange dots stay legible on its densest cells
FIELD, HEAD = (110, 110, 135), (255, 225, 80)  # the x̂_0 segments and their ends


@dataclass(eq=False)
class PointChain(Chain):
    """A cloud along one chain. Row i is step t_i = steps[i]: x[i] is the cloud x_{t_i} [N, 2]; the forward
    chain has a row for every t (i = t), the backward one runs x_T (i = K) down to x_0 (i = 0).

    field[i] = (grid [M, 2], x̂_0(grid, t_i) [M, 2]), None without a denoiser; near[i] the share of the
    cloud within NEAR standard deviations of a component of q(x_{t_i}) (mixtures only, else None).
    """

    kind: str  # "forward" | "backward"
    table: ScheduleTable
    x: np.ndarray
    steps: np.ndarray
    data: str
    source: str  # what made the cloud (the title names it)
    denoiser: str | None  # what the field and a backward chain's x̂_0 come from
    field: list | None
    near: np.ndarray | None
    seed: int
    view: float
    shades: object  # i -> (res -> [res, res] density of q(x_{t_i})), and "data": q(x_0)
    sampler: str = "ancestral"


class Shades:
    """The density of q(x_t) on a grid for any t: exact for a Gaussian mixture (vdm.cloud.density_grid), else
    a histogram of the forward cloud at t (vdm.cloud.histogram_grid). Each grid is computed once per size."""

    def __init__(self, mixture, schedule, forward_x: np.ndarray, view: float):
        self.mixture, self.schedule, self.fwd, self.view = mixture, schedule, forward_x, view
        self.exact = mixture is not None
        self._cache: dict = {}

    def at(self, t: int):
        def grid(res: int) -> np.ndarray:
            key = (t, res)
            g = self._cache.get(key)
            if g is None:
                import torch

                from vdm.cloud import density_grid, histogram_grid

                if self.exact:
                    g = density_grid(self.mixture, self.schedule, t, res, self.view).numpy()
                else:
                    g = histogram_grid(torch.from_numpy(self.fwd[t]), res, self.view).numpy()
                if len(self._cache) > 256:
                    self._cache.clear()
                self._cache[key] = g
            return g

        return grid

    def describe(self, t: int) -> str:
        if self.exact:
            return f"q(x_{t}) exact"
        return f"q(x_{t}): histogram of the forward cloud" if t else "q(x_0): histogram of the held-out points"


def near_modes(x: np.ndarray, mixture, alpha_bar: np.ndarray) -> np.ndarray:
    """[K+1]: for each row x[i] [N, 2] the share of points within NEAR s of a mode's centre at t, sqrt(abar_t) mu_k
    (s: the data's own component std, vdm.gmm). A fixed width, not q(x_t)'s sigma_t (which grows to 1 and
    would count a spread-out cloud as on its modes): the share rises as the cloud gathers, to about 99% on the data."""
    mu = mixture.means.numpy()
    out = np.empty(len(x))
    for i, (xi, ab) in enumerate(zip(x, alpha_bar)):
        d = np.sqrt(((xi[:, None, :] - math.sqrt(ab) * mu[None]) ** 2).sum(-1)).min(1)
        out[i] = float((d < NEAR * mixture.std).mean())
    return out


def compute(source, kind: str, seed: int, optimal: bool, steps: int | None, sampler: str, progress=None) -> PointChain:
    """The chain of ``kind`` from a tui.app.ChainSource of 2-D data (runs in a worker thread)."""
    import torch

    from vdm import gmm
    from vdm.cloud import backward_cloud, forward_cloud, x0_field
    from vdm.images import POINT_VIEW

    data = source.points_data()
    schedule = source.point_schedule()
    x0 = source.points()
    mixture = gmm.layout(data) if gmm.is_mixture(data) else None
    fwd = forward_cloud(schedule, x0, seed).numpy()
    try:
        den, name = source.point_denoiser(optimal, schedule)
    except ValueError:
        if kind == "backward":
            raise
        den, name = None, None  # the forward chain needs no model; the field panel says there is none
    if den is not None and getattr(den, "schedule", None) is not None:
        schedule = den.schedule  # a checkpoint's own (the run's)
    if kind == "forward":
        x, t = fwd, np.arange(schedule.T + 1)
        what = f"{len(x0):,} held-out points of {data}"
    else:
        K = None if steps is None or steps >= schedule.T else steps
        with torch.no_grad():
            _, chain = backward_cloud(den, schedule, len(x0), seed, steps=K, sampler=sampler)
        x, t = chain.x.numpy(), chain.t.numpy()
        what = f"{len(x0):,} samples from {name}"
    field = None
    if den is not None:
        field = []
        with torch.no_grad():
            for j, tj in enumerate(t):
                if tj == 0:  # x̂_0(x_0, 0) = x_0: the clean point is its own estimate
                    from vdm.cloud import grid_points

                    g = grid_points(FIELD_RES, POINT_VIEW).float().numpy()
                    field.append((g, g))
                else:
                    g, h = x0_field(den, int(tj), FIELD_RES, POINT_VIEW)
                    field.append((g.numpy(), h.numpy()))
                if progress:
                    progress(j + 1, len(t))
    ab = schedule.alpha_bar.double().numpy()[t]
    near = near_modes(x, mixture, ab) if mixture is not None else None
    return PointChain(kind, ScheduleTable.of(schedule), x.astype(np.float32), np.asarray(t), data, what, name, field,
                      near, seed, POINT_VIEW, Shades(mixture, schedule, fwd, POINT_VIEW), sampler)


def cloud_frame(c: PointChain, i: int, paths: np.ndarray) -> Frame:
    """The left panel at row i: the cloud x_{t_i} over q(x_{t_i}), and the paths of the points ``paths`` over
    the last TAIL steps the chain took to row i (from x_0 forward, from x_T backward)."""
    t = int(c.steps[i])
    if c.kind == "forward":
        tracks = [c.x[max(i - TAIL, 0): i + 1, j] for j in paths]
    else:
        tracks = [c.x[i: i + TAIL + 1, j][::-1] for j in paths]
    shown = [Path(tr, PATH_COLOURS[k % len(PATH_COLOURS)]) for k, tr in enumerate(tracks)]
    off = outside(c.x[i], c.view)
    note = f"[rgb{SHADE}]█[/] {c.shades.describe(t)} · [rgb{CLOUD}]⣿[/] x_{t}"
    if off >= 0.005:
        note += f" · {100 * off:.0f}% outside"
    return Frame(c.view, c.shades.at(t), SHADE, clouds=(Cloud(c.x[i], CLOUD, "x_t"),), paths=tuple(shown),
                 title=f"x_{t} · {len(c.x[i]):,} points · {len(paths)} paths", note=note,
                 meta={"t": t, "i": i, "kind": c.kind})


def field_frame(c: PointChain, i: int) -> Frame | None:
    """The right panel at row i: a segment from each grid point x_t to x̂_0(x_t, t_i), over q(x_0)."""
    if c.field is None:
        return None
    t = int(c.steps[i])
    g, h = c.field[i]
    who = escape("E[x_0|x_t]") if c.denoiser and "optimal" in c.denoiser else "the model"
    return Frame(c.view, c.shades.at(0), SHADE, segments=(Segments(g, h, FIELD, HEAD),),
                 title=f"x_t → x̂_0(x_t, {t}) of {who}",
                 note=f"[rgb{SHADE}]█[/] q(x_0) · [rgb{FIELD}]⠒[/] x_t → [rgb{HEAD}]⠂[/] x̂_0",
                 meta={"t": t, "i": i})


def _g(v) -> str:
    """A number in four significant digits (∞ for infinity): the info lines must fit 80 columns."""
    v = float(v)
    return "∞" if math.isinf(v) else f"{v:.4g}"


class CloudInfo(Widget):
    """The numbers of the row shown: t (and the next step s), ᾱ_t, SNR, the coefficients of x_t; where the
    cloud and the x̂_0 field come from; for a mixture the share of the cloud near a mode of q(x_t)."""

    DEFAULT_CSS = "CloudInfo { height: 3; padding: 0 1; }"
    chain: reactive[PointChain | None] = reactive(None, always_update=True)
    i: reactive[int] = reactive(0)
    steps_label: reactive[str] = reactive("")

    def render(self) -> Text:
        c = self.chain
        if c is None:
            return Text("computing the cloud …")
        i = min(self.i, c.K)
        t, tab = int(c.steps[i]), c.table
        nxt = f" → s = {int(c.steps[i - 1])}" if c.kind == "backward" and c.K != c.T and i >= 1 else ""
        wide = self.size.width >= 110
        line1 = (f"[b]t[/] = {t} / {c.T}{nxt}   [b]ᾱ_t[/] = {_g(tab.alpha_bar[t])}   [b]SNR[/] = {_g(tab.snr[t])}   "
                 f"x_t = {_g(tab.signal[t])} x_0 + {_g(tab.noise[t])} ε")
        near = "" if c.near is None else f"   [b]on a mode[/] {100 * c.near[i]:.0f}%" + \
            (f" (within {NEAR:g} data std of √ᾱ_t μ_k)" if wide else f" (< {NEAR:g} data std)")
        line2 = f"[b]x̂_0[/] from {escape(c.denoiser)}" if c.denoiser else f"[b]x̂_0[/]: no denoiser for {c.data} without a run"
        line2 += near
        line3 = (f"[b]k[/] steps: {self.steps_label}   [b]d[/] sampler: {c.sampler}   [b]o[/] model / optimal   "
                 f"[b]n[/] other paths") if c.kind == "backward" else \
            "[b]b[/] the backward chain   [b]n[/] other paths   [b]s[/] new seed"
        return Text.from_markup("\n".join((line1, line2, line3)))


class PointChainScreen(ChainScreen):
    """ChainScreen's keys and playback over a PointChain: the two panels and the info lines below."""

    DEFAULT_CSS = "PointChainScreen #cloud-body { height: 1fr; }"

    BINDINGS = [
        *FIRST_KEYS,
        Binding("n", "image(1)", "other paths"),
        Binding("p", "image(-1)", "prev paths", show=False),
        Binding("o", "oracle", "model/optimal"),
    ]

    def __init__(self, source):
        super().__init__(source)
        self.path_set = 0  # which handful of points is traced (n / p)
        # without a run (or a checkpoint), the optimal denoiser of a mixture is the model there is
        self.use_oracle = not source.has_model

    def compose(self) -> ComposeResult:
        yield Readout(id="chain-title")
        with Horizontal(id="cloud-body"):
            yield CloudPanel(id="cloud-xt")
            yield CloudPanel(id="cloud-field")
        yield CloudInfo(id="cloud-info")
        yield ProgressBar(total=100, show_eta=False, id="chain-progress")
        yield Scrubber(id="scrubber")
        yield Readout(id="scrub-text")
        yield Footer()

    def _mounted(self) -> None:
        self.query_one("#cloud-xt", CloudPanel).empty = "computing the cloud …"

    @work(thread=True, exclusive=True, group="chain")
    def _compute(self, mode: str, seed: int, oracle: bool, steps: int | None, sampler: str) -> None:
        try:
            chain = compute(self.source, mode, seed, oracle, steps, sampler,
                            progress=lambda d, n: self.post_message(ChainProgress(d, n)) if d % 10 == 0 or d == n else None)
        except (ValueError, OSError) as e:
            self.post_message(ChainReady(None, str(e)))
            return
        except Exception as e:  # anything else: a sentence, never "computing" forever
            self.post_message(ChainReady(None, f"{type(e).__name__}: {e}"))
            return
        self.post_message(ChainReady(chain))

    def _failed(self, error: str) -> None:
        """No chain: a mixture's run falls back to the optimal denoiser; anything else says why."""
        from vdm.gmm import is_mixture

        if self.mode == "backward" and not self.use_oracle and is_mixture(self.source.points_data() or ""):
            self.use_oracle = True  # keep working: the optimal denoiser of the mixture
            self.notify("showing the optimal denoiser E[x_0 | x_t] instead.")
            self.compute()
        else:
            self.query_one("#scrub-text", Readout).set(f"no chain: {error}")
            if self.mode != "forward":  # back to the chain there is (the reason was a notification), not
                # "computing" panels for one that never comes
                self.mode = "forward"
                self.show() if self.chain is not None else self.compute()

    def _ready(self, c: PointChain) -> None:
        self.chains[c.kind] = c
        self.pos[c.kind] = min(self.pos[c.kind], c.K)
        self._restore_t(c.kind, c)
        self.show()

    def paths(self, c: PointChain) -> np.ndarray:
        """The indices of the traced points: N_PATHS of the cloud, drawn from the seed and the path set."""
        rng = np.random.default_rng([c.seed, self.path_set])
        return rng.choice(c.x.shape[1], size=min(N_PATHS, c.x.shape[1]), replace=False)

    def _show_view(self, c: PointChain) -> None:
        i = self.frame()
        self.query_one("#cloud-xt", CloudPanel).frame = cloud_frame(c, i, self.paths(c))
        field = self.query_one("#cloud-field", CloudPanel)
        field.empty = f"no x̂_0: --data {c.data} has no exact denoiser; give a run (vdm tui runs/NAME)"
        field.frame = field_frame(c, i)
        info = self.query_one(CloudInfo)
        info.steps_label = f"all {c.T}" if c.K == c.T else f"{c.K} of {c.T}"
        info.chain, info.i = c, i

    def _show_computing(self) -> None:
        """The panels of the other chain (or seed, or denoiser) must not stand for this one: blank until it comes."""
        for name in ("#cloud-xt", "#cloud-field"):
            panel = self.query_one(name, CloudPanel)
            panel.empty = "computing the cloud …"
            panel.frame = None
            panel.border_title, panel.border_subtitle = "", ""
        self.query_one(CloudInfo).chain = None

    def _maybe_prerender(self) -> None:
        """Nothing to draw ahead: a panel rasterises its frame when shown (a few ms)."""

    def action_mode(self, mode: str) -> None:
        if self.playing:
            self.action_play()
        self.mode = mode
        if self.chain is None and self._computing != mode:
            self.compute()
        else:
            self.show()

    def action_image(self, d: int) -> None:
        """Trace another handful of points (n / p)."""
        self.path_set += d
        if self.chain is not None:
            self.show()

    def action_pick(self) -> None:
        self.notify("2-D data: n / p trace other points; the cloud is the whole held-out set.")

    def action_oracle(self) -> None:
        """The run's model or the Bayes-optimal denoiser E[x_0 | x_t] (a Gaussian mixture's)."""
        from vdm.gmm import is_mixture

        data = self.source.points_data()
        if not self.source.has_model:
            self.notify(f"no run: the {'optimal denoiser is' if is_mixture(data) else 'forward chain is'} all there is.")
            return
        if not is_mixture(data):
            self.notify(f"--data {data} has no exact denoiser to compare with; only a mixture (gmm, gmm-grid) has.")
            return
        self.use_oracle = not self.use_oracle
        self.chains = {"forward": None, "backward": None}  # the field of both chains is the denoiser's
        self.compute()
