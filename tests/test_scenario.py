"""Scenario files: schema, YAML loading with line numbers, unit parsing, `validate` and `schema` commands."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memharness.cli import app as memharness_app
from memharness.pipelines.registry import KINDS
from memharness.scenario import (
    Scenario,
    ScenarioError,
    ScenarioIssue,
    format_size,
    load,
    load_text,
    parse_duration,
    parse_memory,
    parse_size,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "scenario.md"

FULL = textwrap.dedent(
    """\
    name: full-example
    description: every field set
    corpus:
      source: synthetic
      seed: 7
      records: 2k
      vocab: minilm
      lengths: {distribution: normal, median_words: 90, sigma: 0.3, min_words: 10, max_words: 200}
    model: builtin:tiny
    pipelines:
      - name: colbert
        kind: colbert
        options: {nbits: 2, doc_maxlen: 256, kmeans_niters: 4, avoid_fork_if_possible: true, kmeans: faiss}
        python: PYTHON
        model: builtin:minilm
        targets: [colbert.indexer.Indexer.index]
        default_targets: false
      - name: rag
        kind: ragatouille
        options: {use_faiss: true}
      - name: mine
        kind: callable
        options: {function: "mypkg.index:build", batch: 8}
    sizes: [300, 1k, 1.5k]
    repeats: 2
    device: cpu
    targets: [numpy.linalg.svd]
    sample_interval: 20ms
    line_profile: [mypkg.index.build]
    timeout: 30m
    max_rss: 1.5GiB
    output: out
    env: {OMP_NUM_THREADS: 1, MALLOC_ARENA_MAX: "2"}
    """
).replace("PYTHON", sys.executable)

# A small valid file; the bad cases below are edits of it, so their line numbers are easy to check.
GOOD = textwrap.dedent(
    """\
    name: tiny
    corpus:
      source: synthetic
      records: 1k
    pipelines:
      - name: colbert
        kind: colbert
        options: {nbits: 2}
      - name: fn
        kind: callable
        options: {function: "pkg.mod:index"}
    sizes: [100, 1k]
    sample_interval: 50ms
    max_rss: 2GiB
    """
)


def errors_of(tmp_path: Path, text: str, name: str = "s.yaml") -> str:
    """str() of the ScenarioError that loading `text` from tmp_path/name raises."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert info.value.filename == str(path)
    return str(info.value).replace(str(tmp_path) + os.sep, "")


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# --- valid files ---------------------------------------------------------------------------------------


def test_full_example_parses_and_round_trips(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(FULL)
    s = load(path)
    assert s.name == "full-example"
    assert s.corpus.source == "synthetic" and s.corpus.seed == 7 and s.corpus.records == 2000
    assert s.corpus.lengths.distribution == "normal" and s.corpus.lengths.max_words == 200
    assert s.sizes == [300, 1000, 1500]
    assert s.sample_interval == pytest.approx(0.02)
    assert s.timeout == 1800.0
    assert s.max_rss == int(1.5 * 2**30)
    assert s.env == {"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    assert [p.name for p in s.pipelines] == ["colbert", "rag", "mine"]
    colbert, rag, mine = s.pipelines
    assert colbert.options == {
        "nbits": 2,
        "doc_maxlen": 256,
        "kmeans_niters": 4,
        "avoid_fork_if_possible": True,
        "kmeans": "faiss",
    }
    assert colbert.python == sys.executable and colbert.default_targets is False
    assert s.pipeline_model(colbert) == "builtin:minilm" and s.pipeline_model(rag) == "builtin:tiny"
    assert rag.options == {"use_faiss": True, "split_documents": False}  # default filled in
    assert mine.options == {"function": "mypkg.index:build", "batch": 8}
    assert s.n_cells == 3 * 3 * 2

    dumped = s.model_dump()
    assert Scenario.model_validate(dumped) == s
    assert Scenario.model_validate(json.loads(s.model_dump_json())) == s


def test_defaults_of_a_minimal_file():
    s = load_text(
        "name: m\ncorpus: {source: synthetic}\npipelines: [{name: a, kind: colbert}]\nsizes: [10]\n"
    )
    assert s.model == "builtin:minilm" and s.repeats == 1 and s.device == "auto"
    assert s.sample_interval == 0.05 and s.timeout is None and s.max_rss is None and s.output == "results"
    assert s.corpus.model_dump() == {
        "source": "synthetic",
        "seed": 0,
        "records": None,
        "vocab": "minilm",
        "lengths": {
            "distribution": "lognormal",
            "median_words": 100.0,
            "sigma": 0.7,
            "min_words": 8,
            "max_words": 1000,
        },
    }
    hf = load_text(
        "name: m\ncorpus: {source: hf, path: UKPLab/dapr, name: Genomics-corpus}\n"
        "pipelines: [{name: a, kind: colbert}]\nsizes: [10]\n"
    ).corpus
    assert (hf.split, hf.text_field, hf.id_field, hf.revision) == ("train", "text", None, None)
    f = load_text(
        "name: m\ncorpus: {source: file, path: c.jsonl}\npipelines: [{name: a, kind: colbert}]\nsizes: [10]\n"
    ).corpus
    assert (f.format, f.text_field, f.id_field) == ("auto", "text", None)


def test_docs_example_is_valid():
    block = re.search(r"## Example with every field\n\n```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert block, "docs/scenario.md lost its example"
    s = load_text(block.group(1), "docs-example.yaml")
    assert s.n_cells == 6 and [p.kind for p in s.pipelines] == ["colbert", "ragatouille", "callable"]


def test_python_as_command_on_path_and_relative_path(tmp_path, monkeypatch):
    assert load_text(edit("kind: colbert", "kind: colbert\n    python: sh")).pipelines[0].python == "sh"
    exe = tmp_path / "venv" / "bin" / "python"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    s = load_text(edit("kind: colbert", "kind: colbert\n    python: venv/bin/python"))
    assert s.pipelines[0].python == "venv/bin/python"


# --- bad files: exact messages -------------------------------------------------------------------------

BAD = {
    "wrong type": (
        edit("sizes: [100, 1k]", "sizes: [100, 1k]\nrepeats: three"),
        "s.yaml:13: repeats: expected an integer, got string 'three'",
    ),
    "wrong type of a section": (
        edit("pipelines:\n", "pipelines: colbert\nunused:\n"),
        "s.yaml:5: pipelines: expected a list, got string 'colbert'\n"
        "s.yaml:6: unused: unknown key (allowed: name, description, corpus, model, pipelines, sizes, "
        "repeats, device, targets, sample_interval, line_profile, timeout, max_rss, output, env, leftovers, explain, "
        "executor, gpus_per_cell, num_cpus, retries_on_lost, return_work, resources)",
    ),
    "unknown top-level key": (
        edit("sizes:", "size:"),
        "s.yaml:1: sizes: required field is missing\ns.yaml:12: size: unknown key; did you mean 'sizes'?",
    ),
    "unknown nested key": (
        edit("records: 1k", "record: 1k"),
        "s.yaml:4: corpus.record: unknown key; did you mean 'records'?",
    ),
    "unknown colbert option": (
        edit("{nbits: 2}", "{nbits: 2, doc_max_len: 300}"),
        "s.yaml:8: pipelines[0].options.doc_max_len: unknown key; did you mean 'doc_maxlen'?",
    ),
    "bad colbert option value": (
        edit("{nbits: 2}", "{nbits: 3}"),
        "s.yaml:8: pipelines[0].options.nbits: expected one of 1, 2, 4 or 8, got integer 3",
    ),
    "negative size": (
        edit("[100, 1k]", "[100, -5]"),
        "s.yaml:12: sizes[1]: invalid size -5: must be > 0",
    ),
    "zero size": (
        edit("[100, 1k]", "[0, 1k]"),
        "s.yaml:12: sizes[0]: invalid size 0: must be > 0",
    ),
    "size that is not a number": (
        edit("[100, 1k]", "[100, 1k, lots]"),
        "s.yaml:12: sizes[2]: invalid size 'lots': expected a positive whole number such as "
        "100000, 100_000, 100k, 1.5k or 2M",
    ),
    "duplicate size": (
        edit("[100, 1k]", "[1000, 100, 1k]"),
        "s.yaml:12: sizes[2]: duplicate size 1k (also sizes[0])",
    ),
    "empty sizes": (
        edit("[100, 1k]", "[]"),
        "s.yaml:12: sizes: must not be empty",
    ),
    "missing corpus": (
        edit("corpus:\n  source: synthetic\n  records: 1k\n", ""),
        "s.yaml:1: corpus: required field is missing",
    ),
    "missing field of a list item": (
        edit("  - name: fn\n", "  - \n"),
        "s.yaml:10: pipelines[1].name: required field is missing",
    ),
    "unknown corpus source": (
        edit("source: synthetic", "source: parquet"),
        "s.yaml:3: corpus.source: unknown corpus source 'parquet' (known: synthetic, hf, file)",
    ),
    "corpus without source": (
        edit("  source: synthetic\n", ""),
        "s.yaml:2: corpus.source: required field is missing (one of: synthetic, hf, file)",
    ),
    "corpus records below the largest size": (
        edit("records: 1k", "records: 500"),
        "s.yaml:4: corpus.records: 500 records cannot serve the largest size 1k",
    ),
    "unknown pipeline kind": (
        edit("kind: colbert", "kind: colbrt"),
        "s.yaml:7: pipelines[0].kind: unknown pipeline kind 'colbrt'; did you mean 'colbert'? "
        "(known: callable, colbert, ragatouille)",
    ),
    "duplicate pipeline names": (
        edit("- name: fn", "- name: colbert"),
        "s.yaml:9: pipelines[1].name: duplicate pipeline name 'colbert' (also pipelines[0].name)",
    ),
    "bad pipeline name": (
        edit("- name: fn", "- name: my fn"),
        "s.yaml:9: pipelines[1].name: invalid name 'my fn': use letters, digits, '_', '.' and '-', "
        "starting with a letter or digit",
    ),
    "callable without function": (
        edit('{function: "pkg.mod:index"}', "{batch: 3}"),
        "s.yaml:11: pipelines[1].options.function: required field is missing "
        "(the function to profile, as package.module:function)",
    ),
    "callable function without colon": (
        edit("pkg.mod:index", "pkg.mod.index"),
        "s.yaml:11: pipelines[1].options.function: invalid function 'pkg.mod.index': "
        "expected package.module:function",
    ),
    "bad target syntax": (
        edit("sizes:", "targets: [numpy.linalg.svd, numpy]\nsizes:"),
        "s.yaml:12: targets[1]: invalid target 'numpy': expected a dotted path of identifiers with at least "
        "two parts, such as package.module.function or package.module.Class.method",
    ),
    "bad pipeline target syntax": (
        edit("kind: callable", "kind: callable\n    targets: ['pkg.mod:fn']"),
        "s.yaml:11: pipelines[1].targets[0]: invalid target 'pkg.mod:fn': expected a dotted path of "
        "identifiers with at least two parts, such as package.module.function or package.module.Class.method",
    ),
    "bad duration": (
        edit("50ms", "50 fortnights"),
        "s.yaml:13: sample_interval: invalid duration '50 fortnights': expected a number of seconds or a "
        "number with a unit: 500us, 50ms, 30s, 30m, 2h",
    ),
    "duration out of range": (
        edit("50ms", "0.5ms"),
        "s.yaml:13: sample_interval: must be between 1ms and 60s, got 0.0005 s",
    ),
    "zero timeout": (
        edit("sizes:", "timeout: 0s\nsizes:"),
        "s.yaml:12: timeout: must be > 0, got '0s'",
    ),
    "bad memory": (
        edit("2GiB", "2 gigs"),
        "s.yaml:14: max_rss: invalid memory amount '2 gigs': expected bytes or a number with a unit: "
        "500MiB, 20GiB, 20G (= GiB, powers of 2) or 1.5GB (powers of 10)",
    ),
    "python interpreter that does not exist": (
        edit("kind: colbert", "kind: colbert\n    python: /nonexistent/venv/bin/python"),
        "s.yaml:8: pipelines[0].python: interpreter not found: /nonexistent/venv/bin/python",
    ),
    "unknown builtin model": (
        edit("sizes:", "model: builtin:minlm\nsizes:"),
        "s.yaml:12: model: unknown builtin model 'minlm'; did you mean 'minilm'? "
        "(builtin models: minilm, tiny, colbert-small-random)",
    ),
    "bad device": (
        edit("sizes:", "device: gpu\nsizes:"),
        "s.yaml:12: device: expected one of 'auto', 'cpu' or 'cuda', got string 'gpu'; did you mean 'cpu'?",
    ),
    "env value that is not a string": (
        edit("sizes:", "env: {DEBUG: yes}\nsizes:"),
        "s.yaml:12: env.DEBUG: expected a string (quote it), got boolean true",
    ),
    "YAML syntax error": (
        edit("  records: 1k\n", "  records: [1k\n"),
        "s.yaml:5: invalid YAML: while parsing a flow sequence on line 4, expected ',' or ']', but got ':'",
    ),
    "tab indentation": (
        edit("  records: 1k", "\trecords: 1k"),
        "s.yaml:4: invalid YAML: while scanning for the next token, found character '\\t' that cannot "
        "start any token",
    ),
    "duplicate key": (
        GOOD + "sizes: [5]\n",
        "s.yaml:15: sizes: duplicate key (first on line 12)",
    ),
    "duplicate nested key": (
        edit("  records: 1k\n", "  records: 1k\n  seed: 1\n  records: 2k\n"),
        "s.yaml:6: corpus.records: duplicate key (first on line 4)",
    ),
    "length bounds crossed": (
        edit("records: 1k", "records: 1k\n  lengths: {min_words: 50, max_words: 10}"),
        "s.yaml:5: corpus.lengths.max_words: must be >= min_words (50), got 10",
    ),
    "ragatouille options": (
        edit(
            "kind: colbert\n    options: {nbits: 2}",
            "kind: ragatouille\n    options: {use_faiss: 'no', split_docs: 1}",
        ),
        "s.yaml:8: pipelines[0].options.use_faiss: expected true or false, got string 'no'\n"
        "s.yaml:8: pipelines[0].options.split_docs: unknown key; did you mean 'split_documents'?",
    ),
    "option errors next to other errors of the pipeline": (
        edit("options: {nbits: 2}", "options: {nbits: 3}\n    python: /nonexistent/python\n    targets: [x]"),
        "s.yaml:8: pipelines[0].options.nbits: expected one of 1, 2, 4 or 8, got integer 3\n"
        "s.yaml:9: pipelines[0].python: interpreter not found: /nonexistent/python\n"
        "s.yaml:10: pipelines[0].targets[0]: invalid target 'x': expected a dotted path of identifiers with at "
        "least two parts, such as package.module.function or package.module.Class.method",
    ),
    "callable without options": (
        edit('    options: {function: "pkg.mod:index"}\n', ""),
        "s.yaml:9: pipelines[1].options.function: required field is missing "
        "(the function to profile, as package.module:function)",
    ),
    "key that is not a string": (GOOD + "1: x\n", "s.yaml:15: 1: keys must be strings, got integer 1"),
    "empty file": ("", "s.yaml: file is empty"),
    "comments only": ("# nothing here\n", "s.yaml: file is empty"),
    "top-level list": (
        "- name: x\n- name: y\n",
        "s.yaml:1: expected a mapping of scenario fields, got a list",
    ),
    "several errors, sorted by line": (
        edit("kind: colbert", "kind: colbrt", edit("[100, 1k]", "[-1, 1k]", edit("name: tiny", "nam: tiny"))),
        "s.yaml:1: name: required field is missing\n"
        "s.yaml:1: nam: unknown key; did you mean 'name'?\n"
        "s.yaml:7: pipelines[0].kind: unknown pipeline kind 'colbrt'; did you mean 'colbert'? "
        "(known: callable, colbert, ragatouille)\n"
        "s.yaml:12: sizes[0]: invalid size -1: must be > 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_exact_message(tmp_path, case):
    text, expected = BAD[case]
    assert errors_of(tmp_path, text) == expected


def test_good_file_is_good():
    assert load_text(GOOD).n_cells == 4


def test_issues_carry_field_line_message(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_text(edit("[100, 1k]", "[100, -5]"), "x.yaml")
    assert info.value.errors == [ScenarioIssue("sizes[1]", 12, "invalid size -5: must be > 0")]
    field, line, message = info.value.errors[0]  # also a (field, line, message) tuple
    assert (field, line) == ("sizes[1]", 12)


def test_interpreter_that_is_not_executable(tmp_path, tmp_path_factory):
    exe = tmp_path_factory.mktemp("venv") / "python"
    exe.write_text("")
    exe.chmod(stat.S_IRUSR | stat.S_IWUSR)
    text = edit("kind: colbert", f"kind: colbert\n    python: {exe}")
    assert errors_of(tmp_path, text) == f"s.yaml:8: pipelines[0].python: interpreter not executable: {exe}"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: file not found"
    with pytest.raises(ScenarioError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a scenario file"


def test_scenario_error_is_an_exception():
    assert issubclass(ScenarioError, Exception)


# --- units ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (100000, 100000),
        ("100000", 100000),
        ("100k", 100000),
        ("100K", 100000),
        ("2M", 2_000_000),
        ("1.5M", 1_500_000),
        ("1_000", 1000),
        ("250k", 250000),
        ("1.5k", 1500),
        (" 3 k ", 3000),
        ("1G", 10**9),
        (1e6, 10**6),
    ],
)
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "invalid size 0: must be > 0"),
        (-3, "invalid size -3: must be > 0"),
        ("0k", "invalid size '0k': must be > 0"),
        ("1.5", "invalid size '1.5': not a whole number of records"),
        ("1.2345k", "invalid size '1.2345k': not a whole number of records"),
        (
            "abc",
            "invalid size 'abc': expected a positive whole number such as 100000, 100_000, 100k, 1.5k or 2M",
        ),
        (
            "10KB",
            "invalid size '10KB': expected a positive whole number such as 100000, 100_000, 100k, 1.5k or 2M",
        ),
        (
            True,
            "invalid size True: expected a positive whole number such as 100000, 100_000, 100k, 1.5k or 2M",
        ),
        (
            None,
            "invalid size None: expected a positive whole number such as 100000, 100_000, 100k, 1.5k or 2M",
        ),
    ],
)
def test_parse_size_rejects(value, message):
    with pytest.raises(ValueError) as info:
        parse_size(value)
    assert str(info.value) == message


def test_format_size_is_short_and_exact():
    assert [
        format_size(n)
        for n in (1, 300, 1000, 1500, 1250, 1234, 100000, 250000, 1_000_000, 1_500_000, 2 * 10**9, 1_234_567)
    ] == ["1", "300", "1k", "1.5k", "1.25k", "1234", "100k", "250k", "1M", "1.5M", "2G", "1234567"]
    for n in list(range(1, 3000)) + [10**k + d for k in range(3, 10) for d in (0, 1, 10, 500)]:
        assert parse_size(format_size(n)) == n
    with pytest.raises(ValueError):
        format_size(0)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("50ms", 0.05),
        ("30s", 30.0),
        ("30m", 1800.0),
        ("30min", 1800.0),
        ("2h", 7200.0),
        (5, 5.0),
        (0.25, 0.25),
        ("1.5h", 5400.0),
        ("500us", 0.0005),
        ("10", 10.0),
        (0, 0.0),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["fast", "5 days", "-1s", -2, True, None, [1], "1e3s"])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    "value, n",
    [
        ("20GiB", 20 * 2**30),
        ("20G", 20 * 2**30),
        ("20g", 20 * 2**30),
        ("500MiB", 500 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("20GB", 20 * 10**9),
        ("512k", 512 * 1024),
        ("1KB", 1000),
        ("2T", 2 * 2**40),
        ("1.5G", 1610612736),
        (4096, 4096),
        ("4096", 4096),
        ("100B", 100),
        (2.0**31, 2**31),
    ],
)
def test_parse_memory(value, n):
    assert parse_memory(value) == n


@pytest.mark.parametrize("value", ["lots", "20 GiBs", "-1G", -5, 1.5, True, None, "20Gb/s"])
def test_parse_memory_rejects(value):
    with pytest.raises(ValueError, match="invalid memory amount"):
        parse_memory(value)


# --- commands ------------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    return memharness_app


def test_validate_command_ok_and_errors(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("good.yaml").write_text(GOOD)
    Path("bad.yaml").write_text(edit("kind: colbert", "kind: colbrt"))
    runner = CliRunner()

    ok = runner.invoke(cli, ["validate", "good.yaml"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == "OK good.yaml: 2 pipelines x 2 sizes x 1 repeats = 4 cells\n"

    bad = runner.invoke(cli, ["validate", "good.yaml", "bad.yaml", "missing.yaml"])
    assert bad.exit_code == 2
    assert bad.stdout == "OK good.yaml: 2 pipelines x 2 sizes x 1 repeats = 4 cells\n"
    assert bad.stderr == (
        "bad.yaml:7: pipelines[0].kind: unknown pipeline kind 'colbrt'; did you mean 'colbert'? "
        "(known: callable, colbert, ragatouille)\n"
        "missing.yaml: file not found\n"
    )
    assert "Traceback" not in bad.output


def test_schema_command(tmp_path, cli):
    runner = CliRunner()
    printed = runner.invoke(cli, ["schema"])
    assert printed.exit_code == 0
    schema = json.loads(printed.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(Scenario.model_fields)
    assert set(schema["required"]) == {"name", "corpus", "pipelines", "sizes"}
    assert schema["additionalProperties"] is False
    pipeline = schema["$defs"]["PipelineSpec"]
    assert pipeline["properties"]["kind"]["enum"] == sorted(KINDS)
    per_kind = {
        rule["if"]["properties"]["kind"]["const"]: rule["then"]["properties"]["options"]
        for rule in pipeline["allOf"]
    }
    assert (
        "nbits" in per_kind["colbert"]["properties"] and per_kind["colbert"]["additionalProperties"] is False
    )
    assert per_kind["callable"]["required"] == ["function"]
    size = schema["properties"]["sizes"]["items"]
    assert {"integer", "string"} == {alt["type"] for alt in size["anyOf"]}
    assert re.match(size["anyOf"][1]["pattern"], "1.5k") and not re.match(size["anyOf"][1]["pattern"], "abc")

    out = tmp_path / "scenario.schema.json"
    written = runner.invoke(cli, ["schema", "--output", str(out)])
    assert written.exit_code == 0
    assert json.loads(out.read_text()) == schema

    failed = runner.invoke(cli, ["schema", "--output", str(tmp_path / "no" / "such" / "dir.json")])
    assert failed.exit_code == 2
    assert "cannot write" in failed.stderr


# --- hostile YAML ---------------------------------------------------------------------------------------


def alias_bomb(levels: int) -> str:
    """A ~600-byte scenario whose nested `&a [*a, *a, ...]` lists expand to 9**(levels+1) values."""
    lines = ["name: bomb", "corpus: {source: synthetic}", "sizes: [10]", "pipelines:", "  - name: a",
             "    kind: callable", "    options:", '      function: "m:f"', "      l0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"      l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _limited_memory() -> None:  # runs in the child: today's loader fills all memory on a bomb
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("levels", [7, 9])
def test_yaml_alias_bomb_is_refused_quickly(tmp_path, levels):
    import subprocess

    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels))
    assert len(path.read_bytes()) < 800
    code = ("import sys, time\nfrom memharness.scenario import ScenarioError, load\nt = time.perf_counter()\n"
            "try:\n    load(sys.argv[1])\nexcept ScenarioError as exc:\n    print(exc)\n"
            "print(f'{time.perf_counter() - t:.3f}')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited_memory)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, seconds = proc.stdout.strip().splitlines()
    assert message == (f"{path}:{9 + levels}: pipelines[0].options.l{levels}: YAML aliases expand this to more "
                       "than 20000 values (an alias bomb?); a scenario may hold at most 20000 values once its "
                       "aliases are expanded")
    assert float(seconds) < 5.0  # about 0.03 s; generous for a loaded machine
    cli_run = subprocess.run([sys.executable, "-m", "memharness", "validate", str(path)], capture_output=True,
                             text=True, timeout=120, preexec_fn=_limited_memory)
    assert cli_run.returncode == 2 and cli_run.stderr.strip() == message, cli_run.stderr[-2000:]


def test_recursive_alias_is_refused(tmp_path):
    text = edit('options: {function: "pkg.mod:index"}', 'options: &o {function: "pkg.mod:index", self: *o}')
    assert errors_of(tmp_path, text) == ("s.yaml:11: a YAML alias refers to the value that contains it "
                                         "(a recursive alias)")


def test_aliases_within_the_bound_still_work(tmp_path):
    text = textwrap.dedent(
        """\
        name: anchors
        corpus: {source: synthetic}
        sizes: [10]
        pipelines:
          - name: a
            kind: colbert
            options: &common {nbits: 2, doc_maxlen: 180}
          - name: b
            kind: colbert
            options: {<<: *common, nbits: 4}
          - name: c
            kind: callable
            options: {function: "m:f", table: &t [[1, 2, 3], [4, 5, 6]], again: [*t, *t, *t, *t]}
        """
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    scenario = load(path)
    assert [p.options.get("nbits") for p in scenario.pipelines[:2]] == [2, 4]
    assert scenario.pipelines[2].options["again"][3] == [[1, 2, 3], [4, 5, 6]]
    # 9**4 list items after expansion stay under the bound and validate fast
    big = tmp_path / "big.yaml"
    big.write_text(alias_bomb(3))
    assert len(load(big).pipelines[0].options["l3"]) == 9


@pytest.mark.parametrize("env, expected", [
    ('LD_PRELOAD: "a\\0b"',
     "s.yaml:17: env.LD_PRELOAD: the value holds a NUL byte (\\0 at character 1), which an environment "
     "variable cannot carry"),
    ('"A\\0B": x', "s.yaml:17: env.'A\\x00B': invalid environment variable name 'A\\x00B'"),
    ('"A=B": x', "s.yaml:17: env.A=B: invalid environment variable name 'A=B'"),
    ('"PATH\\n": x', "s.yaml:17: env.'PATH\\n': invalid environment variable name 'PATH\\n'"),
])
def test_env_with_nul_or_bad_name_is_refused_at_its_line(tmp_path, env, expected):
    assert errors_of(tmp_path, GOOD + "env:\n  OMP_NUM_THREADS: 2\n  " + env + "\n") == expected
