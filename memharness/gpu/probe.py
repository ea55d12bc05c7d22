"""The per-call GPU probe, under its former name; it lives in `memharness.core.gpuprobe` (it runs inside the
measured processes, next to the tracker that calls it)."""

from memharness.core.gpuprobe import GpuBackend, GpuProbe, TorchNvmlBackend, make_probe

__all__ = ["GpuBackend", "GpuProbe", "TorchNvmlBackend", "make_probe"]
