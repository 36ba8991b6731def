"""The NVML reader: a clear 'CPU only' state instead of a crash, and readings when NVML answers."""

import sys

import pytest

from tui.gpu import GpuReader
from tui_fixtures import FakeNvml


def test_pynvml_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    g = GpuReader()
    assert not g.available and "not installed" in g.reason
    assert g.read() == []


def test_nvml_init_raises(fake_nvml):
    class NVMLError_LibraryNotFound(Exception):
        pass

    fake_nvml.init_error = NVMLError_LibraryNotFound("NVML Shared Library Not Found")
    g = GpuReader(nvml=fake_nvml)
    assert not g.available and g.reason.startswith("NVML unavailable") and "Not Found" in g.reason
    assert g.read() == []


def test_readings_from_nvml(fake_nvml):
    g = GpuReader(nvml=fake_nvml)
    assert g.available
    (r,) = g.read()
    assert r.name == "Fake GPU 80GB" and r.util == 87 and r.temp == 64
    assert r.mem_used == 12 * 2**30 and r.mem_total == 80 * 2**30 and r.power == 312.0


def test_memory_without_nvml_v2_is_v1s(fake_nvml, monkeypatch):
    """A binding that knows no v2 struct (no version argument) or a driver that refuses it: v1's used."""
    class NVMLError_FunctionNotFound(Exception):
        pass

    v1 = fake_nvml.nvmlDeviceGetMemoryInfo(0).used
    assert v1 > 12 * 2**30
    monkeypatch.setattr(type(fake_nvml), "nvmlMemory_v2", None)
    (r,) = GpuReader(nvml=fake_nvml).read()
    assert r.mem_used == v1
    monkeypatch.setattr(type(fake_nvml), "nvmlMemory_v2", 33554472)
    real = type(fake_nvml).nvmlDeviceGetMemoryInfo

    def old_driver(self, h, version=None):
        if version is not None:
            raise NVMLError_FunctionNotFound()
        return real(self, h)

    monkeypatch.setattr(type(fake_nvml), "nvmlDeviceGetMemoryInfo", old_driver)
    (r,) = GpuReader(nvml=fake_nvml).read()
    assert r.mem_used == v1


def test_unsupported_value_is_none_and_a_dead_gpu_stops_the_reader(fake_nvml):
    class NVMLError_NotSupported(Exception):
        pass

    class NVMLError_GpuIsLost(Exception):
        pass

    def no_power(h):
        raise NVMLError_NotSupported()

    fake_nvml.nvmlDeviceGetPowerUsage = no_power
    g = GpuReader(nvml=fake_nvml)
    (r,) = g.read()
    assert r.power is None and r.util == 87

    def lost(h):
        raise NVMLError_GpuIsLost("GPU is lost")

    fake_nvml.nvmlDeviceGetUtilizationRates = lost
    assert g.read() == [] and not g.available and "GPU is lost" in g.reason


def test_proc_usage_reads_cpu_percent_and_resident_memory(tmp_path):
    """utime + stime over the wall time between reads (of one core), resident pages times the page size."""
    import os

    from tui.proc import ProcUsage

    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    d = tmp_path / "proc" / "77"
    d.mkdir(parents=True)

    def write(cpu_s):
        ticks = int(cpu_s * tick)  # utime and stime split evenly; the name holds a space and a parenthesis
        d.joinpath("stat").write_text(f"77 (python (x) y) R 1 2 3 4 5 6 7 8 9 10 {ticks // 2} {ticks - ticks // 2} 0 0\n")
        d.joinpath("statm").write_text("5000 2500 100 1 0 300 0\n")

    now = [100.0]
    usage = ProcUsage(77, clock=lambda: now[0], proc=tmp_path / "proc")
    write(10.0)
    assert usage.read() == (None, 2500 * page)  # one read: no interval yet
    write(13.0)
    now[0] = 102.0
    cpu, rss = usage.read()
    assert abs(cpu - 150.0) < 1e-6 and rss == 2500 * page  # 3 CPU seconds in 2 s: one and a half cores
    d.joinpath("stat").unlink()
    assert usage.read() == (None, None)  # gone: said, not raised
    assert ProcUsage(78, proc=tmp_path / "proc").read() == (None, None)


@pytest.mark.anyio
async def test_without_a_gpu_the_panel_shows_the_trainers_cpu_and_memory(tmp_path):
    """On a CPU-only box: the trainer's CPU % and resident memory from /proc, and the memory it logs."""
    import json
    import os

    from tui.app import VdmApp
    from tui_fixtures import text, wait_for, write_run

    run = write_run(tmp_path / "run", n_train=5)
    log = run / "metrics.jsonl"
    first, rest = log.read_text().split("\n", 1)
    start = json.loads(first)
    start["pid"] = os.getpid()  # this process stands in for the trainer
    log.write_text(json.dumps(start) + "\n" + rest)
    app = VdmApp(run, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=FakeNvml(init_error=RuntimeError("x"))))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: f"pid {os.getpid()}: CPU" in text(app, "#gpu-text"), 10)
        shown = text(app, "#gpu-text")
        assert "CPU only" in shown and "NVML" not in shown
        rss = float(shown.split("RSS ")[1].split(" GiB")[0])
        with open(f"/proc/{os.getpid()}/statm") as f:
            assert abs(rss - int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30) < 0.2
        assert "logged peak RSS 10 MiB" in shown  # the fixture's train records: memory_mb 10 on the cpu
