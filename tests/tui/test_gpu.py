"""The NVML reader: a clear 'CPU only' state instead of a crash, and readings when NVML answers."""

import sys

from tui.gpu import GpuReader


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
