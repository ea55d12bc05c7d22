"""NVIDIA's management library (NVML, through nvidia-ml-py's `pynvml`), read in one place.

What the driver sees, per device: used and total memory, and the memory of each process using it (which
includes the CUDA context and the allocator's cached reserve). Three readers use it: the timeline sampler
(`core/sampler.py`), the per-call GPU probe (`core/gpuprobe.py`) and the environment fingerprint
(`runner/fingerprint.py`).

`open_nvml()` initialises NVML once per process and returns None where there is no `pynvml`, no driver or
no NVML: every reader then simply has no NVML figures. Standard library only at import time (`pynvml` is
imported on the first `open_nvml()`), so a measured cell can import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuProcess:
    """One process using a device; `used` is None where the driver does not say (NVML_VALUE_NOT_AVAILABLE)."""

    pid: int
    used: int | None


class Nvml:
    """An initialised NVML. Devices are NVML's indices (not CUDA_VISIBLE_DEVICES'), handles NVML's handles.

    Readings that NVML refuses (`NVMLError`) come back as None where a reader carries on without them;
    the inventory (`handles`, `name`, `total`, `driver`) raises as `pynvml` does."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib

    def handles(self) -> list[Any]:
        """One handle per device, in NVML's order."""
        return [self.lib.nvmlDeviceGetHandleByIndex(i) for i in range(self.lib.nvmlDeviceGetCount())]

    def handle(self, index: int) -> Any:
        return self.lib.nvmlDeviceGetHandleByIndex(index)

    def handle_by_uuid(self, uuid: str) -> Any | None:
        """The device whose UUID is `uuid` (with or without NVML's `GPU-` prefix, as torch gives it); None
        when no device has it."""
        wanted = uuid.replace("GPU-", "")
        for h in self.handles():
            if _text(self.lib.nvmlDeviceGetUUID(h)).replace("GPU-", "") == wanted:
                return h
        return None

    def used(self, h: Any) -> int | None:
        """The device's used memory in bytes, every process together."""
        try:
            return int(self.lib.nvmlDeviceGetMemoryInfo(h).used)
        except self.lib.NVMLError:
            return None

    def total(self, h: Any) -> int:
        return int(self.lib.nvmlDeviceGetMemoryInfo(h).total)

    def name(self, h: Any) -> str:
        return _text(self.lib.nvmlDeviceGetName(h))

    def driver(self) -> str:
        return _text(self.lib.nvmlSystemGetDriverVersion())

    def compute_processes(self, h: Any) -> list[GpuProcess] | None:
        """The processes running CUDA (compute) work on the device; None when NVML cannot list them."""
        return self._processes(h, "nvmlDeviceGetComputeRunningProcesses")

    def graphics_processes(self, h: Any) -> list[GpuProcess] | None:
        """The processes with a graphics context on the device; None when NVML cannot list them."""
        return self._processes(h, "nvmlDeviceGetGraphicsRunningProcesses")

    def _processes(self, h: Any, function: str) -> list[GpuProcess] | None:
        try:
            listed = getattr(self.lib, function)(h)
        except (self.lib.NVMLError, AttributeError):  # AttributeError: an nvidia-ml-py without the call
            return None
        return [GpuProcess(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in listed]

    def accounting_max(self, h: Any, pid: int) -> int | None:
        """The largest memory `pid` held on the device, kept by the driver when accounting mode is on (root
        enables it: `nvidia-smi -am 1`); None otherwise."""
        try:
            if self.lib.nvmlDeviceGetAccountingMode(h) != self.lib.NVML_FEATURE_ENABLED:
                return None
            return int(self.lib.nvmlDeviceGetAccountingStats(h, pid).maxMemoryUsage)
        except self.lib.NVMLError:
            return None


def _text(value: str | bytes) -> str:
    """NVML's strings: str from nvidia-ml-py 11.5 on, bytes before."""
    return value.decode() if isinstance(value, bytes) else value


_opened: list[Nvml | None] = []  # the one attempt of this process, once made


def open_nvml() -> Nvml | None:
    """NVML, initialised on the first call of the process; None where there is none (no `pynvml`, no
    driver, no device library). Never shut down: the driver releases it when the process ends."""
    if not _opened:
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            _opened.append(Nvml(pynvml))
        except Exception:  # noqa: BLE001 - no library, no driver, a broken install: no NVML figures
            _opened.append(None)
    return _opened[0]


def forget() -> None:
    """Let the next `open_nvml()` try again (tests that swap `pynvml` for a stand-in)."""
    _opened.clear()
