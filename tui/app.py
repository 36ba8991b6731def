"""`vdm tui`: the Textual app with two modes, the monitor and the chain screen.

    vdm tui runs/demo            attach to a run (live or finished)
    vdm tui                      the chain screen on the embedded data, oracle mode
    vdm train --tui ...          train in a child process and watch it here
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.chain import ChainScreen
from tui.dialogs import HelpScreen, QuitScreen
from tui.gpu import GpuReader
from tui.monitor import GPU_INTERVAL_S, MonitorScreen, exit_reason
from vdm import DEFAULT_T
from vdm.tailer import MetricsTailer


class ChainSource:
    """Where the chain screen's image, schedule and model come from, through vdm.run.

    The schedule is the run's, or the checkpoint's when a lone checkpoint file is given,
    else the constant schedule for ``T``; the image is an index into the test split
    of the run's data set (shapes by default) or an image file.

    ``data`` names the data set without a run (``vdm tui --data gmm``): a 2-D one (vdm.config.POINT_DATASETS)
    opens the point chain screen (tui.pointchain) on its held-out points, with the schedule a fresh
    ``vdm train --data NAME`` run gets (vdm.config.POINT_DEFAULTS; ``T`` when it is not the default).
    """

    def __init__(self, run_dir: Path | None = None, checkpoint: str | None = None, image_path: str | None = None,
                 index: int = 0, T: int = DEFAULT_T, seed: int = 0, data: str | None = None):
        self.run_dir = Path(run_dir) if run_dir else None
        self.checkpoint = checkpoint
        self.image_path = image_path
        self.index = index
        self.T = T
        self.seed = seed
        self.data_name = data
        self._data = None
        self._points = None  # the held-out points of a 2-D data set, loaded once
        self._run = None  # the opened run, once its directory holds one (opened once, not per call)
        self._lock = threading.Lock()
        self.checkpoint_label = ""
        self.fallback_schedule = False  # set by the chain screen when the run's schedule fails

    @property
    def has_model(self) -> bool:
        """Whether a model can be asked for (a run or a checkpoint): else the oracle is all there is."""
        return self.checkpoint is not None or self.run_dir is not None

    def run(self):
        """The opened run (vdm.run.Run), or None without one (yet); a bad run directory is a ValueError.

        Opened once and kept: schedule, data and model all ask for it (its config does not change);
        a directory that is not a run yet is looked at again on the next call.
        """
        from vdm.run import is_run, open_run

        if self._run is None and self.run_dir is not None and is_run(self.run_dir):
            self._run = open_run(self.run_dir)
        return self._run

    def for_run(self, run_dir) -> "ChainSource":
        """A source for another run with this one's image, T and seed (a checkpoint belongs to its own run)."""
        return ChainSource(run_dir, None, self.image_path, self.index, self.T, self.seed, self.data_name)

    def points_data(self) -> str | None:
        """The 2-D data set the chains are of (the run's, else ``data``), or None for images."""
        from vdm.config import is_points

        try:
            run = self.run()
        except ValueError:  # a broken run directory: the image chain screen says why
            return None
        name = run.config.data if run is not None else self.data_name
        return name if name is not None and is_points(name) else None

    def point_schedule(self):
        """The schedule of a 2-D chain: the run's, else what a fresh run on the data set gets."""
        from vdm.config import POINT_DEFAULTS
        from vdm.schedule import make_schedule

        run = self.run()
        if run is not None:
            return run.schedule
        return make_schedule(POINT_DEFAULTS["schedule"], self.T if self.T != DEFAULT_T else POINT_DEFAULTS["T"])

    def points(self):
        """The held-out points float32 [N, 2] of the 2-D data set (the run's split, or seed 0's)."""
        from vdm import data as datasets

        with self._lock:
            if self._points is None:
                run = self.run()
                self._points = run.test_images() if run is not None else datasets.load(self.points_data(), "test")
            return self._points

    def point_denoiser(self, optimal: bool, schedule):
        """(x̂_0 model, its name): the run's checkpoint, or (``optimal``, or without a run) the Bayes-optimal
        E[x_0 | x_t] of a Gaussian mixture (vdm.cloud.denoiser_for); a ValueError when there is neither."""
        from vdm.cloud import denoiser_for

        if not optimal and self.has_model:
            den, meta = self._model()
            run = self.run()
            self.checkpoint_label = f"{run.name if run is not None else meta.get('model')} at step {meta.get('step')}"
            return den, self.checkpoint_label
        return denoiser_for(self.points_data(), schedule)

    def schedule(self):
        from vdm.schedule import make_schedule

        if self.fallback_schedule:
            return make_schedule("constant", self.T)
        run = self.run()
        if run is not None:
            return run.schedule
        if self.checkpoint:
            return self._model()[0].schedule
        return make_schedule("constant", self.T)

    def data(self):
        from vdm import data as datasets

        with self._lock:
            if self._data is None:
                try:
                    run = self.run()
                    name = self.data_name if self.data_name in ("shapes", "cifar10", "folder") else "shapes"
                    self._data = run.test_images() if run is not None else datasets.load(name, "test")
                except ValueError:  # the run's data set is not here (CIFAR-10 elsewhere): the embedded shapes
                    self._data = datasets.load("shapes", "test")
            return self._data

    def image(self):
        """(uint8 [3, 32, 32], a label) of the chosen image."""
        from vdm import data as datasets

        if self.image_path:
            return datasets.load_image(self.image_path), Path(self.image_path).name
        x = self.data()
        if not 0 <= self.index < len(x):
            raise ValueError(f"image index {self.index} is outside the test split (0..{len(x) - 1}).")
        return x[self.index], f"test image #{self.index}"

    def step_image(self, d: int) -> None:
        n = len(self.data())
        self.image_path = None
        self.index = (self.index + d) % n

    def pick(self, value: str) -> None:
        if value.isdigit():
            n = len(self.data())
            if int(value) >= n:
                raise ValueError(f"image index {value} is outside the test split (0..{n - 1}).")
            self.index, self.image_path = int(value), None
            return
        from vdm import data as datasets

        datasets.load_image(value)  # raises ValueError with a sentence when it is not an image
        self.image_path = value

    def _model(self):
        from vdm.run import open_model

        run = self.run()
        if run is not None:  # the run's newest checkpoint, or the one asked for, refused if not the run's model
            den, meta = run.denoiser("cpu", checkpoint=self.checkpoint)
        elif self.checkpoint:
            den, meta, _ = open_model(self.checkpoint, "cpu")
        else:
            raise ValueError("no run or checkpoint to sample with; press o for the oracle.")
        return den, meta

    def denoiser(self):
        """The checkpoint's model (EMA weights when present), refused if it is not the run's model."""
        den, meta = self._model()
        self.checkpoint_label = f"{meta.get('model')} at step {meta.get('step')}"
        return den


class VdmApp(App):
    CSS_PATH = "vdm.tcss"
    TITLE = "vdm"
    BINDINGS = [
        Binding("1", "switch_mode('monitor')", "monitor"),
        Binding("2", "switch_mode('chain')", "chain"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_app", "quit"),
        Binding("ctrl+c", "quit_app", "quit", show=False, priority=True),
    ]

    def __init__(self, run_dir: str | Path | None = None, *, source: ChainSource | None = None, process=None,
                 start: str | None = None, clock=time.time, poll_interval: float = 0.5, gpu_factory=GpuReader,
                 tailer: MetricsTailer | None = None, runs_root: str | Path | None = None,
                 gpu_interval: float = GPU_INTERVAL_S):
        super().__init__()
        self.runs_root = Path(runs_root) if runs_root is not None else None  # `vdm tui runs/`: the run list
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.source = source or ChainSource(self.run_dir)
        self.process = process
        self.clock = clock
        self.poll_interval = poll_interval
        self.gpu_factory = gpu_factory
        self.gpu_interval = gpu_interval  # seconds between the monitor's GPU readings
        self.tailer = tailer  # of RUN_DIR/metrics.jsonl, when the caller started reading it already
        self.start_mode = start or ("runs" if self.runs_root is not None else
                                    "monitor" if self.run_dir is not None else "chain")
        self.outcome = "quit"  # "stopped" or "detached" when a training process was attached

    def on_mount(self) -> None:
        self._monitors: list[MonitorScreen] = []  # the monitor mode's screen, once made
        self.add_mode("monitor", self._monitor_screen)
        self.add_mode("chain", self._chain_screen)
        if self.runs_root is not None:
            from tui.run_list import RunsScreen

            self.add_mode("runs", lambda: RunsScreen(self.runs_root, self.clock))
        self.switch_mode(self.start_mode)
        if self.process is not None:
            self.set_interval(1.0, self._watch_process)
            self._process_reported = False

    @staticmethod
    def _kind(source: ChainSource) -> str:
        return "points" if source.points_data() is not None else "images"

    def _chain_screen(self) -> Screen:
        """The chain screen for the source: of 2-D points (tui.pointchain) or of images."""
        self._chain_kind = self._kind(self.source)
        if self._chain_kind == "points":
            from tui.pointchain import PointChainScreen

            return PointChainScreen(self.source)
        return ChainScreen(self.source)

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """The palette's Screenshot (an SVG of the screen): into ``path``, else the run directory, else the current
        one (a server has no ~/Downloads, Textual's default), and a notification saying where, or why it could not
        be written. In a browser (`vdm tui --serve`) it is downloaded there, as Textual does."""
        if path is None and self.is_web:
            self.deliver_screenshot(filename)
            return
        places = [Path(path)] if path is not None else [p for p in (self.run_dir, Path.cwd()) if p is not None]
        why = "no folder to write it to"
        for place in places:
            try:
                saved = self.save_screenshot(filename, str(place))
            except OSError as e:  # a read-only run directory, a full disk: the next place, else the reason
                why = f"{place}: {e.strerror or e}"
                continue
            self.notify(f"screenshot saved to {saved}", timeout=8)
            return
        self.notify(f"the screenshot could not be written ({why}).", severity="error", timeout=15)

    def closing_lines(self) -> list[str]:
        """For the terminal once the app has closed: the closing report of the run it was opened on, when that
        run has finished (tui.training.closing_lines); [] for a live run, the run list and the chain screen."""
        from tui.training import closing_lines

        if self.runs_root is not None or self.run_dir is None:
            return []
        for screen in getattr(self, "_monitors", []):
            if screen.run_dir == self.run_dir:
                with screen.lock:
                    end, ev, cfg = screen.state.end, screen.state.last_eval, screen.state.config
                size = cfg.get("eval_size") if isinstance(cfg, dict) else None
                return closing_lines(self.run_dir, end, ev, size if isinstance(size, int) else None)
        return []

    def open_run_dir(self, path: Path) -> None:
        """From the run list: the monitor of one run, pushed over the list (escape goes back)."""
        self.run_dir = Path(path)
        self.source = self.source.for_run(self.run_dir)  # the chain screen takes it up when it is shown next
        made = getattr(self, "_chain_kind", None)
        if made is not None and self.current_mode != "chain" and made != self._kind(self.source):
            # a run of the other kind (points vs images): its chain screen is made when it is next shown
            self.remove_mode("chain")
            self.add_mode("chain", self._chain_screen)
            self._chain_kind = None
        screen = MonitorScreen(self.run_dir, self.poll_interval, self.clock, self.gpu_factory,
                               gpu_interval=self.gpu_interval)
        self.push_screen(screen)

    def _watch_process(self) -> None:
        code = self.process.poll()
        if code is None or self._process_reported:
            return
        self._process_reported = True
        if code == 0:
            self.notify("training finished.", timeout=6)
        elif code < 0:  # a signal: its name is the reason (the log's last line is whatever it printed before)
            self.notify(f"training {exit_reason(code)}.", severity="error", timeout=30)
        else:
            line = self.process.last_line()
            self.notify(f"training exited with status {code}: {line}", severity="error", timeout=30)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":  # Textual's writes to ~/Downloads and fails without a reason
                # after a moment: the palette is closed by then and not in the picture
                command = SystemCommand(command.title, "Save an SVG of the screen in the run directory or the "
                                        "current one", lambda: self.set_timer(0.1, self.action_screenshot))
            yield command
        yield SystemCommand("Monitor", "live training curves, samples and GPU", lambda: self.switch_mode("monitor"))
        if self.runs_root is not None:
            yield SystemCommand("Runs", f"every run under {self.runs_root}", lambda: self.switch_mode("runs"))
        yield SystemCommand("Chain: forward", "step through q(x_t | x_{t-1})", lambda: self._chain("forward"))
        yield SystemCommand("Chain: backward", "step through a sampling chain", lambda: self._chain("backward"))
        yield SystemCommand("Loss: toggle log scale", "the monitor's loss plot", lambda: self._monitor("toggle_log"))
        yield SystemCommand("Samples: full screen", "the newest sample grid", lambda: self._monitor("samples"))
        yield SystemCommand("Help", "keys and what the screens show", self.action_help)

    def _chain(self, mode: str) -> None:
        self.switch_mode("chain")
        self.call_after_refresh(lambda: self.screen.run_action(f"mode('{mode}')"))

    def _monitor(self, action: str) -> None:
        self.switch_mode("monitor")
        self.call_after_refresh(lambda: self.screen.run_action(action))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Every quit path (the palette's "Quit" too) asks before it leaves a training child."""
        self.action_quit_app()

    def action_quit_app(self) -> None:
        if isinstance(self.screen, QuitScreen):
            return
        if self.process is None or not self.process.running:
            self.exit()
            return

        def chosen(what: str | None) -> None:
            if what == "detach":
                self.outcome = "detached"
                self.exit()
            elif what == "stop":
                self.notify("stopping the training: it saves a checkpoint and samples first …", timeout=60)
                self._mark_stopping()
                self._stop_training()

        self.push_screen(QuitScreen(self.process.pid, str(self.run_dir)), chosen)

    def _mark_stopping(self) -> None:
        """Every monitor of this app shows the run as stopping from now until its end record."""
        for screen in {*self.screen_stack, *self._monitors}:
            if isinstance(screen, MonitorScreen) and screen.run_dir == self.run_dir:
                screen.stop_asked()

    def _monitor_screen(self) -> MonitorScreen:
        screen = MonitorScreen(self.run_dir, self.poll_interval, self.clock, self.gpu_factory, self.tailer,
                               self.gpu_interval)
        self._monitors.append(screen)
        return screen

    def _stop_training(self) -> None:
        def stop() -> None:
            self.process.stop()
            self.call_from_thread(self._stopped)

        threading.Thread(target=stop, daemon=True).start()

    def _stopped(self) -> None:
        self.outcome = "stopped"
        self.exit()


def run_app(run_dir=None, *, source=None, process=None, start=None, tailer=None, runs_root=None,
            closing: bool = False) -> str:
    """Run the app until it is quit; its outcome ("quit", "stopped", "detached"). ``closing``: then print the
    closing report of the run when it has finished (VdmApp.closing_lines)."""
    app = VdmApp(run_dir, source=source, process=process, start=start, tailer=tailer, runs_root=runs_root)
    app.run()
    if closing:
        for line in app.closing_lines():
            print(line)
    return app.outcome
