"""GPU memory per wrapped call: torch's caching-allocator counters and NVML.

torch keeps one peak counter per device (`max_memory_allocated` / `max_memory_reserved`), reset by
`reset_peak_memory_stats`. Nested calls share it, so the probe uses the tracker's fold-and-reset discipline:
at every call event it folds the peaks since the previous event into every open call's running peaks,
then resets the counters. A short spike inside an inner call therefore lands exactly in the inner call's
and every outer call's peak, however the calls nest; resetting in an inner call never loses an outer peak.
(Side effect: code that reads `max_memory_allocated` itself sees it reset at wrapped-call boundaries.)

NVML reports what the driver sees: the device's used memory and each process's, which include the CUDA
context (hundreds of MiB) and the allocator's cached reserve that torch's `allocated` leaves out. With
accounting mode enabled, NVML also keeps each process's maximum, reported as `nvml_proc_max`.

The probe never initialises CUDA itself (that would add a context to the process): torch readings are
taken only once the measured code has imported torch and initialised CUDA.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol

from memharness.core import procmem
from memharness.core.nvml import Nvml, open_nvml


class GpuBackend(Protocol):
    def devices(self) -> list[int]: ...

    def allocated(self, d: int) -> int: ...

    def reserved(self, d: int) -> int: ...

    def max_allocated(self, d: int) -> int: ...

    def max_reserved(self, d: int) -> int: ...

    def reset_peaks(self, d: int) -> None: ...

    def nvml(self, d: int, pids: set[int]) -> dict[str, int]: ...


class TorchNvmlBackend:
    """The real readings: torch.cuda counters and NVML (`core/nvml.py`)."""

    def __init__(self) -> None:
        self._nvml: Nvml | None = open_nvml()  # None: torch figures only
        self._handles: dict[int, Any] = {}

    @staticmethod
    def _cuda():
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        return torch.cuda

    def devices(self) -> list[int]:
        cuda = self._cuda()
        return list(range(cuda.device_count())) if cuda is not None else []

    def allocated(self, d: int) -> int:
        return int(self._cuda().memory_allocated(d))

    def reserved(self, d: int) -> int:
        return int(self._cuda().memory_reserved(d))

    def max_allocated(self, d: int) -> int:
        return int(self._cuda().max_memory_allocated(d))

    def max_reserved(self, d: int) -> int:
        return int(self._cuda().max_memory_reserved(d))

    def reset_peaks(self, d: int) -> None:
        self._cuda().reset_peak_memory_stats(d)

    def _handle(self, nv: Nvml, d: int):
        if d not in self._handles:
            handle = None
            try:  # match torch's device to NVML's by UUID (CUDA_VISIBLE_DEVICES renumbers devices)
                handle = nv.handle_by_uuid(str(self._cuda().get_device_properties(d).uuid))
            except Exception:  # noqa: BLE001
                handle = None
            self._handles[d] = handle if handle is not None else nv.handle(d)
        return self._handles[d]

    def nvml(self, d: int, pids: set[int]) -> dict[str, int]:
        nv = self._nvml
        if nv is None:
            return {}
        out: dict[str, int] = {}
        try:
            h = self._handle(nv, d)
            used = nv.used(h)
            if used is None:
                return out
            out["nvml_used"] = used
            procs = nv.compute_processes(h)
            if procs is None:
                return out
            me = os.getpid()
            out["nvml_proc_used"] = sum(p.used or 0 for p in procs if p.pid == me)
            out["nvml_tree_used"] = sum(p.used or 0 for p in procs if p.pid in pids)
            peak = nv.accounting_max(h, me)
            if peak is not None:
                out["nvml_proc_max"] = peak
        except Exception:  # noqa: BLE001 - NVML hiccups must not break the measured call
            pass
        return out


class GpuProbe:
    """The tracker's CallProbe for GPU memory (see memharness.core.tracker)."""

    def __init__(self, backend: GpuBackend) -> None:
        self.backend = backend

    def on_event(self, open_frames: list) -> None:
        for d in self.backend.devices():
            pa, pr = self.backend.max_allocated(d), self.backend.max_reserved(d)
            for f in open_frames:
                st = (f.probe_state or {}).get(d)
                if st is None:  # CUDA came up inside this call: its peaks start now
                    f.probe_state = f.probe_state or {}
                    st = f.probe_state[d] = {"peak_allocated": 0, "peak_reserved": 0}
                st["peak_allocated"] = max(st["peak_allocated"], pa)
                st["peak_reserved"] = max(st["peak_reserved"], pr)
            self.backend.reset_peaks(d)

    def _now(self, d: int) -> dict[str, int]:
        pids = {os.getpid(), *procmem.descendant_pids(os.getpid())}
        out = {"allocated": self.backend.allocated(d), "reserved": self.backend.reserved(d)}
        out.update(self.backend.nvml(d, pids))
        return out

    def on_enter(self, frame) -> dict[str, Any] | None:
        devices = self.backend.devices()
        frame.probe_state = {}
        readings = {}
        for d in devices:
            now = self._now(d)
            frame.probe_state[d] = {"peak_allocated": now["allocated"], "peak_reserved": now["reserved"]}
            readings[str(d)] = now
        return readings or None

    def on_exit(self, frame) -> dict[str, Any] | None:
        readings = {}
        for d in self.backend.devices():
            now = self._now(d)
            st = (frame.probe_state or {}).get(d, {"peak_allocated": 0, "peak_reserved": 0})
            now["peak_allocated"] = max(st["peak_allocated"], now["allocated"])
            now["peak_reserved"] = max(st["peak_reserved"], now["reserved"])
            readings[str(d)] = now
        return readings or None


def make_probe() -> GpuProbe:
    return GpuProbe(TorchNvmlBackend())
