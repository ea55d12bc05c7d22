"""`memharness explain` without a run: the site frame rule, GPU retained blocks, the GPU peak's call and the GPU
agreement check against the harness's per-call figure (nested calls), on synthetic records and traces."""

from __future__ import annotations

import json
import pickle
import sysconfig
from pathlib import Path

import pytest

from memharness.core.records import CallRecord
from memharness.explain.frames import ALL, Roots, is_skipped, site_frame
from memharness.explain.gpu import sites_at_gpu_peak, sites_retained_gpu
from memharness.explain.markdown import render_markdown
from memharness.explain.peakcall import gpu_peak_call, peak_call
from memharness.explain.result import collect

MiB = 1 << 20
SP = "/venv/lib/python3.11/site-packages"
STDLIB = sysconfig.get_paths()["stdlib"]


@pytest.mark.parametrize(("path", "skipped"), [
    (f"{SP}/numpy/_core/numeric.py", True),
    (f"{SP}/torch/_tensor.py", True),
    ("/usr/lib/python3/dist-packages/numpy/linalg/linalg.py", True),
    (f"{STDLIB}/functools.py", True),
    ("/opt/other/lib/python3.12/json/decoder.py", True),  # another interpreter's standard library
    ("<frozen importlib._bootstrap>", True),
    (f"{SP}/torchvision/ops.py", False),
    (f"{SP}/colbert/indexing/collection_indexer.py", False),
    (f"{SP}/fast_pytorch_kmeans/util.py", False),
    ("/usr/local/lib/python3.11/site-packages/ragatouille/models/torch_kmeans.py", False),
    ("/home/me/torch/train.py", False),  # the user's own folder named torch: not the installed package
    ("/home/me/project/pipeline.py", False),
])
def test_skipped_frames_are_numpy_torch_and_the_standard_library(path, skipped):
    assert is_skipped(path) is skipped


def test_packages_outside_site_packages_are_skipped_by_the_folders_the_measured_process_recorded():
    """The GPU runs put packages on PYTHONPATH in site folders (/tmp/site/...): the explainer records where
    that process's torch and numpy live, and its standard library."""
    roots = Roots(skip=("/tmp/site/torch/",), stdlib=("/opt/py/lib/python3.12/",))
    assert is_skipped("/tmp/site/torch/_tensor.py", roots) and not is_skipped("/tmp/site/torch/_tensor.py")
    assert not is_skipped("/tmp/site/fastkmeans/kmeans.py", roots)
    assert is_skipped("/opt/py/lib/python3.12/functools.py", roots)
    assert not is_skipped("/opt/py/lib/python3.12/site-packages/colbert/x.py", roots)
    # ColBERT's k-means buffer, issue 25: reported as torch/_tensor.py:47 wrapped, now fastkmeans' train
    stack = [("wrapped", f"{SP}/torch/_tensor.py", 47), ("train", "/tmp/site/fastkmeans/kmeans.py", 257)]
    assert site_frame(stack) == 1


def test_the_explainer_records_where_numpy_and_the_standard_library_live():
    import numpy

    from memharness.core.explainer import frame_roots

    roots = Roots.from_meta(frame_roots())
    assert is_skipped(numpy.__file__, roots) and is_skipped(json.__file__, roots)
    assert not is_skipped(__file__, roots)


def test_the_site_is_the_innermost_frame_outside_skipped_code():
    numpy = ("ones", f"{SP}/numpy/_core/numeric.py", 232)
    torch = ("wrapped", f"{SP}/torch/_tensor.py", 47)
    user = ("stage_inner", "/w/pipeline.py", 12)
    frozen = ("_call_with_frames_removed", "<frozen importlib._bootstrap>", 241)
    assert site_frame([numpy, torch, user, ("run", "/w/pipeline.py", 30)]) == 2
    assert site_frame([numpy, torch, user], ALL) == 0
    # all skipped (torch's own import): where control entered torch, not the import machinery around it
    assert site_frame([torch, ("<module>", f"{SP}/torch/__init__.py", 300), frozen]) == 1
    assert site_frame([frozen, (frozen[0], frozen[1], 250)]) == 0


def _alloc(addr: int, size: int, line: int, t: int) -> dict:
    frames = [{"filename": f"{SP}/torch/_tensor.py", "line": 47, "name": "wrapped"},
              {"filename": f"{SP}/fast_pytorch_kmeans/util.py", "line": line, "name": "will_it_fit"},
              {"filename": "/x/memharness/core/targets.py", "line": 200, "name": "wrapper"}]
    return {"action": "alloc", "addr": addr, "size": size, "frames": frames, "time_us": t}


def _free(addr: int, t: int) -> dict:
    return {"action": "free_completed", "addr": addr, "size": 0, "time_us": t}


TRACE = [_alloc(0x1000, 48_000 * MiB, 43, 1), _alloc(0x2000, 300 * MiB, 50, 2), _free(0x1000, 3),
         _alloc(0x3000, 20 * MiB, 60, 4)]


def test_gpu_sites_skip_torch_frames_and_retained_is_the_live_set_at_exit():
    sites, info = sites_at_gpu_peak({"device_traces": [TRACE]})
    assert info["total_at_peak"] == 48_300 * MiB
    assert (sites[0].file, sites[0].line, sites[0].function) == (f"{SP}/fast_pytorch_kmeans/util.py", 43,
                                                                  "will_it_fit")
    assert sites[0].site_frame == 1 and sites[0].stack[0] == f"wrapped {SP}/torch/_tensor.py:47"
    every, _ = sites_at_gpu_peak({"device_traces": [TRACE]}, frames=ALL)
    assert every[0].function == "wrapped"
    kept, info = sites_retained_gpu({"device_traces": [TRACE]})
    assert info["total"] == 320 * MiB
    assert [(s.line, s.bytes) for s in kept] == [(50, 300 * MiB), (60, 20 * MiB)]


def _call(cid, target, depth, t0, t1, gpu_start=None, gpu_end=None, pid=1) -> CallRecord:
    return CallRecord(call_id=cid, parent_id=None, depth=depth, target=target, pid=pid, tid=1, thread="M",
                      t_start_ns=t0, rss_start=0, children_rss_start=0, t_end_ns=t1, rss_end=0, peak_rss=100,
                      gpu_start=gpu_start, gpu_end=gpu_end)


def _gpu(allocated: int, peak: int) -> dict:
    return {"0": {"allocated": allocated * MiB, "reserved": peak * MiB, "peak_allocated": peak * MiB,
                  "peak_reserved": peak * MiB}}


def test_gpu_default_call_is_the_innermost_open_at_the_gpu_peak():
    calls = [_call("1:1", "phase:run", 0, 0, 100),
             _call("1:2", "CollectionIndexer.train", 1, 10, 90, _gpu(100, 100), _gpu(2_000, 48_400)),
             _call("1:3", "compute_pytorch_kmeans", 2, 20, 60, _gpu(100, 100), _gpu(300, 48_400)),
             _call("1:4", "encode", 2, 61, 89, _gpu(300, 300), _gpu(2_000, 2_100))]
    assert gpu_peak_call(calls).target == "compute_pytorch_kmeans"
    assert peak_call(calls).target in {"compute_pytorch_kmeans", "encode"}  # the host rule is unchanged
    assert gpu_peak_call([_call("1:1", "phase:run", 0, 0, 100), _call("1:2", "f", 1, 1, 2)]) is None


def _write_calls(folder: Path, calls: list[dict]) -> None:
    (folder / "calls").mkdir(parents=True)
    lines = [{"ev": "P", "v": 2, "pid": 1, "t": 0}]
    for c in calls:
        lines.append({"ev": "B", "id": c["id"], "depth": c["depth"], "target": c["target"], "pid": 1, "t": c["t0"],
                      "rss": 0, "gpu": c["start"]})
    for c in reversed(calls):
        lines.append({"ev": "E", "id": c["id"], "t": c["t1"], "rss": 0, "peak_rss": 0, "gpu": c["end"]})
    (folder / "calls" / "1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_gpu_agreement_uses_the_harness_per_call_peak_of_the_explained_call(tmp_path):
    """Issue 22: explaining CollectionIndexer.train, torch's max_memory_allocated after the call had been reset
    by the nested compute_pytorch_kmeans (2,054.4 MiB over start vs 48,300 MiB at the explainer's peak). The
    harness's per-call peak over entry of train itself is the reference, and it agrees."""
    cell = tmp_path / "cell"
    _write_calls(cell, [
        {"id": "1:1", "depth": 1, "target": "CollectionIndexer.train", "t0": 1, "t1": 9,
         "start": _gpu(100, 100), "end": _gpu(420, 48_400)},
        {"id": "1:2", "depth": 2, "target": "compute_pytorch_kmeans", "t0": 2, "t1": 5,
         "start": _gpu(100, 100), "end": _gpu(420, 48_400)}])
    capture = cell / "explain" / "capture"
    (capture / "gpu").mkdir(parents=True)
    (capture / "calls").mkdir()
    with open(capture / "gpu" / "1-1.pickle", "wb") as fh:
        pickle.dump({"device_traces": [TRACE]}, fh)
    (capture / "calls" / "1-1.json").write_text(json.dumps({
        "name": "1-1", "pid": 1, "seconds": 8.0, "host": False, "errors": [],
        "gpu": {"snapshot": str(capture / "gpu" / "1-1.pickle"), "start_allocated": 100 * MiB,
                "max_allocated": int(2_154.4 * MiB)}}))
    res = collect(cell, "CollectionIndexer.train", 5, cell, cell, second_run=False, retained=True)
    ag = res["gpu_agreement"]
    assert ag["status"] == "agree" and ag["reference"] == 48_300 * MiB, ag
    assert "per-call GPU peak over entry (the measured run)" in ag["reference_name"]
    assert res["calls"][0]["gpu"]["torch_peak_over_start"] == pytest.approx(2_054.4 * MiB)  # kept, not the check
    assert res["gpu_retained_agreement"]["reference"] == 320 * MiB
    assert res["gpu_retained_agreement"]["status"] == "agree"
    md = render_markdown(res)
    assert "agrees with the harness's per-call GPU peak over entry (the measured run) 48,300.0 MiB" in md
    assert "`fast_pytorch_kmeans/util.py:43` | `will_it_fit` | 48,000.0 MiB" in md
    assert "`wrapped torch/_tensor.py:47` ← `will_it_fit fast_pytorch_kmeans/util.py:43`" in md
    assert render_markdown(res) == md and collect(cell, "CollectionIndexer.train", 5, cell, cell, False,
                                                  retained=True) == res  # identical inputs, identical output


def test_the_command_explains_the_gpu_peaks_call_with_gpu_alone(tmp_path, capsys):
    """`explain --gpu` without --target: the GPU peak's call; `--host` (alone or with --gpu): the host peak's,
    with a hint naming the GPU peak's call; a cell without GPU readings: the host peak's call, said so."""
    from memharness.commands.explain import _target

    cell = tmp_path / "run" / "cells" / "r__50__r0"
    _write_calls(cell, [
        {"id": "1:1", "depth": 0, "target": "phase:run", "t0": 1, "t1": 90, "start": None, "end": None},
        {"id": "1:2", "depth": 1, "target": "CollectionIndexer.train", "t0": 2, "t1": 80,
         "start": _gpu(100, 100), "end": _gpu(420, 48_400)},
        {"id": "1:3", "depth": 2, "target": "compute_pytorch_kmeans", "t0": 3, "t1": 50,
         "start": _gpu(100, 100), "end": _gpu(420, 48_400)}])
    lines = (cell / "calls" / "1.jsonl").read_text().splitlines()
    host_peak = [json.loads(x) for x in lines]
    for ev in host_peak:  # the host peak in train itself, after k-means returned
        if ev.get("ev") == "E":
            ev["peak_rss"] = {"1:1": 900, "1:2": 900, "1:3": 500}[ev["id"]] * MiB
    (cell / "calls" / "1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in host_peak))
    run = tmp_path / "run"
    assert _target(run, cell.name, cell, host=False, gpu=True) == "compute_pytorch_kmeans"
    assert "at the GPU peak" in capsys.readouterr().out
    assert _target(run, cell.name, cell, host=True, gpu=True) == "CollectionIndexer.train"
    assert "the GPU peak is inside compute_pytorch_kmeans" in capsys.readouterr().out
    assert _target(run, cell.name, cell, host=False, gpu=False) == "CollectionIndexer.train"
    cpu = tmp_path / "cpu"
    _write_calls(cpu, [{"id": "1:1", "depth": 1, "target": "f", "t0": 1, "t1": 2, "start": None, "end": None}])
    assert _target(tmp_path, "cpu", cpu, host=False, gpu=True) == "f"
    assert "no GPU readings" in capsys.readouterr().out
