"""GPU columns of the verdict (issue 19): torch-allocated bytes at a function's entry are inherited, its
peak allocated over that entry is its own. Read from run folders in the documented format (runfactory)."""

from __future__ import annotations

import json

from runfactory import FakeCall, FakeCell, make_run
from typer.testing import CliRunner

from memharness.cli import app

MiB = 1 << 20
ENCODE = "pkg.model.encode"


def _gpu(allocated_mib: float, peak_mib: float | None = None) -> dict:
    d = {"allocated": int(allocated_mib * MiB)}
    if peak_mib is not None:
        d["peak_allocated"] = int(peak_mib * MiB)
    return {"0": d}


def _cells(pipeline: str, model_mib: float, own_mib: float = 300.0) -> list[FakeCell]:
    """prepare loads `model_mib` to the GPU; encode (inside run) allocates `own_mib` over its entry."""
    out = []
    for r in range(3):
        jitter = r * 0.5  # a little spread between repeats
        held = 100.0 + model_mib + jitter
        encode = FakeCall(ENCODE, 500.0, 500.0, 520.0, 1.2, 1.8, gpu_start=_gpu(held),
                          gpu=_gpu(held, held + own_mib))
        calls = [
            FakeCall("phase:prepare", 400.0, 500.0, 510.0, 0.0, 1.0, gpu_start=_gpu(100.0), gpu=_gpu(held, held)),
            FakeCall("phase:run", 500.0, 500.0, 520.0, 1.1, 2.0, children=[encode], gpu_start=_gpu(held),
                     gpu=_gpu(held, held + own_mib)),
        ]
        out.append(FakeCell(pipeline, 100, repeat=r, calls=calls))
    return out


def _compare(tmp_path, base_model: float, cur_model: float, *extra: str, own: float = 300.0) -> tuple[int, dict]:
    run = make_run(tmp_path, _cells("a", base_model) + _cells("b", cur_model, own), run_id=f"r{cur_model}{own}")
    res = CliRunner().invoke(app, ["compare", f"{run}:a", f"{run}:b", "--format", "json", *extra])
    assert res.exit_code in (0, 1), res.stdout
    return res.exit_code, json.loads(res.stdout)


def test_model_moved_to_gpu_in_prepare_is_one_gpu_shift_not_an_encode_regression(tmp_path):
    code, report = _compare(tmp_path, 0.0, 500.0, "--metric", "gpu_own")
    rows = {r["target"]: r for r in report["rows"]}
    assert rows[ENCODE]["verdict"] == "unchanged" and rows[ENCODE]["judged_on"] == "gpu_own"
    assert rows[ENCODE]["old"] == rows[ENCODE]["new"] == 300 * MiB
    gpu = [s for s in report["shifts"] if s["kind"] == "gpu"]
    assert len(gpu) == 1 and gpu[0]["before"] == f"call:{ENCODE}"
    assert gpu[0]["delta_mib"] == 500
    assert [s["text"] for s in gpu[0]["sources"]] == ["prepare (model load, warm-up)"]
    assert "torch-allocated on the GPU before `encode`, from prepare" in report["summary"][0]
    assert [s for s in report["shifts"] if s["kind"] == "host"] == []
    # on the absolute GPU peak the same shift reads as a regression of encode
    _, peak = _compare(tmp_path, 0.0, 500.0, "--metric", "gpu_peak")
    assert {r["target"]: r for r in peak["rows"]}[ENCODE]["verdict"] == "regressed"


def test_encode_allocating_more_on_the_gpu_is_its_own_regression(tmp_path):
    code, report = _compare(tmp_path, 0.0, 0.0, "--metric", "gpu_own", own=600.0)
    rows = {r["target"]: r for r in report["rows"]}
    assert code == 1 and rows[ENCODE]["verdict"] == "regressed"
    assert rows[ENCODE]["delta_mib"] == 300
    assert report["shifts"] == []


def _kept_cells(pipeline: str, kept_mib: float) -> list[FakeCell]:
    """`a` keeps `kept_mib` at exit (its own peak stays 200 MiB over entry); `b` starts on top of that."""
    out = []
    for r in range(3):
        j = r * 0.5
        a = FakeCall("pkg.a", 100.0 + j, 120.0 + kept_mib + j, 300.0 + j, 0.1, 0.4)
        b = FakeCall("pkg.b", 120.0 + kept_mib + j, 120.0 + kept_mib + j, 300.0 + kept_mib + j, 0.5, 0.9)
        out.append(FakeCell(pipeline, 100, repeat=r, calls=[a, b]))
    return out


def test_memory_kept_by_an_earlier_function_is_one_shift_named_after_it(tmp_path):
    run = make_run(tmp_path, _kept_cells("a", 0.0) + _kept_cells("b", 150.0), run_id="kept")
    res = CliRunner().invoke(app, ["compare", f"{run}:a", f"{run}:b", "--format", "json"])
    report = json.loads(res.stdout)
    rows = {r["target"]: r for r in report["rows"]}
    assert rows["pkg.a"]["verdict"] == rows["pkg.b"]["verdict"] == "unchanged"
    assert rows["(process tree)"]["verdict"] == "regressed" and res.exit_code == 1
    [shift] = report["shifts"]
    assert shift["before"] == "call:pkg.b" and shift["delta_mib"] == 150
    assert shift["sources"][0]["kept_by"][0]["target"] == "pkg.a"
    assert report["summary"][0].startswith(  # each verdict line names its cell first
        "b · 100: +150.0 MiB held before `b`, from memory kept at exit by `a` +150.0 MiB")
