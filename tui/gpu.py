"""GPU readings through NVML (nvidia-ml-py, imported as ``pynvml``).

Never raises: on a machine without the library, the driver or a GPU the
reader says so in ``reason`` and :meth:`read` returns no readings, which the
monitor shows as "CPU only".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GpuReading:
    index: int
    name: str
    util: float | None  # percent of time a kernel ran, over the driver's last sample period
    mem_used: float | None  # bytes
    mem_total: float | None
    temp: float | None  # degrees C
    power: float | None  # watts
    processes: list | None = None  # (pid, bytes of GPU memory or None) of the compute processes on it


class GpuReader:
    """Reads every GPU NVML sees. ``nvml`` may be given (tests pass a fake module)."""

    def __init__(self, nvml=None):
        self.available = False
        self.reason = ""
        self._nvml = None
        self._handles = []
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            n = nvml.nvmlDeviceGetCount()
            if n < 1:
                self.reason = "NVML sees no GPU"
                nvml.nvmlShutdown()
                return
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]
            self._names = [_text(_try(nvml.nvmlDeviceGetName, h)) or f"GPU {i}" for i, h in enumerate(self._handles)]
        except ImportError:
            self.reason = "nvidia-ml-py is not installed"
            return
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ... or anything odd
            self.reason = f"NVML unavailable ({_short(e)})"
            return
        self._nvml = nvml
        self.available = True

    def read(self) -> list[GpuReading]:
        """One reading per GPU; a value NVML cannot give is None. [] when unavailable."""
        if not self.available:
            return []
        nv = self._nvml
        out = []
        try:
            for i, h in enumerate(self._handles):
                util = _try(nv.nvmlDeviceGetUtilizationRates, h)
                mem = _memory(nv, h)
                temp = _try(nv.nvmlDeviceGetTemperature, h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
                power = _try(nv.nvmlDeviceGetPowerUsage, h)  # milliwatts
                procs = _try(nv.nvmlDeviceGetComputeRunningProcesses, h) if hasattr(nv, "nvmlDeviceGetComputeRunningProcesses") else None
                out.append(GpuReading(
                    i, self._names[i],
                    float(util.gpu) if util is not None else None,
                    float(mem.used) if mem is not None else None,
                    float(mem.total) if mem is not None else None,
                    float(temp) if temp is not None else None,
                    power / 1000.0 if power is not None else None,
                    [(int(p.pid), _bytes(getattr(p, "usedGpuMemory", None))) for p in procs] if procs is not None else None))
        except Exception as e:  # a GPU fell off the bus: stop asking
            self.available = False
            self.reason = f"NVML stopped answering ({_short(e)})"
            return []
        return out

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self.available = False


def _memory(nv, h):
    """Memory as nvidia-smi shows it: NVML's v2 struct, whose ``used`` leaves out the driver's reserve.

    The v1 struct counts that reserve as used (on an H200, 1,398 MiB beside nvidia-smi's 783); drivers
    or bindings without v2 answer with v1.
    """
    v2 = getattr(nv, "nvmlMemory_v2", None)
    if v2 is not None:
        try:
            return nv.nvmlDeviceGetMemoryInfo(h, version=v2)
        except Exception as e:  # TypeError (old binding), FunctionNotFound or ArgumentVersionMismatch (old driver)
            if type(e).__name__ in ("NVMLError_Uninitialized", "NVMLError_GpuIsLost"):
                raise
    return _try(nv.nvmlDeviceGetMemoryInfo, h)


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        if type(e).__name__ in ("NVMLError_NotSupported", "NVMLError_NoPermission"):
            return None
        raise


def _bytes(v):
    """usedGpuMemory is None or a sentinel (NVML_VALUE_NOT_AVAILABLE, 2**64 - 1) where the driver cannot tell."""
    return float(v) if isinstance(v, int) and 0 <= v < 2**63 else None


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:60]
