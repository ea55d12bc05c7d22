"""Calibrated CUDA workload for the GPU probe (run on a GPU host).

An outer call keeps 1 GiB on the GPU and calls an inner call that allocates 6 GiB, holds it a few
milliseconds and frees it (empty_cache, so NVML sees it go). Checks that the per-call torch peaks are exact
to within 1% at both levels, reports NVML's view (the CUDA context overhead: NVML process memory minus
torch's reserved bytes) and whether the 100 ms NVML timeline saw the spike.

    python scripts/gpu_calibrate.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

GiB = 1 << 30
MiB = 1 << 20
_kept: list[torch.Tensor] = []


def inner_spike() -> None:
    x = torch.empty(6 * GiB, dtype=torch.uint8, device="cuda")
    x.fill_(1)
    torch.cuda.synchronize()
    time.sleep(0.005)
    del x
    torch.cuda.empty_cache()


def outer_keep() -> None:
    keep = torch.empty(1 * GiB, dtype=torch.uint8, device="cuda")
    keep.fill_(1)
    _kept.append(keep)
    inner_spike()


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu_calibrate as mod

    from memharness.core.gpuprobe import make_probe
    from memharness.core.records import KIND_GPU_PROC_USED, KIND_GPU_USED, read_calls, read_timeline
    from memharness.core.session import Session

    out = Path(sys.argv[1])
    torch.cuda.init()
    torch.zeros(1, device="cuda")  # context up before measuring, as a pipeline would have it
    time.sleep(0.5)
    with Session(out, ["gpu_calibrate.outer_keep", "gpu_calibrate.inner_spike"], sample_interval=0.1,
                 probe=make_probe()):
        time.sleep(0.3)
        mod.outer_keep()
        time.sleep(0.3)
    calls = {c.target.rsplit(".", 1)[1]: c for c in read_calls(out)}
    o, i = calls["outer_keep"], calls["inner_spike"]
    res = {}
    checks = []

    def check(name: str, got: float, want: float, tol: float = 0.01) -> None:
        ok = abs(got - want) <= tol * want
        checks.append(ok)
        res[name] = {"got_MiB": got / MiB, "want_MiB": want / MiB, "err_pct": 100 * (got - want) / want,
                     "ok": ok}

    d0 = lambda g: g["0"]  # noqa: E731
    check("inner peak allocated", d0(i.gpu_end)["peak_allocated"], 7 * GiB)
    check("inner peak over start", d0(i.gpu_end)["peak_allocated"] - d0(i.gpu_start)["allocated"], 6 * GiB)
    check("outer peak allocated", d0(o.gpu_end)["peak_allocated"], 7 * GiB)
    check("outer peak over start", d0(o.gpu_end)["peak_allocated"] - d0(o.gpu_start)["allocated"], 7 * GiB)
    check("outer increment (kept)", d0(o.gpu_end)["allocated"] - d0(o.gpu_start)["allocated"], 1 * GiB)
    end = d0(o.gpu_end)
    res["nvml_proc_used_at_outer_end_MiB"] = end.get("nvml_proc_used", 0) / MiB
    res["torch_reserved_at_outer_end_MiB"] = end["reserved"] / MiB
    res["nvml_context_overhead_MiB"] = (end.get("nvml_proc_used", 0) - end["reserved"]) / MiB
    res["nvml_device_used_at_outer_end_MiB"] = end.get("nvml_used", 0) / MiB
    res["inner_duration_ms"] = i.duration_s * 1e3
    rows = read_timeline(out)
    dev = rows[rows["kind"] == KIND_GPU_USED]
    proc = rows[rows["kind"] == KIND_GPU_PROC_USED]
    res["timeline_nvml_samples"] = int(len(dev))
    res["timeline_nvml_device_max_MiB"] = float(dev["value"].max() / MiB) if len(dev) else None
    res["timeline_nvml_proc_max_MiB"] = float(proc["value"].max() / MiB) if len(proc) else None
    res["timeline_saw_spike"] = bool(len(proc) and proc["value"].max() >= 6 * GiB)
    res["all_exact_within_1pct"] = all(checks)
    print(json.dumps(res, indent=2))
    (out / "calibration.json").write_text(json.dumps(res, indent=2))
    return 0 if all(checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
