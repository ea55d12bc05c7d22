"""`memharness artifacts diff` on small fake index folders built with torch.save / np.save / json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from memharness.cli import app
from memharness.drift.artifacts import DEFAULT_IGNORES, diff_dirs, resolve_index_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
runner = CliRunner()


def make_index(root: Path, run_name: str = "2026-11/21/10.00.00") -> Path:
    """A ColBERT-shaped index folder: float, half, uint8 and integer tensors, tuples, dicts, JSON files."""
    g = torch.Generator().manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    torch.save(torch.randn(64, 16, generator=g), root / "centroids.pt")
    torch.save((torch.linspace(-1, 1, 3), torch.linspace(-2, 2, 4).half()), root / "buckets.pt")
    torch.save(torch.tensor(0.125), root / "avg_residual.pt")
    torch.save(torch.arange(1000, dtype=torch.int32) % 64, root / "0.codes.pt")
    torch.save(torch.randint(0, 255, (1000, 4), generator=g, dtype=torch.uint8), root / "0.residuals.pt")
    torch.save((torch.arange(1000, dtype=torch.int64), torch.full((64,), 15, dtype=torch.int64)), root / "ivf.pid.pt")
    torch.save({"emb": torch.ones(3, 2), "n": 3, "tag": "x"}, root / "extra.pt")
    np.save(root / "sample.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    (root / "doclens.0.json").write_text(json.dumps([10, 20, 30, 40]))
    (root / "0.metadata.json").write_text(json.dumps({"passage_offset": 0, "num_passages": 4, "num_embeddings": 100}))
    plan = {
        "config": {
            "nbits": 2,
            "kmeans_niters": 4,
            "root": str(root.parent),
            "name": run_name,
            "index_path": str(root),
            "checkpoint": "/models/minilm",
        },
        "num_chunks": 1,
        "num_partitions": 64,
        "num_embeddings_est": 100.0,
        "avg_doclen_est": 25.0,
    }
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "notes.txt").write_text("not an artifact")
    return root


@pytest.fixture()
def two(tmp_path: Path) -> tuple[Path, Path]:
    return make_index(tmp_path / "a" / "idx"), make_index(tmp_path / "b" / "idx", run_name="2026-11/22/11.11.11")


def run_json(a: Path, b: Path, *extra: str) -> tuple[int, dict]:
    res = runner.invoke(app, ["artifacts", "diff", str(a), str(b), "--format", "json", *extra])
    return res.exit_code, json.loads(res.stdout)


def rows_by_name(data: dict) -> dict[str, dict]:
    return {r["artifact"]: r for r in data["rows"]}


def test_identical_folders_exit_0_and_every_row_allclose(two):
    a, b = two
    code, data = run_json(a, b)
    assert code == 0
    rows = rows_by_name(data)
    expected = {
        "0.codes.pt",
        "0.residuals.pt",
        "avg_residual.pt",
        "buckets.pt[0]",
        "buckets.pt[1]",
        "centroids.pt",
        'extra.pt["emb"]',
        'extra.pt["n"]',
        'extra.pt["tag"]',
        "ivf.pid.pt[0]",
        "ivf.pid.pt[1]",
        "sample.npy",
        "doclens.0.json",
        "0.metadata.json",
        "plan.json",
    }
    assert set(rows) == expected
    for r in data["rows"]:
        assert r["present"] == "both" and r["allclose"] is True and r["ok"] is True, r
        assert r["frac_equal"] == 1.0
    assert rows["0.codes.pt"]["frac_changed"] == 0.0 and rows["centroids.pt"]["frac_changed"] is None
    assert rows["buckets.pt[1]"]["dtype_a"] == "float16"
    assert rows["centroids.pt"]["shape_a"] == [64, 16]
    # the run name and folders differ but are ColBERT location/timestamp keys, ignored by default
    assert "plan.json:config.name" in data["ignored"] and "plan.json:config.root" in data["ignored"]
    assert data["not_compared"] == ["notes.txt"]


def test_markdown_table_has_the_seed_columns(two):
    a, b = two
    res = runner.invoke(app, ["artifacts", "diff", str(a), str(b)])
    assert res.exit_code == 0
    header = (
        "| Artifact | present | shape match | dtype match | torch.allclose | max abs diff | mean abs diff "
        "| fraction exactly equal | fraction changed | note |"
    )
    assert header in res.stdout
    assert "| `centroids.pt` | both | True | True | True | 0 | 0 | 1 | - |  |" in res.stdout
    assert "| `0.codes.pt` | both | True | True | True | 0 | 0 | 1 | 0 |  |" in res.stdout
    assert "Result: identical within tolerance" in res.stdout


def test_changed_float_tensor_reports_exact_max_and_mean_abs_diff(two):
    a, b = two
    c = torch.load(b / "centroids.pt")
    c[3, 5] += 0.5
    c[10, 0] -= 0.25
    torch.save(c, b / "centroids.pt")
    code, data = run_json(a, b)
    assert code == 1
    row = rows_by_name(data)["centroids.pt"]
    assert row["allclose"] is False and row["shape_match"] and row["dtype_match"]
    assert row["max_abs_diff"] == pytest.approx(0.5, abs=1e-6)
    assert row["mean_abs_diff"] == pytest.approx(0.75 / (64 * 16), rel=1e-5)
    assert row["frac_equal"] == pytest.approx(1 - 2 / 1024)
    # everything else is still equal
    assert [r["artifact"] for r in data["rows"] if not r["ok"]] == ["centroids.pt"]
    # a tolerance wide enough accepts it
    code, data = run_json(a, b, "--atol", "0.6")
    assert code == 0 and rows_by_name(data)["centroids.pt"]["allclose"] is True


def test_changed_integer_codes_fraction_changed_is_exact(two):
    a, b = two
    codes = torch.load(b / "0.codes.pt")
    codes[:37] = (codes[:37] + 1) % 64  # 37 of 1000 entries change
    torch.save(codes, b / "0.codes.pt")
    code, data = run_json(a, b)
    assert code == 1
    row = rows_by_name(data)["0.codes.pt"]
    assert row["frac_changed"] == 37 / 1000
    assert row["frac_equal"] == pytest.approx(1 - 37 / 1000)
    assert row["allclose"] is False
    assert row["max_abs_diff"] == 1.0  # codes 0..36 became 1..37


def test_changed_integer_codes_max_diff(two):
    a, b = two
    codes = torch.load(b / "0.codes.pt")
    codes[5] = 40  # was 5
    codes[6] = 6 + 2
    torch.save(codes, b / "0.codes.pt")
    row = rows_by_name(run_json(a, b)[1])["0.codes.pt"]
    assert row["max_abs_diff"] == 35.0
    assert row["mean_abs_diff"] == pytest.approx(37 / 1000)
    assert row["frac_changed"] == 2 / 1000


def test_uint8_residuals_do_not_wrap_around(two):
    a, b = two
    r = torch.load(a / "0.residuals.pt")
    r2 = r.clone()
    r2[0, 0] = 0 if r[0, 0] > 127 else 255
    torch.save(r2, b / "0.residuals.pt")
    row = rows_by_name(run_json(a, b)[1])["0.residuals.pt"]
    assert row["max_abs_diff"] == float(abs(int(r[0, 0]) - int(r2[0, 0])))
    assert row["max_abs_diff"] >= 128
    assert row["frac_changed"] == 1 / 4000


def test_missing_file_is_reported_on_the_side_that_has_it(two):
    a, b = two
    (b / "ivf.pid.pt").unlink()
    (a / "sample.npy").unlink()
    code, data = run_json(a, b)
    assert code == 1
    rows = rows_by_name(data)
    # one row per leaf of the missing file, with the shapes of the side that has it
    assert rows["ivf.pid.pt[0]"]["present"] == "A" and rows["ivf.pid.pt[0]"]["note"] == "missing in B"
    assert rows["ivf.pid.pt[1]"]["shape_a"] == [64] and rows["ivf.pid.pt[1]"]["shape_b"] is None
    assert rows["sample.npy"]["present"] == "B" and rows["sample.npy"]["shape_b"] == [3, 4]
    assert rows["sample.npy"]["ok"] is False
    assert data["summary"]["only_a"] == 2 and data["summary"]["only_b"] == 1


def test_shape_and_dtype_changes(two):
    a, b = two
    torch.save(torch.randn(65, 16), b / "centroids.pt")
    torch.save(torch.tensor(0.125, dtype=torch.float64), b / "avg_residual.pt")
    code, data = run_json(a, b)
    rows = rows_by_name(data)
    assert code == 1
    assert rows["centroids.pt"]["shape_match"] is False and rows["centroids.pt"]["max_abs_diff"] is None
    assert rows["avg_residual.pt"]["dtype_match"] is False and rows["avg_residual.pt"]["allclose"] is True
    assert rows["avg_residual.pt"]["ok"] is False  # a dtype change is a difference


def test_json_numbers_with_tolerance_and_changed_settings(two):
    a, b = two
    plan = json.loads((b / "plan.json").read_text())
    plan["config"]["nbits"] = 4
    plan["num_embeddings_est"] = 100.0 + 1e-9
    (b / "plan.json").write_text(json.dumps(plan))
    (b / "doclens.0.json").write_text(json.dumps([10, 21, 30, 40]))
    code, data = run_json(a, b)
    rows = rows_by_name(data)
    assert code == 1
    assert rows["plan.json"]["allclose"] is False
    assert rows["plan.json"]["note"].startswith("config.nbits: 2 -> 4")
    assert "num_embeddings_est" not in rows["plan.json"]["note"]  # within rtol 1e-5
    assert rows["doclens.0.json"]["frac_changed"] == 0.25 and rows["doclens.0.json"]["max_abs_diff"] == 1.0


def test_default_ignores_can_be_switched_off(two):
    a, b = two
    code, data = run_json(a, b, "--no-default-ignores")
    assert code == 1
    note = rows_by_name(data)["plan.json"]["note"]
    assert "config.root" in note and "config.name" in note
    assert all(p.startswith("*.json:config.") for p in DEFAULT_IGNORES)


def test_ignore_option_skips_artifacts(two):
    a, b = two
    torch.save(torch.randn(64, 16), b / "centroids.pt")
    code, data = run_json(a, b, "--ignore", "centroids.*")
    assert code == 0 and "centroids.pt" in data["ignored"]


def test_nan_on_both_sides_is_equal_on_one_side_is_inf(two):
    a, b = two
    x = torch.ones(4)
    x[1] = float("nan")
    torch.save(x, a / "n.pt")
    torch.save(x.clone(), b / "n.pt")
    torch.save(x, a / "m.pt")
    torch.save(torch.ones(4), b / "m.pt")
    rows = rows_by_name(run_json(a, b)[1])
    assert rows["n.pt"]["ok"] is True and rows["n.pt"]["frac_equal"] == 1.0
    assert rows["m.pt"]["ok"] is False and rows["m.pt"]["max_abs_diff"] == "inf"


def test_cell_folder_resolves_to_the_index_inside_work(tmp_path: Path, two):
    a, b = two
    cells = []
    for side, src in (("x", a), ("y", b)):
        cell = tmp_path / side / "cells" / "colbert__1k__r0"
        shutil.copytree(src, cell / "work" / "experiments" / "default" / "indexes" / "q")
        (cell / "calls.jsonl").write_text("{}\n")
        cells.append(cell)
    assert resolve_index_dir(cells[0]).name == "q"
    res = diff_dirs(cells[0], cells[1], ignore=list(DEFAULT_IGNORES))
    assert res.ok and res.index_a.name == "q" and len(res.rows) == 15
    # a plain folder (no work/) is compared as given
    assert resolve_index_dir(a) == a


def test_bad_input_exits_2(tmp_path: Path):
    res = runner.invoke(app, ["artifacts", "diff", str(tmp_path / "nope"), str(tmp_path)])
    assert res.exit_code == 2
    assert "not a folder" in res.stderr


def test_unreadable_pt_is_a_differing_row(two):
    a, b = two
    (b / "centroids.pt").write_bytes(b"garbage")
    code, data = run_json(a, b)
    row = rows_by_name(data)["centroids.pt"]
    assert code == 1 and row["kind"] == "error" and row["note"].startswith("B: ")


@pytest.mark.parametrize("layout", ["empty", "no_artifacts"])
def test_empty_or_non_index_folders_are_refused(tmp_path: Path, layout: str):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        if layout == "no_artifacts":
            (d / "notes.txt").write_text("not an index")
            (d / "sub").mkdir()
            (d / "sub" / "log.txt").write_text("x")
    res = runner.invoke(app, ["artifacts", "diff", str(a), str(b)])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip() == (f"error: no index artifacts found in A {a}: looked for *.pt, *.npy, *.json files "
                                  "in it and below it (a ColBERT index folder, or a memharness cell folder with "
                                  "the index under work/)")
    assert res.stdout == ""


def test_one_empty_side_is_refused(tmp_path: Path, two):
    a, _ = two
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["artifacts", "diff", str(a), str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no index artifacts found in B " in res.stderr


def test_nested_pt_that_fails_to_load_on_one_side_shows_the_error(two):
    a, b = two
    (b / "buckets.pt").write_bytes(b"\x80\x04garbage")  # a tuple of two tensors on side A
    code, data = run_json(a, b)
    assert code == 1 and not data["ok"]
    rows = [r for r in data["rows"] if r["artifact"].startswith("buckets.pt")]
    assert len(rows) == 1, rows  # one row for the file, no "missing in B" rows for A's leaves
    (row,) = rows
    assert row["present"] == "both" and row["kind"] == "error" and not row["ok"]
    assert row["note"].startswith("B: cannot load: UnpicklingError"), row["note"]
    assert "missing" not in row["note"]
    assert data["summary"]["load_errors"] == 1
    md = runner.invoke(app, ["artifacts", "diff", str(a), str(b)])
    assert md.exit_code == 1 and "1 could not be loaded (see the note)." in md.stdout
    assert "Result: DIFFERENT" in md.stdout
