"""Corpus sources: synthetic generator, local files, Hugging Face datasets (offline), the JSONL cache."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

# datasets reads this at import time; every hf test here must work without the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from memharness import corpus  # noqa: E402
from memharness.corpus import (  # noqa: E402
    CorpusError,
    available,
    check,
    materialize,
    read_slice,
    synthetic,
)
from memharness.corpus import hf as hf_source  # noqa: E402
from memharness.corpus.vocab import minilm_vocab_path  # noqa: E402

ROWS = [{"_id": f"doc-{i}", "text": f"passage number {i}, with a comma", "title": f"t{i}"} for i in range(40)]


def lines(path: Path, n: int | None = None) -> list[bytes]:
    with open(path, "rb") as fh:
        out = fh.read().splitlines(keepends=True)
    return out if n is None else out[:n]


# --------------------------------------------------------------------------- synthetic


def test_synthetic_same_seed_gives_identical_bytes(tmp_path):
    a = materialize({"source": "synthetic", "seed": 7}, 3000, tmp_path / "a")
    b = materialize({"source": "synthetic", "seed": 7}, 3000, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert len(lines(a)) == 3000
    c = materialize({"source": "synthetic", "seed": 8}, 3000, tmp_path / "c")
    assert c.read_bytes() != a.read_bytes()
    ids_a, texts_a = read_slice(a, 3000)
    ids_c, texts_c = read_slice(c, 3000)
    assert ids_a == ids_c == [f"syn-{i}" for i in range(3000)]
    assert sum(x == y for x, y in zip(texts_a, texts_c, strict=True)) == 0


def test_synthetic_first_n_do_not_depend_on_total(tmp_path):
    n_small, n_large = synthetic.CHUNK + 100, 3 * synthetic.CHUNK + 5  # both cut a chunk in the middle
    small = materialize({"source": "synthetic"}, n_small, tmp_path / "small")
    large = materialize({"source": "synthetic"}, n_large, tmp_path / "large")
    assert lines(large, n_small) == lines(small)
    assert read_slice(large, n_small) == read_slice(small, n_small)


def test_synthetic_default_lengths_match_the_distribution():
    spec = corpus.normalize({"source": "synthetic", "seed": 3})
    cfg = spec["lengths"]
    assert cfg == {"distribution": "lognormal", "median_words": 100, "sigma": 0.7, "min_words": 8,
                   "max_words": 1000}
    words = np.array([len(t.split()) for t in _texts(spec, 20_000)])
    expected_mean = 100 * np.exp(0.7**2 / 2)  # lognormal mean, ~127.8
    # Over 20k passages the standard errors are ~0.6% (median) and ~0.6% (mean): 3% is > 4 sigma.
    assert abs(np.median(words) - 100) / 100 < 0.03
    assert abs(words.mean() - expected_mean) / expected_mean < 0.03
    assert words.min() >= 8 and words.max() <= 1000
    log_sd = np.log(words).std()
    assert abs(log_sd - 0.7) < 0.05


@pytest.mark.parametrize(
    ("lengths", "lo", "hi", "median", "mean"),
    [
        ({"median_words": 40, "sigma": 0.5, "min_words": 30, "max_words": 50}, 30, 50, 40, None),
        ({"distribution": "normal", "median_words": 50, "sigma": 0.2, "min_words": 40, "max_words": 60},
         40, 60, 50, 50.0),
        ({"distribution": "uniform", "min_words": 10, "max_words": 20}, 10, 20, 15, 15.0),
        ({"distribution": "fixed", "median_words": 33, "min_words": 1, "max_words": 64}, 33, 33, 33, 33.0),
    ],
)
def test_synthetic_configured_lengths(lengths, lo, hi, median, mean):
    spec = corpus.normalize({"source": "synthetic", "lengths": lengths})
    words = np.array([len(t.split()) for t in _texts(spec, 5000)])
    assert words.min() == lo and words.max() == hi  # clipping reaches the bounds, never passes them
    assert abs(np.median(words) - median) <= 1
    if mean is not None:
        assert abs(words.mean() - mean) / mean < 0.02


def _texts(spec: dict, n: int) -> list[str]:
    raw = b"".join(bytes(chunk) for chunk, _ in synthetic.iter_chunks(spec, n))
    return [json.loads(line)["text"] for line in raw.splitlines()]


def _whole_words(vocab_file: Path) -> set[str]:
    words = set()
    for token in vocab_file.read_text(encoding="utf-8").splitlines():
        if not token.startswith("##") and not token.startswith("[") and token.isascii() and token.isalnum():
            words.add(token)
    return words


def test_synthetic_words_come_from_the_minilm_vocab_and_tokenize_one_to_one(tmp_path):
    vocab = _whole_words(minilm_vocab_path())
    path = materialize({"source": "synthetic", "seed": 1}, 500, tmp_path)
    _, texts = read_slice(path, 500)
    used = set()
    marks = 0
    for text in texts:
        assert text.endswith(".")
        for word in text.split(" "):
            bare = word.rstrip(",.;")
            assert len(word) - len(bare) <= 1
            marks += len(word) - len(bare)
            used.add(bare)
    assert used <= vocab
    assert len(used) > 2000  # a broad slice of the vocabulary, not a handful of words

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_vocab_path().parent / "tokenizer.json"))
    tokenizer.no_truncation()  # the shipped tokenizer.json truncates and pads to 128
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(texts[:100], add_special_tokens=False)
    n_words = sum(len(t.split()) for t in texts[:100])
    n_marks = sum(t.count(",") + t.count(".") + t.count(";") for t in texts[:100])
    assert sum(len(e.ids) for e in encodings) == n_words + n_marks  # every word is one real token
    assert all(tokenizer.token_to_id("[UNK]") not in e.ids for e in encodings)


def test_synthetic_custom_vocab_file(tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    words = [f"w{i}x" for i in range(150)]
    vocab_file.write_text("\n".join(["[PAD]", "[CLS]", "##ing", "!", *words]) + "\n", encoding="utf-8")
    path = materialize({"source": "synthetic", "vocab": str(vocab_file)}, 200, tmp_path / "cache")
    _, texts = read_slice(path, 200)
    used = {w.rstrip(",.;") for t in texts for w in t.split()}
    assert used <= set(words) and len(used) > 100


def test_synthetic_records_cap(tmp_path):
    assert available({"source": "synthetic"}) is None
    spec = {"source": "synthetic", "records": 50}
    assert available(spec) == 50
    assert len(read_slice(materialize(spec, 50, tmp_path), 50)[0]) == 50
    with pytest.raises(CorpusError, match="capped at records=50"):
        materialize(spec, 51, tmp_path)


# --------------------------------------------------------------------------- cache


def test_cache_reuses_a_larger_file_and_regrows(tmp_path):
    seen: list[tuple[int, int]] = []
    path = materialize({"source": "synthetic"}, 5000, tmp_path, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (5000, 5000) and all(n == 5000 for _, n in seen) and len(seen) > 1
    assert path.parent == tmp_path / "corpora" and path.name == f"{corpus.cache_key({'source': 'synthetic'})}.jsonl"
    mtime = path.stat().st_mtime_ns
    again = materialize({"source": "synthetic", "seed": 0, "vocab": "minilm"}, 3000, tmp_path)  # defaults spelt out
    assert again == path and path.stat().st_mtime_ns == mtime
    fresh = materialize({"source": "synthetic"}, 3000, tmp_path / "fresh")
    assert read_slice(path, 3000) == read_slice(fresh, 3000)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["count"] == 5000 and meta["spec"]["lengths"]["median_words"] == 100 and meta["created"]
    grown = materialize({"source": "synthetic"}, 6000, tmp_path)
    assert grown == path and len(lines(path)) == 6000
    assert json.loads(path.with_suffix(".json").read_text())["count"] == 6000


def test_read_slice_refuses_more_than_the_file_holds(tmp_path):
    path = materialize({"source": "synthetic"}, 10, tmp_path)
    assert read_slice(path, 0) == ([], [])
    with pytest.raises(CorpusError, match="holds 10 records, 11 requested"):
        read_slice(path, 11)


def test_interrupted_materialisation_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    spec = {"source": "synthetic", "seed": 5}
    key = corpus.cache_key(spec)
    real = synthetic.iter_chunks

    def failing(cfg, n):
        for i, item in enumerate(real(cfg, n)):
            if i == 2:
                raise KeyboardInterrupt  # e.g. Ctrl-C or the runner's timeout mid-way
            yield item

    monkeypatch.setattr(synthetic, "iter_chunks", failing)
    with pytest.raises(KeyboardInterrupt):
        materialize(spec, 4 * synthetic.CHUNK, tmp_path)
    folder = tmp_path / "corpora"
    assert sorted(p.name for p in folder.iterdir()) == []  # no data, no meta, no temp file left

    monkeypatch.setattr(synthetic, "iter_chunks", real)
    good = materialize(spec, 100, tmp_path)
    before = good.read_bytes()
    monkeypatch.setattr(synthetic, "iter_chunks", failing)
    with pytest.raises(KeyboardInterrupt):
        materialize(spec, 4 * synthetic.CHUNK, tmp_path)  # a bigger one fails: the smaller cache survives
    assert good.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.json", f"{key}.jsonl"]
    monkeypatch.setattr(synthetic, "iter_chunks", real)
    assert read_slice(materialize(spec, 100, tmp_path), 100)[0][-1] == "syn-99"


def test_a_truncated_cache_file_is_rebuilt(tmp_path):
    spec = {"source": "synthetic"}
    path = materialize(spec, 300, tmp_path)
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])  # meta still says 300
    rebuilt = materialize(spec, 200, tmp_path)
    assert rebuilt.read_bytes().splitlines(keepends=True) == full.splitlines(keepends=True)[:200]


def test_spec_errors():
    with pytest.raises(CorpusError, match="unknown corpus source 'nope'"):
        check({"source": "nope"})
    with pytest.raises(CorpusError, match=r"unknown keys \['sed'\]"):
        check({"source": "synthetic", "sed": 1})
    with pytest.raises(CorpusError, match="lengths.distribution"):
        check({"source": "synthetic", "lengths": {"distribution": "zipf"}})
    with pytest.raises(CorpusError, match="vocab file not found"):
        check({"source": "synthetic", "vocab": "/nonexistent/vocab.txt"})
    assert corpus.cache_key({"source": "synthetic"}) != corpus.cache_key({"source": "synthetic", "seed": 1})


# --------------------------------------------------------------------------- file


def _write(path: Path, fmt: str, rows: list[dict]) -> Path:
    if fmt in ("jsonl", "jsonl.gz"):
        data = "".join(json.dumps(r) + "\n" for r in rows)
        if fmt == "jsonl.gz":
            path.write_bytes(gzip.compress(data.encode()))
        else:
            path.write_text(data + "\n", encoding="utf-8")  # a trailing blank line is ignored
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    elif fmt in ("csv", "tsv"):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="," if fmt == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "txt":
        path.write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet", "csv", "tsv", "txt"])
def test_file_formats(tmp_path, fmt):
    rows = [dict(r) for r in ROWS]
    rows[3]["text"] = 'quoted "text", a tab\tand\nnewline' if fmt not in ("txt", "tsv") else "plain 3"
    path = _write(tmp_path / f"corpus.{fmt}", fmt, rows)
    id_field = None if fmt == "txt" else "_id"
    spec = {"source": "file", "path": str(path), "id_field": id_field}
    check(spec)
    assert available(spec) == 40
    out = materialize(spec, 25, tmp_path / "cache")
    ids, texts = read_slice(out, 25)
    assert texts == [r["text"] for r in rows[:25]]
    assert ids == ([str(i) for i in range(25)] if fmt == "txt" else [r["_id"] for r in rows[:25]])
    assert read_slice(materialize(spec, 25, tmp_path / "cache2"), 25) == (ids, texts)
    if fmt != "txt":
        no_ids = materialize({**spec, "id_field": None}, 5, tmp_path / "cache")
        assert read_slice(no_ids, 5)[0] == ["0", "1", "2", "3", "4"]
    with pytest.raises(CorpusError, match="holds 40 records, 41 requested"):
        materialize(spec, 41, tmp_path / "cache3")
    assert not list((tmp_path / "cache3" / "corpora").glob("*.jsonl"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_file_missing_field_names_the_fields_present(tmp_path, fmt):
    path = _write(tmp_path / f"c.{fmt}", fmt, ROWS)
    with pytest.raises(CorpusError, match=r"text field 'body' not found; fields present: \['_id', 'text', 'title'\]"):
        check({"source": "file", "path": str(path), "text_field": "body"})
    with pytest.raises(CorpusError, match="id field 'pid' not found"):
        materialize({"source": "file", "path": str(path), "id_field": "pid"}, 3, tmp_path / "cache")


def test_file_format_override_and_errors(tmp_path):
    path = _write(tmp_path / "corpus.jsonl", "jsonl", ROWS)
    odd = tmp_path / "corpus.data"
    odd.write_bytes(path.read_bytes())
    with pytest.raises(CorpusError, match="cannot tell the format"):
        check({"source": "file", "path": str(odd)})
    spec = {"source": "file", "path": str(odd), "format": "jsonl", "id_field": "_id"}
    assert read_slice(materialize(spec, 2, tmp_path), 2)[0] == ["doc-0", "doc-1"]
    with pytest.raises(CorpusError, match="corpus file not found"):
        check({"source": "file", "path": str(tmp_path / "missing.jsonl")})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: not valid JSON"):
        materialize({"source": "file", "path": str(bad)}, 2, tmp_path)


def test_file_relative_path_keys_like_the_absolute_one(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.jsonl", "jsonl", ROWS)
    monkeypatch.chdir(tmp_path)
    assert corpus.cache_key({"source": "file", "path": "c.jsonl"}) == corpus.cache_key(
        {"source": "file", "path": str(path)}
    )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match="cannot read .*broken.parquet as parquet"):
        materialize({"source": "file", "path": "broken.parquet"}, 1, tmp_path / "cache")
    with pytest.raises(CorpusError, match="corpus file not found"):
        available({"source": "file", "path": "missing.csv"})


def test_file_cache_notices_an_edited_file(tmp_path):
    path = _write(tmp_path / "c.jsonl", "jsonl", ROWS)
    spec = {"source": "file", "path": str(path)}
    assert read_slice(materialize(spec, 3, tmp_path / "cache"), 3)[1][0] == ROWS[0]["text"]
    edited = [{**r, "text": r["text"].upper()} for r in ROWS]
    _write(path, "jsonl", edited)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert read_slice(materialize(spec, 3, tmp_path / "cache"), 3)[1][0] == edited[0]["text"]


# --------------------------------------------------------------------------- hf (offline, local data)


def test_hf_local_parquet_folder(tmp_path):
    folder = tmp_path / "genomics"
    folder.mkdir()
    _write(folder / "test.parquet", "parquet", ROWS)
    spec = {"source": "hf", "path": str(folder), "split": "test", "id_field": "_id"}  # DAPR's split and ids
    check(spec)
    assert available(spec) == 40
    ids, texts = read_slice(materialize(spec, 30, tmp_path / "cache"), 30)
    assert ids == [r["_id"] for r in ROWS[:30]] and texts == [r["text"] for r in ROWS[:30]]
    row_ids = read_slice(materialize({**spec, "id_field": None}, 3, tmp_path / "cache"), 3)[0]
    assert row_ids == ["0", "1", "2"]
    with pytest.raises(CorpusError, match=r"no split 'train'; splits: \['test'\]"):
        check({**spec, "split": "train"})
    with pytest.raises(CorpusError, match=r"text field 'body' not found; fields present: \['_id', 'text', 'title'\]"):
        check({**spec, "text_field": "body"})
    with pytest.raises(CorpusError, match="holds 40 records, 41 requested"):
        materialize(spec, 41, tmp_path / "cache")


def test_hf_packaged_builder_with_data_files_and_save_to_disk(tmp_path):
    import datasets

    data = _write(tmp_path / "rows.jsonl", "jsonl", ROWS)
    spec = {"source": "hf", "path": "json", "data_files": {"test": str(data)}, "split": "test", "id_field": "_id"}
    check(spec)
    assert read_slice(materialize(spec, 4, tmp_path / "cache"), 4)[0] == ["doc-0", "doc-1", "doc-2", "doc-3"]

    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(saved))
    spec = {"source": "hf", "path": str(saved), "split": "test"}
    check(spec)
    assert available(spec) == 40
    assert read_slice(materialize(spec, 40, tmp_path / "cache"), 40)[1] == [r["text"] for r in ROWS]


HUB_MESSAGE = r"Hugging Face hub cannot be reached from this machine.*scenarios/quickstart\.yaml \(synthetic corpus\)"


def test_hf_hub_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorpusError, match=HUB_MESSAGE):
        check({"source": "hf"})  # UKPLab/dapr Genomics-corpus, not in any local cache here
    with pytest.raises(CorpusError, match=HUB_MESSAGE):
        materialize({"source": "hf"}, 10, tmp_path)
    assert available({"source": "hf"}) is None
    assert not (tmp_path / "corpora").exists() or not list((tmp_path / "corpora").iterdir())


def test_hf_hub_unreachable_without_offline_flag(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def no_route(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(hf_source.socket, "create_connection", no_route)
    with pytest.raises(CorpusError, match=HUB_MESSAGE) as info:
        check({"source": "hf", "path": "UKPLab/dapr", "name": "Genomics-corpus"})
    assert "set HF_HUB_OFFLINE=1" in str(info.value)
    assert available({"source": "hf"}) is None


def test_file_corpus_path_is_relative_to_the_scenario_folder(tmp_path):
    """A relative `corpus.path` is resolved against the scenario file's folder (like callable modules next to
    it), not the current directory; a missing file is named by its resolved absolute path; the docs say so."""
    import re
    import subprocess
    import sys

    sub, elsewhere = tmp_path / "scenarios", tmp_path / "elsewhere"
    (sub / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (sub / "nearby_index.py").write_text("def index(ids, texts, options, workdir):\n    pass\n")
    body = ("name: rel\ncorpus: {source: file, path: data/PASSAGES}\nsizes: [20]\n"
            f"output: {tmp_path / 'results'}\n"
            'pipelines:\n  - {name: a, kind: callable, options: {function: "nearby_index:index"}}\n')
    (sub / "s.yaml").write_text(body.replace("PASSAGES", "missing.jsonl"))
    (sub / "found.yaml").write_text(body.replace("PASSAGES", "p.txt"))
    (sub / "data" / "p.txt").write_text("".join(f"passage {i}\n" for i in range(30)))
    (elsewhere / "data").mkdir()  # the same relative path from the current directory holds nothing
    env = dict(os.environ, MEMHARNESS_CACHE=str(tmp_path / "cache"))

    def dry_run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "memharness", "run", f"../scenarios/{name}", "--dry-run"],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)

    missing = dry_run("s.yaml")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    # preflight names the scenario file and the line of the field, then the resolved absolute path
    assert f"  ../scenarios/s.yaml:2: corpus: corpus file not found: {sub / 'data' / 'missing.jsonl'}" \
        in missing.stderr.splitlines(), missing.stderr
    found = dry_run("found.yaml")
    assert found.returncode == 0, found.stdout + found.stderr
    assert "dry run: preflight passed, nothing was run" in found.stdout

    import memharness

    docs = Path(memharness.__file__).resolve().parents[1] / "docs"  # the docs of the package under test
    row = re.search(r"^\| `path` \| string \| required \| (.*) \|$", (docs / "scenario.md").read_text().split(
        "`source: file`", 1)[1], re.M)
    assert row and "scenario file's folder" in row.group(1), row and row.group(1)
    assert "relative to the cwd" not in (docs / "corpus.md").read_text()
