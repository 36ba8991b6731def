"""The monitor's text panels as widgets: the status line and the run's numbers.

Each owns its style (DEFAULT_CSS) and its state: the screen hands it a frozen dataclass of facts
(:class:`StatusFacts`, :class:`RunNumbers`) and the widget words them; nothing is pre-formatted by
the screen. Every -ELBO comes with its error (:func:`tui.plot.with_error`).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.plot import with_error
from tui.run_state import ago, num


@dataclass(frozen=True)
class Elbo:
    """The newest held-out -ELBO (bits/dim) of an eval record, its stated error and its terms."""

    step: int | None
    total: float | None
    se: float | None
    reconstruction: float | None = None
    prior: float | None = None
    matching: float | None = None
    eval_loss: float | None = None
    gap: float | None = None  # a Gaussian-mixture run: model minus the optimal denoiser, paired
    gap_se: float | None = None
    seconds: float | None = None  # what the evaluation took

    @classmethod
    def of(cls, rec: dict | None) -> "Elbo | None":
        """From an eval record: the error is its Monte Carlo one (bpd_mc_se), or bpd_se in older logs."""
        if not rec:
            return None
        b = rec.get("bpd") if isinstance(rec.get("bpd"), dict) else {}
        gap = rec.get("gap_to_optimal") if isinstance(rec.get("gap_to_optimal"), dict) else {}
        se = num(rec.get("bpd_mc_se"))
        step = num(rec.get("step"))
        return cls(int(step) if step is not None else None, num(b.get("total")),
                   se if se is not None else num(rec.get("bpd_se")), num(b.get("reconstruction")),
                   num(b.get("prior")), num(b.get("matching")), num(rec.get("eval_loss")), num(gap.get("mean")),
                   num(gap.get("se")), num(rec.get("seconds")))

    def text(self) -> str:
        """'6.781±0.043' (digits to the error's), or '-'."""
        return "-" if self.total is None else with_error(self.total, self.se)


@dataclass(frozen=True)
class StatusFacts:
    """What the status line says: the run's state and why, the last record's age, the device, the run, the -ELBO."""

    state: str  # waiting, reading, training, stopping, finished, dead, none
    detail: str = ""  # the reason (finished, dead), what is awaited (waiting), how far (reading)
    age: float | None = None
    device: str = "-"
    run: str = ""
    elbo: Elbo | None = None


_STATE_MARKUP = {"training": "[green]training[/]", "stopping": "[b yellow]stopping[/]",
                 "dead": "[b red]stopped responding[/]"}


class RunStatus(Widget):
    """The monitor's status line (one row): state, age of the last record, device, run, -ELBO ± its error."""

    DEFAULT_CSS = "RunStatus { height: 1; padding: 0 1; background: $boost; }"

    facts: reactive[StatusFacts] = reactive(StatusFacts("none"))

    def render(self) -> Text:
        self._markup = self.markup()
        return Text.from_markup(self._markup)

    def markup(self) -> str:
        f = self.facts
        if f.state == "none":
            return f.detail
        if f.state in ("waiting", "reading"):
            state = f.detail
        elif f.state == "finished":
            state = f"finished ({f.detail})"
        elif f.state == "dead":
            state = f"{_STATE_MARKUP['dead']} ({f.detail})"
        else:
            state = _STATE_MARKUP.get(f.state, f.state) + (f" ({f.detail})" if f.detail else "")
        started = f.state not in ("waiting", "reading")
        last = f" · last record {ago(f.age)} ago" if f.age is not None and started else ""
        elbo = f" · -ELBO {f.elbo.text()}" if f.elbo is not None and f.elbo.total is not None else ""
        return f"{state}{elbo}{last} · {f.device if started else '-'} · [b]{f.run}[/]"  # the -ELBO before what a narrow line cuts


@dataclass(frozen=True)
class RunNumbers:
    """The monitor's info panel: the newest train numbers, the newest -ELBO with its terms, what evaluating costs."""

    lr: float | None = None
    per_s: float | None = None
    loss: float | None = None
    elbo: Elbo | None = None
    points: bool = False  # a 2-D run: bits/dim of a density, points/s
    own: bool = False  # the train loss is the run's own objective: the held-out number is the MSE
    records: int = 0
    bad: int = 0
    report_s: float = 0.0  # seconds spent evaluating and sampling (training time lost), per the log
    elapsed: float = 0.0
    after: str = "after the first evaluation"  # when the first -ELBO comes
    sample: dict | None = None  # the newest sample record: its cheap score (vdm.score.cheap_score's fields)


class RunStats(Widget):
    """The info panel under the samples: lr, throughput, losses, the -ELBO ± its error with its terms, and the
    share of the time that evaluating and sampling took."""

    DEFAULT_CSS = "RunStats { height: auto; padding: 0 1; }"

    numbers: reactive[RunNumbers] = reactive(RunNumbers(), layout=True)

    def render(self) -> Text:
        return Text.from_markup("\n".join(self.lines()))

    def lines(self) -> list[str]:
        n = self.numbers

        def f(v, digits):
            return "-" if v is None else f"{v:.{digits}f}"

        per = "points/s" if n.points else "images/s"
        lines = [f"lr {n.lr:.2e}" if n.lr is not None else "lr -",
                 f"{per} {n.per_s:,.0f}" if n.per_s is not None else f"{per} -"]
        if n.loss is not None:
            lines[0] += f"  loss {n.loss:.4f}"
        e = n.elbo
        if e is not None:
            lines[1] += f"  held-out{' MSE' if n.own else ''} {f(e.eval_loss, 4)}"
            unit = "b/d of a density" if n.points else "bits/dim"
            lines.append(f"-ELBO {e.text()} {unit} · step {e.step if e.step is not None else '-'}")
            lines.append(f" rec {f(e.reconstruction, 3)} + prior {f(e.prior, 4)}")
            lines.append(f" + matching {f(e.matching, 3)}")
            if e.gap is not None:  # a mixture run: paired, on the same t and x_t
                lines.append(f"to optimal {with_error(e.gap, e.gap_se)} (paired)")
        else:
            lines.append(f"-ELBO: {n.after}")
        shapes, tiles = (num(n.sample.get(k)) for k in ("cheap_shapes", "cheap_n")) if n.sample else (None, None)
        if shapes is not None and tiles:  # the newest grid, in the shapes classifier's eyes
            lines.append(f"grid: {round(shapes * tiles)} of {tiles:.0f} tiles hold a shape")
        if n.report_s > 0 and n.elapsed > 0:
            lines.append(f"eval+samples {n.report_s:,.0f} s, {100 * n.report_s / n.elapsed:.0f}% of the time")
        lines.append(f"records {n.records:,}" + (f"  [b red]{n.bad} bad lines[/]" if n.bad else ""))
        return lines
