"""`memharness compare` and `memharness baseline` on run folders built by tests/runfactory.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from runfactory import FakeCall, FakeCell, make_run
from typer.testing import CliRunner

from memharness.cli import app
from memharness.compare import Rule, compare
from memharness.compare.rule import (
    IMPROVED,
    REGRESSED,
    TEST_FLOOR,
    TEST_MWU,
    TEST_SEPARATION,
    UNCHANGED,
    decide,
)
from memharness.results.figures import TREE

MiB = 1 << 20
A, B, C = "pkg.index.stage_a", "pkg.index.stage_b", "pkg.index.stage_c"
FP_BASE = {
    "python": "3.11.7", "platform": "Linux-6.1-x86_64", "glibc": "2.36",
    "torch": {"version": "2.12.0", "cuda": None, "cudnn": None}, "gpu": None,
    "packages": {"colbert-ai": "0.2.22", "transformers": "4.57.6", "faiss-cpu": "1.15.1"},
    "env": {"PYTORCH_CUDA_ALLOC_CONF": None, "MALLOC_ARENA_MAX": None, "OMP_NUM_THREADS": "2",
            "CUDA_VISIBLE_DEVICES": None},
    "kmeans": "faiss-cpu 1.15.1",
}


def cells(pipeline: str, repeats: int, rng: np.random.Generator, *, size: int = 1000, b_extra: float = 0.0,
          noise_mib: float = 2.0, b_peaks: list[float] | None = None, targets=(A, B, C),
          fingerprint: dict | None = None) -> list[FakeCell]:
    """`repeats` cells of a three-stage pipeline; stage_b peaks highest, so it sets the tree peak.

    Peaks carry Gaussian noise of `noise_mib` (a few MiB, as real repeats show); `b_peaks` fixes stage_b's
    peak per repeat instead.
    """
    out = []
    for r in range(repeats):
        n = rng.normal(0.0, noise_mib, 3) if noise_mib else np.zeros(3)
        b_peak = b_peaks[r] if b_peaks else 400.0 + b_extra + n[1]
        spans = {A: (300.0 + n[0], 0.1, 0.4), B: (b_peak, 0.5, 0.9), C: (250.0 + n[2], 1.0, 1.3),
                 "pkg.index.stage_d": (260.0, 1.4, 1.6)}
        calls = [FakeCall(t, 100.0, 120.0, spans[t][0], spans[t][1], spans[t][2]) for t in targets]
        out.append(FakeCell(pipeline, size, repeat=r, calls=calls, fingerprint=fingerprint or FP_BASE))
    return out


def run_cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


def by_target(report: dict) -> dict[str, dict]:
    return {r["target"]: r for r in report["rows"]}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


# --- the decision rule on its own ---------------------------------------------------------------


def test_rule_five_repeats_uses_one_sided_mwu():
    old = [400 * MiB + i * MiB for i in range(5)]
    d = decide(old, [v + 100 * MiB for v in old], Rule())
    assert (d.verdict, d.test) == (REGRESSED, TEST_MWU)
    assert d.p_value == pytest.approx(1 / 252)  # exact one-sided p of complete separation, 5 vs 5
    assert d.delta == 100 * MiB and d.ratio == pytest.approx(502 / 402)
    down = decide(old, [v - 100 * MiB for v in old], Rule())
    assert (down.verdict, down.p_value) == (IMPROVED, pytest.approx(1 / 252))
    # significant but under the relative threshold: unchanged
    small = decide(old, [v + 20 * MiB for v in old], Rule())
    assert small.p_value < 0.05 and small.verdict == UNCHANGED and not small.exceeds_threshold


def test_rule_overlapping_samples_are_not_significant():
    old = [400 * MiB, 520 * MiB, 410 * MiB, 530 * MiB, 405 * MiB]
    new = [500 * MiB, 410 * MiB, 560 * MiB, 420 * MiB, 540 * MiB]
    d = decide(old, new, Rule())
    assert d.exceeds_threshold and d.delta == 90 * MiB  # +22%, and above the 64 MiB floor too
    assert d.p_value == pytest.approx(0.1246, abs=1e-3)
    assert d.verdict == UNCHANGED


def test_rule_three_repeats_cannot_reach_alpha_so_separation_and_floor_decide():
    old = [400 * MiB, 401 * MiB, 402 * MiB]
    # 3 vs 3: the exact test's smallest p is 1/20 = 0.05, never < 0.05
    big = decide(old, [v + 100 * MiB for v in old], Rule())
    assert (big.verdict, big.test) == (REGRESSED, TEST_SEPARATION)
    mid = decide(old, [v + 50 * MiB for v in old], Rule())  # +12%, separated, but under the 64 MiB floor
    assert (mid.verdict, mid.test) == (UNCHANGED, TEST_SEPARATION)
    overlap = decide(old, [380 * MiB, 500 * MiB, 510 * MiB], Rule())
    assert overlap.verdict == UNCHANGED
    # at alpha 0.1 the test can decide 3 vs 3 and does
    assert decide(old, [v + 50 * MiB for v in old], Rule(alpha=0.1)).test == TEST_MWU
    assert decide(old, [v + 50 * MiB for v in old], Rule(alpha=0.1)).verdict == REGRESSED


def test_rule_few_repeats_need_threshold_and_floor():
    assert decide([400 * MiB], [470 * MiB], Rule()).verdict == REGRESSED  # +70 MiB, +17.5%
    assert decide([400 * MiB], [450 * MiB], Rule()).verdict == UNCHANGED  # +12.5% but under 64 MiB
    assert decide([2000 * MiB], [2100 * MiB], Rule()).verdict == UNCHANGED  # +100 MiB but 5%
    assert decide([400 * MiB, 400 * MiB], [300 * MiB, 300 * MiB], Rule()).verdict == IMPROVED
    assert decide([400 * MiB], [470 * MiB], Rule()).test == TEST_FLOOR
    assert decide([400 * MiB], [470 * MiB], Rule(min_bytes=80 * MiB)).verdict == UNCHANGED


def test_rule_false_positive_rate_is_bounded_by_alpha(rng):
    """With no relative threshold at all, unchanged 5-vs-5 rows are flagged at about alpha, not more."""
    flagged = 0
    trials = 400
    for _ in range(trials):
        old = list(rng.normal(400, 3, 5) * MiB)
        new = list(rng.normal(400, 3, 5) * MiB)
        flagged += decide(old, new, Rule(threshold=0.0)).verdict == REGRESSED
    assert flagged / trials < 0.08


# --- compare on run folders ---------------------------------------------------------------------


def test_100mib_in_one_function_flags_that_function_and_the_tree(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 5, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 5, rng, b_extra=100.0), run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    assert code == 1
    report = json.loads(out)
    rows = by_target(report)
    assert report["verdict"] == "regressed"
    assert {t for t, r in rows.items() if r["verdict"] == REGRESSED} == {B, TREE}
    assert rows[A]["verdict"] == rows[C]["verdict"] == UNCHANGED
    assert rows[B]["delta_mib"] == pytest.approx(100, abs=6)
    assert rows[B]["p_value"] == pytest.approx(1 / 252)
    assert rows[B]["repeats_base"] == rows[B]["repeats_current"] == 5
    assert report["counts"] == {"regressed": 2, "improved": 0, "unchanged": 2, "n/a": 0, "failed": 0,
                                "inherited": 0}


def test_five_repeats_of_the_same_pipeline_flag_nothing(tmp_path, rng):
    for i in range(3):  # three independent pairs of 5-repeat runs with a few MiB of noise
        base = make_run(tmp_path, cells("idx", 5, rng, noise_mib=3.0), run_id=f"a{i}")
        cur = make_run(tmp_path, cells("idx", 5, rng, noise_mib=3.0), run_id=f"b{i}")
        code, out, _ = run_cli("compare", base, cur, "--format", "json")
        report = json.loads(out)
        assert code == 0, out
        assert report["counts"]["regressed"] == 0 and report["counts"]["improved"] == 0
        assert len(report["rows"]) == 4  # stage_a, stage_b, stage_c, tree
        assert report["verdict"] == "ok"


def test_overlapping_repeats_above_threshold_are_not_regressed(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 5, rng, b_peaks=[400, 520, 410, 530, 405]), run_id="base")
    cur = make_run(tmp_path, cells("idx", 5, rng, b_peaks=[500, 410, 560, 420, 540]), run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    row = by_target(json.loads(out))[B]
    assert code == 0
    assert row["verdict"] == UNCHANGED and row["exceeds_threshold"] and row["delta_mib"] == pytest.approx(90)
    assert row["p_value"] > 0.05
    # the same medians from one repeat each pass the floor rule: the test is what held it back
    one_b = make_run(tmp_path, cells("idx", 1, rng, b_peaks=[410]), run_id="one_b")
    one_c = make_run(tmp_path, cells("idx", 1, rng, b_peaks=[500]), run_id="one_c")
    code, out, _ = run_cli("compare", one_b, one_c, "--format", "json")
    assert code == 1 and by_target(json.loads(out))[B]["verdict"] == REGRESSED


def test_improvement_is_reported_and_exits_zero(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 5, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 5, rng, b_extra=-150.0), run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    rows = by_target(json.loads(out))
    assert code == 0
    assert rows[B]["verdict"] == IMPROVED and rows[B]["delta_mib"] == pytest.approx(-150, abs=6)
    # stage_b no longer sets the tree peak: stage_a (300 MiB) does, so the tree improves too
    assert rows[TREE]["verdict"] == IMPROVED
    assert rows[A]["verdict"] == rows[C]["verdict"] == UNCHANGED


def test_one_sided_cells_and_functions_are_listed(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 3, rng) + cells("idx", 3, rng, size=2000)
                    + cells("old", 3, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 3, rng, targets=(A, B, "pkg.index.stage_d"))
                   + cells("idx", 3, rng, size=500) + cells("new", 3, rng), run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    report = json.loads(out)
    assert code == 0
    def cells_of(side: str) -> set[tuple[str, int]]:
        return {(c["pipeline"], c["size"]) for c in report[side]["cells"]}

    assert cells_of("only_base") == {("idx", 2000), ("old", 1000)}
    assert cells_of("only_current") == {("idx", 500), ("new", 1000)}
    assert [f["target"] for f in report["only_base"]["functions"]] == [C]
    assert [f["target"] for f in report["only_current"]["functions"]] == ["pkg.index.stage_d"]
    assert {r["target"] for r in report["rows"]} == {A, B, TREE}
    code, md, _ = run_cli("compare", base, cur)
    assert "- cell only in BASE: idx · 2k (3 done)" in md
    assert "- cell only in CURRENT: new · 1k (3 done)" in md
    assert f"- function only in BASE: idx · 1k `{C}`" in md


def test_variant_syntax_matches_pipelines_of_one_run(tmp_path, rng):
    run = make_run(tmp_path, cells("base", 5, rng) + cells("same", 5, rng)
                   + cells("regressed", 5, rng, b_extra=100.0), run_id="r")
    code, out, _ = run_cli("compare", f"{run}:base", f"{run}:regressed", "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert {r["target"] for r in report["rows"] if r["verdict"] == REGRESSED} == {B, TREE}
    assert {(r["pipeline_base"], r["pipeline_current"]) for r in report["rows"]} == {("base", "regressed")}
    assert report["base"]["variant"] == "base" and report["current"]["variant"] == "regressed"
    code, out, _ = run_cli("compare", f"{run}:base", f"{run}:same", "--format", "json")
    assert code == 0 and json.loads(out)["counts"]["regressed"] == 0
    code, md, _ = run_cli("compare", f"{run}:base", f"{run}:regressed")
    assert "| base → regressed · 1k | `pkg.index.stage_b` |" in md
    # a variant side against another run of one pipeline is matched too, whatever the names
    other = make_run(tmp_path, cells("idx", 5, rng), run_id="other")
    code, out, _ = run_cli("compare", other, f"{run}:regressed", "--format", "json")
    assert code == 1 and json.loads(out)["rows"][0]["pipeline_base"] == "idx"


def test_bad_input_exits_2_with_a_message(tmp_path, rng):
    run = make_run(tmp_path, cells("base", 2, rng) + cells("other", 2, rng), run_id="r")
    cases = [
        (["compare", f"{run}:nope", f"{run}:base"], "no pipeline variant 'nope'"),
        (["compare", run, f"{run}:base"], "this side must hold one pipeline"),
        (["compare", tmp_path / "missing", run], "no such run folder"),
        (["compare", tmp_path, run], "not a memharness run folder"),
        (["compare", run, run, "--threshold", "ten"], "expected a percentage"),
        (["compare", run, run, "--threshold", "10"], "write 10% for percent"),
        (["compare", run, run, "--metric", "gpu_peak"], "not recorded in these runs"),
        (["compare", run, run, "--metric", "bogus"], "unknown metric 'bogus'"),
        (["compare", run, run, "--format", "html"], "choose md or json"),
        (["compare", run], "give BASE and CURRENT"),
    ]
    for args, message in cases:
        code, out, err = run_cli(*args)
        assert code == 2, (args, out, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_failed_cell_in_current_counts_as_regression(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 3, rng), run_id="base")
    dead = cells("idx", 3, rng)
    for c in dead:
        c.status, c.cause = "failed", "max_rss"
    cur = make_run(tmp_path, dead, run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert report["failed_cells"] == [{"pipeline": "idx", "size": 1000, "detail": "3 failed (max_rss)"}]
    assert report["rows"] == []


def test_env_diff_comes_first_and_shows_changed_torch(tmp_path, rng):
    fp_new = json.loads(json.dumps(FP_BASE))
    fp_new["torch"]["version"] = "2.13.0"
    fp_new["env"]["MALLOC_ARENA_MAX"] = "2"
    base = make_run(tmp_path, cells("idx", 3, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 3, rng, fingerprint=fp_new), run_id="cur")
    code, md, _ = run_cli("compare", base, cur)
    assert code == 0
    env_at, mem_at = md.index("### Environment"), md.index("### Memory")
    assert env_at < mem_at
    env = md[env_at:mem_at]
    table = [line for line in env.splitlines() if line.startswith("| ") and "---" not in line]
    assert table == ["| differs | BASE | CURRENT |", "| torch | 2.12.0 | 2.13.0 |",
                     "| env MALLOC_ARENA_MAX | (unset) | 2 |"]
    assert "Same on both sides: python 3.11.7; " in env and "transformers 4.57.6" in env
    assert "faiss faiss-cpu 1.15.1" in env and "env OMP_NUM_THREADS 2" in env
    code, out, _ = run_cli("compare", base, cur, "--format", "json")
    differ = json.loads(out)["env"]["differ"]
    assert differ[0] == {"key": "torch", "base": "2.12.0", "current": "2.13.0"}


def test_env_diff_reads_partial_fingerprints(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 1, rng, fingerprint={"python": "3.10.12"}), run_id="base")
    gpu_fp = dict(FP_BASE, torch={"version": "2.13.0", "cuda": "12.8"},
                  gpu={"driver": "570.1", "devices": [{"name": "H100"}, {"name": "H100"}]})
    cur = make_run(tmp_path, cells("idx", 1, rng, fingerprint=gpu_fp), run_id="cur")
    out = json.loads(run_cli("compare", base, cur, "--format", "json")[1])
    differ = {d["key"]: (d["base"], d["current"]) for d in out["env"]["differ"]}
    assert differ["python"] == ("3.10.12", "3.11.7")
    assert differ["CUDA"] == ("-", "12.8")
    assert differ["GPU"] == ("-", "2 x H100")
    assert list(differ)[:6] == ["python", "torch", "CUDA", "driver", "GPU", "colbert-ai"]


def test_json_output_is_complete(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 3, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 3, rng, b_extra=100.0), run_id="cur")
    code, out, _ = run_cli("compare", base, cur, "--format", "json", "--metric", "peak_over_start",
                           "--threshold", "0.2", "--alpha", "0.1", "--min-mib", "10")
    report = json.loads(out)
    assert code == 1
    assert report["format"] == "memharness-compare" and report["metric"] == "peak_over_start"
    assert report["rule"]["threshold"] == 0.2 and report["rule"]["alpha"] == 0.1
    assert report["rule"]["min_mib"] == 10
    row = by_target(report)[B]
    assert row["old"] == pytest.approx(300 * MiB, abs=8 * MiB)  # peak 400 over a start of 100
    assert len(row["values_base"]) == 3 and row["test"] == TEST_MWU and row["verdict"] == REGRESSED
    assert set(report) >= {"env", "rows", "only_base", "only_current", "failed_cells", "verdict", "counts"}


def test_markdown_table_and_output_file(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 5, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 5, rng, b_extra=100.0), run_id="cur")
    code, md, _ = run_cli("compare", base, cur, "--metric", "peak", "-o", tmp_path / "summary.md")
    assert code == 1
    assert md.startswith("## memharness compare: peak\n\n**REGRESSED**: 2 regressed, 0 improved, 2 unchanged")
    assert "| cell | function | old | new | delta | ratio | p | verdict |" in md
    line = next(x for x in md.splitlines() if x.startswith("|") and f"`{B}`" in x)
    cells_ = [c.strip() for c in line.strip("|").split("|")]
    assert cells_[0] == "idx · 1k" and cells_[-1] == "**regressed**" and cells_[-2] == "0.00397"
    assert float(cells_[4]) == pytest.approx(100, abs=6)
    assert (tmp_path / "summary.md").read_text() == md


def test_api_compare_matches_cli(tmp_path, rng):
    base = make_run(tmp_path, cells("idx", 5, rng), run_id="base")
    cur = make_run(tmp_path, cells("idx", 5, rng, b_extra=100.0), run_id="cur")
    result = compare(str(base), str(cur))
    assert result.regressed and result.counts[REGRESSED] == 2


# --- baselines ---------------------------------------------------------------------------------


def test_baseline_set_show_and_compare(tmp_path, rng, monkeypatch):
    results = tmp_path / "results"
    base = make_run(results, cells("idx", 5, rng), scenario="nightly", run_id="r1")
    cur = make_run(results, cells("idx", 5, rng, b_extra=100.0), scenario="nightly", run_id="r2")
    same = make_run(results, cells("idx", 5, rng), scenario="nightly", run_id="r3")
    other = make_run(results, cells("idx", 5, rng), scenario="other", run_id="r1")
    monkeypatch.chdir(tmp_path)

    code, out, err = run_cli("baseline", "set", "results/nightly/r1")
    assert code == 0, err
    assert "baseline 'nightly'" in out
    store = json.loads((tmp_path / ".memharness" / "baselines.json").read_text())
    assert store["baselines"]["nightly"]["run"] == "results/nightly/r1"  # relative: works in any checkout
    code, out, _ = run_cli("baseline", "show")
    assert code == 0 and out.startswith(f"nightly: {base.resolve()}  run r1")

    code, out, _ = run_cli("compare", "--baseline", cur, "--format", "json")
    report = json.loads(out)
    assert code == 1 and Path(report["base"]["run_dir"]).resolve() == base.resolve()
    assert {r["target"] for r in report["rows"] if r["verdict"] == REGRESSED} == {B, TREE}
    assert run_cli("compare", "--baseline", same)[0] == 0

    code, _, err = run_cli("compare", "--baseline", other)
    assert code == 2 and "no baseline recorded for 'other'" in err
    # a named baseline in a store elsewhere
    store_path = tmp_path / "ci" / "baselines.json"
    assert run_cli("baseline", "set", base, "--name", "main", "--store", store_path)[0] == 0
    code, out, _ = run_cli("compare", "--baseline", other, "--baseline-name", "main", "--store", store_path)
    assert code == 0, out
    code, out, _ = run_cli("baseline", "show", "--store", store_path, "--format", "json")
    assert json.loads(out)[0]["name"] == "main"
    assert run_cli("baseline", "set", tmp_path / "nothing")[0] == 2


def test_baseline_variant_carries_over(tmp_path, rng, monkeypatch):
    base = make_run(tmp_path, cells("base", 5, rng) + cells("regressed", 5, rng), scenario="s", run_id="r1")
    cur = make_run(tmp_path, cells("base", 5, rng) + cells("regressed", 5, rng, b_extra=100.0),
                   scenario="s", run_id="r2")
    monkeypatch.chdir(tmp_path)
    assert run_cli("baseline", "set", base)[0] == 0
    code, out, _ = run_cli("compare", "--baseline", f"{cur}:regressed", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["base"]["variant"] == "regressed"
    assert run_cli("compare", "--baseline", f"{cur}:base")[0] == 0
