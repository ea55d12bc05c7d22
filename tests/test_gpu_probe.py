"""GPU bookkeeping: per-call torch peaks with nesting on several devices (fake backend), and the CPU path."""

from __future__ import annotations

import json
import sys

from memharness.core.gpuprobe import GpuProbe, TorchNvmlBackend
from memharness.core.records import read_calls, read_timeline
from memharness.core.session import Session

GiB = 1 << 30
MiB = 1 << 20


class FakeCuda:
    """A caching-allocator stand-in: allocated/reserved per device, peak counters, NVML's view."""

    CONTEXT = 500 * MiB

    def __init__(self, n: int = 2) -> None:
        self.alloc = [0] * n
        self.res = [0] * n
        self.peak_a = [0] * n
        self.peak_r = [0] * n

    def malloc(self, d: int, n: int) -> None:
        self.alloc[d] += n
        self.res[d] = max(self.res[d], self.alloc[d])
        self.peak_a[d] = max(self.peak_a[d], self.alloc[d])
        self.peak_r[d] = max(self.peak_r[d], self.res[d])

    def free(self, d: int, n: int) -> None:
        self.alloc[d] -= n  # the reserve stays cached, as torch's allocator does

    # GpuBackend
    def devices(self):
        return list(range(len(self.alloc)))

    def allocated(self, d):
        return self.alloc[d]

    def reserved(self, d):
        return self.res[d]

    def max_allocated(self, d):
        return self.peak_a[d]

    def max_reserved(self, d):
        return self.peak_r[d]

    def reset_peaks(self, d):
        self.peak_a[d], self.peak_r[d] = self.alloc[d], self.res[d]

    def nvml(self, d, pids):
        used = self.res[d] + self.CONTEXT
        return {"nvml_used": used, "nvml_proc_used": used, "nvml_tree_used": used}


FAKE = FakeCuda()


def inner_spike():
    FAKE.malloc(0, 6 * GiB)
    FAKE.malloc(1, 2 * GiB)
    FAKE.free(1, 2 * GiB)
    FAKE.free(0, 6 * GiB)


def outer_keep():
    FAKE.malloc(0, 1 * GiB)
    inner_spike()
    inner_after()


def inner_after():
    FAKE.malloc(1, 256 * MiB)  # kept: shows as the outer call's final allocation on device 1


def test_nested_peaks_on_two_devices_exact(tmp_path, monkeypatch):
    mod = sys.modules[__name__]
    targets = [f"{__name__}.outer_keep", f"{__name__}.inner_spike", f"{__name__}.inner_after"]
    with Session(tmp_path, targets, sample_interval=None, probe=GpuProbe(FAKE)):
        mod.outer_keep()
    calls = {c.target.rsplit(".", 1)[1]: c for c in read_calls(tmp_path)}
    outer, spike, after = calls["outer_keep"], calls["inner_spike"], calls["inner_after"]
    assert spike.parent_id == outer.call_id
    # inner spike: 1 GiB already there on device 0, +6 GiB spike; 2 GiB on device 1
    assert spike.gpu_start["0"]["allocated"] == 1 * GiB
    assert spike.gpu_end["0"]["peak_allocated"] == 7 * GiB
    assert spike.gpu_end["1"]["peak_allocated"] == 2 * GiB
    assert spike.gpu_end["0"]["allocated"] == 1 * GiB
    # the later inner call reset the counters, but the outer call keeps the spike
    assert after.gpu_end["0"]["peak_allocated"] == 1 * GiB
    assert after.gpu_end["1"]["peak_allocated"] == 256 * MiB
    assert outer.gpu_start["0"]["allocated"] == 0
    assert outer.gpu_end["0"]["peak_allocated"] == 7 * GiB
    assert outer.gpu_end["1"]["peak_allocated"] == 2 * GiB
    assert outer.gpu_end["0"]["allocated"] == 1 * GiB and outer.gpu_end["1"]["allocated"] == 256 * MiB
    assert outer.gpu_end["0"]["peak_reserved"] == 7 * GiB
    # NVML sees the context and the cached reserve on top of torch's allocated bytes
    assert outer.gpu_end["0"]["nvml_used"] - outer.gpu_end["0"]["allocated"] == 6 * GiB + FakeCuda.CONTEXT


def test_no_gpu_means_no_gpu_fields_and_no_failure(tmp_path):
    import workloads

    backend = TorchNvmlBackend()
    assert backend.devices() == []  # this machine: no CUDA device
    with Session(tmp_path, ["workloads.inner"], sample_interval=0.05, probe=GpuProbe(backend)):
        workloads.inner(8, 0.1)
    (call,) = read_calls(tmp_path)
    assert call.complete and call.gpu_start is None and call.gpu_end is None
    header = json.loads((tmp_path / "timeline.json").read_text())
    assert header["gpu"] is False
    assert set(read_timeline(tmp_path)["kind"].tolist()) <= {0, 1}
