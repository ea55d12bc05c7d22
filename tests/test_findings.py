"""docs/findings.md against the runs it quotes.

Default: every figure the page quotes is read again from the committed folders (exact, as printed), every
`memharness` option it shows exists, and the line-profile blind spot (Q1/Q8) is run and measured.
Opt-in (`MEMHARNESS_FINDINGS_RUN=1`, about 25 minutes on 2 cores): `scripts/findings_cpu.sh` runs the CPU
commands again at quickstart size and the CPU figures are checked within the tolerances the page states.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from memharness.core.records import CallRecord
from memharness.results.run import CellFolder

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "findings.md"
SAMPLES = ROOT / "results" / "samples"
CPU = SAMPLES / "findings-cpu-400"
H100 = SAMPLES / "h100-2026-12-07"
MATRIX = SAMPLES / "genomics-gpu-matrix"
MIB = 2**20

INDEXER = "colbert.indexer.Indexer.index"
CI_INDEX = "colbert.indexing.collection_indexer.CollectionIndexer.index"
TRAIN = "colbert.indexing.collection_indexer.CollectionIndexer.train"
FAISS_KMEANS = "colbert.indexing.collection_indexer.compute_faiss_kmeans"
TORCH_KMEANS = "ragatouille.models.torch_kmeans.compute_pytorch_kmeans"
ENCODE = "colbert.indexing.collection_encoder.CollectionEncoder.encode_passages"
FROM_PRETRAINED = "ragatouille.RAGPretrainedModel.RAGPretrainedModel.from_pretrained"
PROCESS_CORPUS = "ragatouille.RAGPretrainedModel.RAGPretrainedModel._process_corpus"


def _table_value(run: Path, target: str, pipeline: str, size: str, metric: str) -> float:
    table = json.loads((run / "report" / "tables" / f"{target}.json").read_text(encoding="utf-8"))
    for row in table["rows"]:
        if row["pipeline"] == pipeline and row["size_label"] == size:
            return row["metrics"][metric]["median"]
    raise KeyError(f"{target} has no row {pipeline} {size} in {run}")


def _calls(run: Path, cell: str, target: str) -> list[CallRecord]:
    """Every call of `target` in the cell, in start order, as the report reads them."""
    return sorted((c for c in CellFolder.at(run / "cells" / cell).calls if c.target == target),
                  key=lambda c: c.t_start_ns)


def _site_mib(md: Path, site: str, section: str | None = None, column: int = 4) -> float:
    """The figure of `site` (`file:line`) in an explain markdown table, optionally under a heading."""
    text = md.read_text(encoding="utf-8")
    if section is not None:
        text = text[text.index(section):]
        nxt = text.find("\n## ", 3)
        text = text if nxt < 0 else text[:nxt]
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > column and cells[2] == f"`{site}`":
            return float(cells[column].replace(",", "").split()[0])
    raise KeyError(f"{site} not in {md} {section or ''}")


def _total_mib(md: Path, label: str) -> float:
    m = re.search(re.escape(label) + r" ([\d,]+\.\d) MiB", md.read_text(encoding="utf-8"))
    assert m, f"{label!r} not in {md}"
    return float(m.group(1).replace(",", ""))


def cpu_figures(run: Path) -> dict[str, float]:
    """Every CPU figure docs/findings.md quotes, read from a `scripts/findings_cpu.sh` run folder (MiB)."""
    t = lambda target, pipeline, metric: _table_value(run, target, pipeline, "400", metric)  # noqa: E731
    ex = run / "explains"
    against = ex / "q3-colbert-Indexer.index-against.md"
    q5 = ex / "q5-ragatouille-CollectionIndexer.index.md"
    q6 = ex / "q6-ragatouille-compute_pytorch_kmeans.md"
    entry_anon = {p: _calls(run, f"{p}__400__r0", INDEXER)[0].anon_start / MIB
                  for p in ("colbert", "ragatouille-nofaiss")}
    first_encode = {p: _calls(run, f"{p}__400__r0", ENCODE)[0].rss_start / MIB
                    for p in ("ragatouille-nofaiss", "ragatouille-faiss")}
    return {
        "q3.start.colbert": t(INDEXER, "colbert", "start"),
        "q3.start.nofaiss": t(INDEXER, "ragatouille-nofaiss", "start"),
        "q3.start.faiss": t(INDEXER, "ragatouille-faiss", "start"),
        "q3.weights": _site_mib(against, "transformers/modeling_utils.py:698", "## Alive", column=5),
        "q3.tokenizer": _site_mib(against, "transformers/tokenization_utils_fast.py:117", "## Alive", column=5),
        "q3.pyarrow": _site_mib(against, "pyarrow/dataset.py:24", "## Alive", column=5),
        "q3.anon.colbert": entry_anon["colbert"],
        "q3.anon.nofaiss": entry_anon["ragatouille-nofaiss"],
        "q4.inc.colbert": t(INDEXER, "colbert", "increment"),
        "q4.inc.nofaiss": t(INDEXER, "ragatouille-nofaiss", "increment"),
        "q4.final.colbert": t(INDEXER, "colbert", "final"),
        "q4.final.nofaiss": t(INDEXER, "ragatouille-nofaiss", "final"),
        "q4.retained.colbert": _total_mib(against, "Retained at the call's exit\n\nA"),
        "q4.retained.faiss_train": _site_mib(against, "faiss/swigfaiss.py:3308", "## Retained", column=4),
        "q4.retained.nofaiss": float(re.search(r"Retained at the call's exit\n\nA [\d,.]+ MiB, B ([\d,.]+) MiB",
                                               against.read_text(encoding="utf-8")).group(1).replace(",", "")),
        "q5.inc.400": t(CI_INDEX, "ragatouille-nofaiss", "increment"),
        "q5.retained": _total_mib(q5, "explainer total at exit"),
        "q5.entry_weights": _site_mib(q5, "transformers/modeling_utils.py:698", "## Alive"),
        "q5.encode_final": _calls(run, "ragatouille-nofaiss__400__r0", ENCODE)[-1].rss_end / MIB,
        "q5.index_final": t(CI_INDEX, "ragatouille-nofaiss", "final"),
        "q6.cpu.pos": t(TORCH_KMEANS, "ragatouille-nofaiss", "peak_over_start"),
        "q6.cpu.euc_sim": _site_mib(q6, "fast_pytorch_kmeans/kmeans.py:79"),
        "q6.cpu.fit_predict": _site_mib(q6, "fast_pytorch_kmeans/kmeans.py:163"),
        "q7.encode.nofaiss": first_encode["ragatouille-nofaiss"],
        "q7.encode.faiss": first_encode["ragatouille-faiss"],
    }


# Tolerances docs/findings.md states for a fresh run of scripts/findings_cpu.sh (relative, or "order").
CPU_TOLERANCE: dict[str, float] = {
    "q3.start.colbert": 0.10, "q3.start.nofaiss": 0.10, "q3.start.faiss": 0.10,
    "q3.weights": 0.05, "q3.tokenizer": 0.10, "q3.pyarrow": 0.05,
    "q3.anon.colbert": 0.10, "q3.anon.nofaiss": 0.10,
    "q4.retained.faiss_train": 0.05,
    "q5.entry_weights": 0.05,
    "q6.cpu.pos": 0.15, "q6.cpu.euc_sim": 0.10, "q6.cpu.fit_predict": 0.10,
    "q7.encode.nofaiss": 0.10, "q7.encode.faiss": 0.10,
}


def gpu_figures() -> dict[str, float]:
    """Every GPU-sample figure docs/findings.md quotes (MiB)."""
    rag = H100 / "ragatouille-nofaiss-10k-25k-50k"
    out: dict[str, float] = {}
    for size in ("100k", "250k"):
        out[f"q3.start.colbert.{size}"] = _table_value(MATRIX, INDEXER, "colbert", size, "start")
        out[f"q3.start.nofaiss.{size}"] = _table_value(MATRIX, INDEXER, "ragatouille-nofaiss", size, "start")
        out[f"q5.inc.nofaiss.{size}"] = _table_value(MATRIX, CI_INDEX, "ragatouille-nofaiss", size, "increment")
    matrix_figures = {  # name: (target, pipeline, size, metric)
        "q3.from_pretrained.start": (FROM_PRETRAINED, "ragatouille-nofaiss", "100k", "start"),
        "q3.from_pretrained.inc": (FROM_PRETRAINED, "ragatouille-nofaiss", "100k", "increment"),
        "q3.process_corpus.inc": (PROCESS_CORPUS, "ragatouille-nofaiss", "100k", "increment"),
        "q3.gpu.entry.nofaiss": (INDEXER, "ragatouille-nofaiss", "100k", "gpu_start"),
        "q3.gpu.ci_index.colbert": (CI_INDEX, "colbert", "100k", "gpu_start"),
        "q3.gpu.ci_index.nofaiss": (CI_INDEX, "ragatouille-nofaiss", "100k", "gpu_start"),
        "q4.inc.colbert.100k": (INDEXER, "colbert", "100k", "increment"),
        "q4.final.colbert.100k": (INDEXER, "colbert", "100k", "final"),
        "q4.inc.ragatouille-nofaiss.100k": (INDEXER, "ragatouille-nofaiss", "100k", "increment"),
        "q4.final.ragatouille-nofaiss.100k": (INDEXER, "ragatouille-nofaiss", "100k", "final"),
        "q4.inc.colbert.500k": (INDEXER, "colbert", "500k", "increment"),
        "q4.final.colbert.500k": (INDEXER, "colbert", "500k", "final"),
        "q4.inc.faiss.500k": (INDEXER, "ragatouille-faiss", "500k", "increment"),
        "q4.final.faiss.500k": (INDEXER, "ragatouille-faiss", "500k", "final"),
        "q5.inc.faiss.500k": (CI_INDEX, "ragatouille-faiss", "500k", "increment"),
        "q6.tree.nofaiss.100k": (INDEXER, "ragatouille-nofaiss", "100k", "peak"),
        "q6.tree.faiss.100k": (INDEXER, "ragatouille-faiss", "100k", "peak"),
    }
    out.update({name: _table_value(MATRIX, *where) for name, where in matrix_figures.items()})
    for size in ("10k", "25k", "50k"):
        out[f"q5.inc.nofaiss.{size}"] = _table_value(rag, CI_INDEX, "ragatouille-nofaiss", size, "increment")
        out[f"q6.torch_peak.{size}"] = _table_value(rag, TRAIN, "ragatouille-nofaiss", size, "gpu_peak")
        md = rag / "cells" / f"ragatouille-nofaiss__{size}__r0" / "explain" / "explain.md"
        out[f"q6.will_it_fit.{size}"] = _site_mib(md, "/tmp/site-rag/fast_pytorch_kmeans/util.py:43")
    q8 = {"50k": H100 / "colbert-50k-local", "100k": MATRIX, "250k": MATRIX, "500k": MATRIX}
    for size, run in q8.items():
        out[f"q8.pos.{size}"] = _table_value(run, FAISS_KMEANS, "colbert", size, "peak_over_start")
        out[f"q8.inc.{size}"] = _table_value(run, FAISS_KMEANS, "colbert", size, "increment")
    out["q8.train.pos.250k"] = _table_value(MATRIX, TRAIN, "colbert", "250k", "peak_over_start")
    out["q8.train.inc.250k"] = _table_value(MATRIX, TRAIN, "colbert", "250k", "increment")
    q8md = H100 / "colbert-50k-local" / "cells" / "colbert__50k__r0" / "explain" / "explain.md"
    out["q8.explain.site"] = _site_mib(q8md, "/tmp/site/colbert/indexing/collection_indexer.py:505")
    out["q8.explain.total"] = _total_mib(q8md, "explainer total at peak")
    return out


def _idle_reserved(size: str) -> tuple[float, float]:
    text = (H100 / "ragatouille-nofaiss-10k-25k-50k" / "report" / "tables.md").read_text(encoding="utf-8")
    m = re.search(rf"ragatouille-nofaiss at {size}: .*?kept ([\d,.]+) MiB reserved but unused .*? for ([\d.]+) s",
                  text)
    assert m, size
    return float(m.group(1).replace(",", "")), float(m.group(2))


def _quoted(value: float) -> list[str]:
    """How the page may print a figure: 1,652.2 or 1652.2."""
    return [f"{value:,.1f}", f"{value:.1f}"]


def _assert_quoted(doc: str, figures: dict[str, float], skip: Callable[[str], bool] = lambda k: False) -> None:
    missing = {k: _quoted(v)[0] for k, v in figures.items() if not skip(k) and not any(q in doc for q in _quoted(v))}
    assert not missing, f"docs/findings.md does not quote these figures of the committed runs: {missing}"


def test_every_cpu_figure_the_page_quotes_is_the_committed_runs() -> None:
    doc = DOC.read_text(encoding="utf-8")
    figures = cpu_figures(CPU)
    _assert_quoted(doc, figures)
    # the figures' relations the answers rest on
    assert figures["q3.start.nofaiss"] > figures["q3.start.colbert"] + 100
    assert figures["q4.inc.nofaiss"] < figures["q4.inc.colbert"]
    assert figures["q4.retained.nofaiss"] < figures["q4.retained.colbert"]
    assert figures["q5.inc.400"] > 0
    assert abs(figures["q7.encode.nofaiss"] - figures["q7.encode.faiss"]) < 5


def test_every_gpu_figure_the_page_quotes_is_the_committed_samples() -> None:
    doc = DOC.read_text(encoding="utf-8")
    figures = gpu_figures()
    _assert_quoted(doc, figures)
    for size in ("10k", "25k", "50k"):
        assert figures[f"q6.will_it_fit.{size}"] == 48000.1
        idle, seconds = _idle_reserved(size)
        assert f"{idle:,.1f}" in doc and f"{seconds:.1f}" in doc
    # 8,000 x 96 x 16,384 x 4 bytes = 4,000 x 96 x 32,768 x 4 bytes = 48,000 MiB (plus max_sim's 8-byte index)
    assert 8000 * 96 * 16384 * 4 == 4000 * 96 * 32768 * 4 == 48000 * MIB
    assert f"{figures['q8.explain.site'] * 2:,.1f}" in doc  # the two copies of the sample together
    assert figures["q8.explain.site"] * 2 > 0.99 * figures["q8.explain.total"]
    assert figures["q8.explain.total"] == pytest.approx(figures["q8.pos.50k"], rel=0.01)


def _help(command: str) -> str:
    out = subprocess.run([sys.executable, "-m", "memharness", command, "--help"], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_memharness_option_the_page_shows_exists() -> None:
    doc = DOC.read_text(encoding="utf-8")
    commands = re.findall(r"memharness (explain|report|run|compare|merge) ([^`\n]*)", doc)
    assert {c for c, _ in commands} >= {"explain", "report"}
    helps: dict[str, str] = {}
    for command, args in commands:
        text = helps.setdefault(command, _help(command))
        for option in re.findall(r"(--[a-z][a-z-]*)", args):
            assert option in text, f"memharness {command} has no {option} (docs/findings.md: {args})"
    for script in set(re.findall(r"scripts/[\w./-]+\.(?:py|sh)", doc)):
        assert (ROOT / script).is_file(), script


@pytest.mark.usefixtures("calibrated")
def test_a_buffer_freed_inside_one_line_is_invisible_to_memory_profiler_and_not_to_memharness() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "line_profile_blind_spot.py"), "1024"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["memory_profiler"]["increment_mib"] < 32
    assert figures["memharness"]["peak_over_start_mib"] == pytest.approx(1024, rel=0.03)
    assert abs(figures["memharness"]["increment_mib"]) < 32


@pytest.mark.skipif(os.environ.get("MEMHARNESS_FINDINGS_RUN") != "1",
                    reason="25 minutes of real indexing: MEMHARNESS_FINDINGS_RUN=1 runs it")
def test_the_cpu_commands_run_again_give_the_figures_the_page_quotes(tmp_path: Path) -> None:
    out = subprocess.run(["bash", "scripts/findings_cpu.sh", str(tmp_path / "findings")], cwd=ROOT,
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = Path(re.search(r"^DONE (.+)$", out.stdout, re.M).group(1).strip())
    run = run if run.is_absolute() else ROOT / run
    fresh, committed = cpu_figures(run), cpu_figures(CPU)
    off = {k: (round(committed[k], 1), round(fresh[k], 1)) for k, tol in CPU_TOLERANCE.items()
           if abs(fresh[k] - committed[k]) > tol * committed[k]}
    assert not off, f"outside the stated tolerance (committed, fresh): {off}"
    assert fresh["q3.start.nofaiss"] > fresh["q3.start.colbert"] + 100
    assert fresh["q4.retained.nofaiss"] < fresh["q4.retained.colbert"]
    assert fresh["q4.inc.nofaiss"] < fresh["q4.inc.colbert"]
    assert fresh["q5.inc.400"] > 0
    assert fresh["q5.retained"] < 32
    assert abs(fresh["q7.encode.nofaiss"] - fresh["q7.encode.faiss"]) < 0.05 * fresh["q7.encode.faiss"]
