"""The one NVML reader (core/nvml.py) and its three users: the timeline sampler, the per-call GPU probe and
the fingerprint. Without NVML all three have no GPU figures; with a stand-in `pynvml` (failure and shape
paths only; the real readings are checked on a GPU by scripts/gpu_calibrate.py) each reads what it did."""

from __future__ import annotations

import os
import sys
import types
from types import SimpleNamespace

import pytest

from memharness.core import nvml, sampler
from memharness.core.gpuprobe import TorchNvmlBackend
from memharness.runner import fingerprint

MiB = 1 << 20


@pytest.fixture(autouse=True)
def fresh_nvml():
    nvml.forget()
    yield
    nvml.forget()


class FakeNVMLError(Exception):
    pass


def fake_pynvml(init_error: bool = False, list_error: bool = False, refusing: bool = True) -> types.ModuleType:
    """Two devices: 0 works (bytes strings as old nvidia-ml-py gives them, accounting on), 1 refuses its
    memory reading when `refusing`. Graphics processes cannot be listed (an nvidia-ml-py without the call)."""
    me = os.getpid()
    devices = [
        {"uuid": b"GPU-aaaa", "name": b"Fake H200", "used": 900 * MiB, "total": 140_000 * MiB,
         "procs": [SimpleNamespace(pid=me, usedGpuMemory=600 * MiB), SimpleNamespace(pid=1, usedGpuMemory=None),
                   SimpleNamespace(pid=424242, usedGpuMemory=300 * MiB)]},
        {"uuid": "GPU-bbbb", "name": "Fake H200", "used": None if refusing else 0, "total": 140_000 * MiB,
         "procs": []},
    ]
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNVMLError
    m.NVML_FEATURE_ENABLED = 1

    def init():
        if init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def memory(h):
        if devices[h]["used"] is None:
            raise FakeNVMLError("Unknown Error")
        return SimpleNamespace(used=devices[h]["used"], total=devices[h]["total"], free=0)

    def compute(h):
        if list_error:
            raise FakeNVMLError("Not Supported")
        return devices[h]["procs"]

    def accounting_stats(h, pid):
        if pid != me:
            raise FakeNVMLError("Not Found")
        return SimpleNamespace(maxMemoryUsage=700 * MiB)

    m.nvmlInit = init
    m.nvmlDeviceGetCount = lambda: len(devices)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetUUID = lambda h: devices[h]["uuid"]
    m.nvmlDeviceGetName = lambda h: devices[h]["name"]
    m.nvmlSystemGetDriverVersion = lambda: b"570.86.15"
    m.nvmlDeviceGetMemoryInfo = memory
    m.nvmlDeviceGetComputeRunningProcesses = compute
    m.nvmlDeviceGetAccountingMode = lambda h: 1 if h == 0 else 0
    m.nvmlDeviceGetAccountingStats = accounting_stats
    return m


def test_no_nvml_means_no_gpu_figures_anywhere(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert nvml.open_nvml() is None
    assert sampler._open_gpu("auto") is None
    assert fingerprint._gpu_info() is None
    assert TorchNvmlBackend().nvml(0, {os.getpid()}) == {}


def test_nvml_without_a_driver_is_no_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=True))
    assert nvml.open_nvml() is None
    assert sampler._open_gpu("auto") is None
    assert fingerprint._gpu_info() is None


def test_this_machine_degrades_or_reads_devices():
    """The real nvidia-ml-py: on a machine without a driver nothing is read; with one, every device is."""
    reader = nvml.open_nvml()
    if reader is None:
        assert sampler._open_gpu("auto") is None
        assert fingerprint._gpu_info() is None
        return
    info = fingerprint._gpu_info()
    assert info is not None and len(info["devices"]) == len(reader.handles())
    assert all(d["memory_total"] > 0 and isinstance(d["name"], str) for d in info["devices"])


def test_nvml_is_initialised_once_per_process(monkeypatch):
    fake = fake_pynvml(refusing=False)
    calls = []
    fake.nvmlInit = lambda: calls.append(1)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert nvml.open_nvml() is nvml.open_nvml() is not None
    assert sampler._open_gpu("auto") is not None and fingerprint._gpu_info() is not None
    assert len(calls) == 1


def test_sampler_rows_skip_a_refusing_device_and_unknown_process_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    assert sampler._open_gpu("off") is None
    gpu = sampler._open_gpu("auto")
    rows = [sampler.ROW.unpack(r) for r in gpu.rows(123, {os.getpid(), 1})]
    # device 1 refuses its memory reading: no rows; pid 1's memory is unknown: no row, not counted
    assert rows == [
        (123, 0, sampler.KIND_GPU_USED, 0, 900 * MiB),
        (123, os.getpid(), sampler.KIND_GPU_PROC_USED, 0, 600 * MiB),
        (123, 0, sampler.KIND_GPU_TREE_USED, 0, 600 * MiB),
    ]


def test_probe_reads_own_tree_and_accounting_peak(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    backend = TorchNvmlBackend()  # no CUDA in torch here: devices are matched by index
    assert backend.nvml(0, {os.getpid(), 424242, 1}) == {
        "nvml_used": 900 * MiB, "nvml_proc_used": 600 * MiB, "nvml_tree_used": 900 * MiB,
        "nvml_proc_max": 700 * MiB,
    }
    assert backend.nvml(1, {os.getpid()}) == {}  # the device refuses: nothing, and the call goes on


def test_probe_keeps_device_memory_when_processes_cannot_be_listed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(list_error=True))
    assert TorchNvmlBackend().nvml(0, {os.getpid()}) == {"nvml_used": 900 * MiB}


def test_fingerprint_gpu_section(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(refusing=False))
    assert fingerprint._gpu_info() == {
        "driver": "570.86.15",
        "devices": [{"index": 0, "name": "Fake H200", "memory_total": 140_000 * MiB},
                    {"index": 1, "name": "Fake H200", "memory_total": 140_000 * MiB}],
    }


def test_uuid_lookup_accepts_torch_and_nvml_spellings(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    reader = nvml.open_nvml()
    assert reader.handle_by_uuid("bbbb") == 1
    assert reader.handle_by_uuid("GPU-aaaa") == 0
    assert reader.handle_by_uuid("cccc") is None
