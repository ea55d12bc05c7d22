"""The report's lead: the summary per size (run-phase peak, call at the peak, ratio, one sentence), the
call trees with identical wrapper chains collapsed, and the run-phase window on hand-made run folders."""

from __future__ import annotations

import json

import pytest
from runfactory import FakeCall, FakeCell, make_run

from memharness.report import build
from memharness.report.answer import call_name
from memharness.results.phases import TREE, TREE_PREPARE

MiB = 1 << 20
OUTER = "ragatouille.RAGPretrainedModel.RAGPretrainedModel.index"
WRAP1 = "ragatouille.models.colbert.ColBERT.index"
WRAP2 = "ragatouille.models.index.PLAIDModelIndex.build"
PROCESS = "ragatouille.RAGPretrainedModel.RAGPretrainedModel._process_corpus"
KMEANS = "ragatouille.models.torch_kmeans.compute_pytorch_kmeans"
ENCODE = "colbert.indexing.collection_encoder.CollectionEncoder.encode_passages"
INDEX = "colbert.indexer.Indexer.index"


def _rag(peak: float) -> list[FakeCall]:
    """Three wrappers with identical figures around k-means (the peak) and an encode step."""
    inner = [FakeCall(ENCODE, 300, 500, 700, 1.2, 2.0), FakeCall(KMEANS, 500, 520, peak, 2.5, 4.0)]
    return [FakeCall(OUTER, 200, 600, peak, 1.0, 5.0, children=[
        FakeCall(PROCESS, 200, 200, 200, 1.01, 1.02),  # a small step of the outer wrapper
        FakeCall(WRAP1, 200, 600, peak, 1.05, 4.95, children=[
            FakeCall(WRAP2, 200.5, 600.5, peak, 1.1, 4.9, children=inner)])])]


def _colbert(peak: float) -> list[FakeCall]:
    return [FakeCall(INDEX, 200, 500, peak, 1.0, 5.0, children=[FakeCall(ENCODE, 250, 480, peak, 1.5, 4.5)])]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cells = []
    for size, scale in ((200, 1.0), (400, 1.5)):
        cells.append(FakeCell("colbert", size, calls=_colbert(1000 * scale), prepare_peak_mib=2140.0, samples=400))
        cells.append(FakeCell("ragatouille-nofaiss", size, calls=_rag(1500 * scale), prepare_peak_mib=800.0,
                              samples=400))
    run_dir = make_run(tmp_path_factory.mktemp("answer"), cells)
    build(run_dir)
    return run_dir


def test_tree_rows_cover_the_run_phase_and_prepare_has_its_own(run):
    s = json.loads((run / "report" / "summary.json").read_text())
    tree = {(r["pipeline"], r["size"], r["target"]): r["metrics"] for r in s["rows"] if r["target"].startswith("(")}
    assert tree[("colbert", 200, TREE)]["peak"]["median"] == 1000 * MiB  # not prepare's 2140
    assert tree[("colbert", 200, TREE_PREPARE)]["peak"]["median"] == 2140 * MiB
    assert tree[("colbert", 200, TREE)]["start"]["median"] == 100 * MiB  # tree RSS when `run` began
    assert s["scaling"]["colbert"]["peak_mib"] == [1000.0, 1500.0]
    assert s["timelines"]["colbert__200__r0"]["peak_mib"] == 1000.0  # the marked peak is the run phase's
    md = (run / "report" / "tables.md").read_text()
    assert "| colbert | 200 | run | 100.0 MiB |" in md and "| colbert | 200 | prepare | 100.0 MiB |" in md


def test_summary_leads_with_the_answer(run):
    s = json.loads((run / "report" / "summary.json").read_text())
    assert [x["size"] for x in s["answer"]["sizes"]] == [200, 400]
    at400 = {e["pipeline"]: e for e in s["answer"]["sizes"][1]["pipelines"]}
    assert at400["ragatouille-nofaiss"]["ratio"] == pytest.approx(1.5)
    assert at400["colbert"]["ratio"] == 1.0
    assert at400["ragatouille-nofaiss"]["peak_call"] == KMEANS
    assert at400["colbert"]["peak_call"] == ENCODE
    assert s["answer"]["headline"] == ("At 400 documents ragatouille-nofaiss peaks 1.5x higher than colbert "
                                       "(2250.0 vs 1500.0 MiB), inside compute_pytorch_kmeans.")
    md = (run / "report" / "tables.md").read_text()
    top = md[:md.index("## Call trees")]
    assert f"**{s['answer']['headline']}**" in top
    assert "| 400 | ragatouille-nofaiss | 2250.0 MiB | 1.50x | torch_kmeans.compute_pytorch_kmeans |" in top
    html = (run / "report" / "index.html").read_text()
    assert html.index(s["answer"]["headline"]) < html.index('id="calltrees"') < html.index('id="tables"')


def test_call_tree_collapses_identical_wrappers(run):
    md = (run / "report" / "tables.md").read_text()
    trees = md[md.index("## Call trees"):md.index("## Predicted sizes")]
    rag = trees[trees.index("**ragatouille-nofaiss**"):]
    rows = [line.split(" | ")[0].removeprefix("| ") for line in rag.splitlines() if line.startswith("| ")][1:]
    assert rows == ["phase:prepare", "phase:run",
                    "\u2003RAGPretrainedModel.index → ColBERT.index → PLAIDModelIndex.build",
                    "\u2003\u2003RAGPretrainedModel._process_corpus", "\u2003\u2003CollectionEncoder.encode_passages",
                    "\u2003\u2003torch_kmeans.compute_pytorch_kmeans"]
    (chain_line,) = [line for line in rag.splitlines() if "PLAIDModelIndex.build |" in line]
    assert "PLAIDModelIndex.build | 1500.0 MiB | 1300.0 MiB |" in chain_line  # at 200: peak, peak over start
    s = json.loads((run / "report" / "summary.json").read_text())
    chain = s["call_trees"]["ragatouille-nofaiss"][1]["children"][0]
    assert chain["targets"] == [OUTER, WRAP1, WRAP2]
    # colbert's encode step has other figures than Indexer.index: two rows
    col = trees[trees.index("**colbert**"):trees.index("**ragatouille-nofaiss**")]
    assert "\u2003Indexer.index |" in col and "\u2003\u2003CollectionEncoder.encode_passages |" in col


def test_call_names_in_sentences():
    assert call_name(KMEANS) == "compute_pytorch_kmeans"
    assert call_name(ENCODE) == "CollectionEncoder.encode_passages"
    assert call_name(None) is None


def test_compare_tree_row_is_the_run_phase(tmp_path):
    """A heavier `prepare` (say, an extension compile) is not a regression of the pipeline's memory."""
    from memharness.compare import compare

    def cells(prepare_mib: float) -> list[FakeCell]:
        return [FakeCell("colbert", 200, repeat=r, calls=_colbert(1000 + r), prepare_peak_mib=prepare_mib)
                for r in range(3)]

    base = make_run(tmp_path, cells(800.0), run_id="base")
    cur = make_run(tmp_path, cells(3000.0), run_id="cur")
    result = compare(str(base), str(cur))
    (tree,) = [r for r in result.rows if r.target == TREE]
    assert tree.values_base == tree.values_current == [1000 * MiB, 1001 * MiB, 1002 * MiB]
    assert not result.regressed
    assert not any(r.target == TREE_PREPARE for r in result.rows)


def _gpu(alloc_start: float, peak: float, reserved: float, nvml_tree: float) -> tuple[dict, dict]:
    """(readings at entry, readings at exit) of a call on GPU 0, in MiB."""
    start = {"0": {"allocated": int(alloc_start * MiB), "reserved": int(alloc_start * MiB)}}
    end = {"0": {"allocated": int(alloc_start * MiB), "reserved": int(reserved * MiB),
                 "peak_allocated": int(peak * MiB), "peak_reserved": int(reserved * MiB),
                 "nvml_tree_used": int(nvml_tree * MiB), "nvml_used": int((nvml_tree + 500) * MiB)}}
    return start, end


def test_the_headline_names_both_resources_when_one_pipeline_leads_each(tmp_path):
    """A has the higher host peak, B a 10x higher GPU peak: the sentence leads with the GPU (it differs most)
    and still gives the host's ratio; the table carries both, each with the call that holds it."""
    s_a, e_a = _gpu(100, 1000, 1200, 1500)
    s_b, e_b = _gpu(100, 10000, 14000, 15000)
    cells = [FakeCell("a", 1000, calls=[FakeCall("pkg.a.Index.build", 200, 300, 3000, 1.0, 4.0, gpu=e_a,
                                                 gpu_start=s_a)], prepare_peak_mib=250),
             FakeCell("b", 1000, calls=[FakeCall("pkg.b.kmeans", 200, 300, 1500, 1.0, 4.0, gpu=e_b,
                                                 gpu_start=s_b)], prepare_peak_mib=250)]
    run_dir = make_run(tmp_path, cells)
    build(run_dir)
    ans = json.loads((run_dir / "report" / "summary.json").read_text())["answer"]
    assert ans["resources"] == ["host", "gpu"]
    assert ans["headline"] == (
        "At 1k documents b needs 10.0x a's GPU memory (15,000.0 MiB vs 1,500.0 MiB used by the process tree; "
        "torch 10,000.0 MiB allocated inside kmeans); host peaks are within 2.0x (a 3,000.0 MiB inside "
        "Index.build vs b 1,500.0 MiB).")
    b = next(e for e in ans["sizes"][0]["pipelines"] if e["pipeline"] == "b")
    assert b["gpu"]["torch_allocated"] == 10000 * MiB and b["gpu"]["call"] == "pkg.b.kmeans"
    assert b["gpu_ratio"] == pytest.approx(10.0) and b["ratio"] == pytest.approx(1.0)
    md = (run_dir / "report" / "tables.md").read_text()
    assert "| GPU Used by Tree (NVML) | GPU × smallest | GPU Peak (torch allocated) |" in md
    # B's torch reserved 14 GiB at exit against 100 MiB allocated: said once, with the call and how long
    assert "b at 1k: after kmeans returned, torch kept 13,900.0 MiB reserved but unused" in md
