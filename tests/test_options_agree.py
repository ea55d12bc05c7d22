"""`memharness validate` and preflight agree: on every pipeline kind's options and every corpus source.

A scenario the schema accepts must not be refused by preflight's per-kind check (`Pipeline.validate_options`,
what `memharness.runner.probe` runs in the pipeline's interpreter), and the other way round. Corpus
sources: what the schema fills in for an unset field is what the source module itself would use. Fast:
no model is loaded, nothing is indexed, no pipeline library is imported.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from memharness.corpus import SOURCES, CorpusError
from memharness.corpus import normalize as corpus_normalize
from memharness.pipelines import registry
from memharness.scenario import Scenario, schema

# Values tried for every option: each type's good and bad values, the library's special values, null.
PROBE_VALUES: list[typing.Any] = [
    None, True, False, 0, 1, 2, 3, -1, -2, 8, 256, 1.5, "", "x", "auto", "faiss", "faiss-cpu", "fastkmeans",
    "reuse", "resume", "force_silent_overwrite", "pkg.mod:fn", "a:b", "pkg.mod:", ":fn", "pkg mod:fn",
    {}, {"ncells": 2}, [1],
]
# Option names either side has accepted at some point, plus a misspelling: every one must get one answer.
CANDIDATE_NAMES = [
    "nbits", "doc_maxlen", "query_maxlen", "kmeans_niters", "index_bsize", "bsize", "dim", "nranks",
    "avoid_fork_if_possible", "kmeans", "checkpoint_config", "config", "experiment", "index_name", "overwrite",
    "verbose", "use_faiss", "split_documents", "max_document_length", "overwrite_index", "n_gpu", "function",
    "prepare", "nbitz",
]
BASE_OPTIONS = {"callable": {"function": "pkg.mod:fn"}}


def _schema_option_names(kind: str) -> list[str]:
    from memharness.commands.schema import scenario_json_schema

    rules = scenario_json_schema()["$defs"]["PipelineSpec"].get("allOf", [])
    for rule in rules:
        if rule["if"]["properties"]["kind"]["const"] == kind:
            return list(rule["then"]["properties"]["options"].get("properties", {}))
    return []


def _names(kind: str) -> list[str]:
    own = getattr(registry.get(kind), "option_set", None)
    return list(dict.fromkeys(CANDIDATE_NAMES + _schema_option_names(kind) + (own.names if own else [])))


def _validate(kind: str, options: dict) -> dict | None:
    """The options `memharness validate` keeps (normalised), or None when it refuses them."""
    spec = {"name": "s", "corpus": {"source": "synthetic"}, "sizes": [10],
            "pipelines": [{"name": "p", "kind": kind, "options": options}]}
    try:
        return Scenario.model_validate(spec).pipelines[0].options
    except ValidationError:
        return None


def _disagreements(kind: str) -> list[str]:
    """One line per option and direction: `colbert overwrite: validate refuses, preflight accepts: True, ...`."""
    pipeline = registry.get(kind)
    found: dict[tuple[str, str], list[str]] = {}
    for name in _names(kind):
        for value in PROBE_VALUES:
            options = {**BASE_OPTIONS.get(kind, {}), name: value}
            kept = _validate(kind, options)
            if kept is None and not pipeline.validate_options(options):
                found.setdefault((name, "validate refuses, preflight accepts"), []).append(repr(value))
            elif kept is not None and pipeline.validate_options(kept):  # preflight gets the validated options
                found.setdefault((name, "validate accepts, preflight refuses"), []).append(repr(value))
    return [f"{kind} {name}: {how}: {', '.join(values)}" for (name, how), values in found.items()]


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_validate_and_preflight_accept_and_refuse_the_same_options(kind):
    problems = _disagreements(kind)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems)


def _corpus_models() -> dict[str, type]:
    members = typing.get_args(typing.get_args(schema.Corpus)[0])
    return {typing.get_args(m.model_fields["source"].annotation)[0]: m for m in members}


def test_every_corpus_source_has_a_schema_model():
    assert set(_corpus_models()) == set(SOURCES)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_schema_fills_in_the_corpus_source_defaults(source, tmp_path):
    """What the schema writes for unset fields (the manifest's spec, handed to the source) is what the source
    module would use for a spec that leaves them out; both know the same fields."""
    model = _corpus_models()[source]
    minimal = {"source": source}
    for name, field in model.model_fields.items():
        if field.is_required() and name != "source":
            minimal[name] = str(tmp_path / "corpus.jsonl") if name == "path" else "x"
    filled = model.model_validate(minimal).model_dump(mode="json")
    assert set(filled) == set(SOURCES[source].DEFAULTS), "fields differ between the schema and the source"
    assert corpus_normalize(filled) == corpus_normalize(minimal), "defaults differ between schema and source"
    with pytest.raises(ValidationError):
        model.model_validate({**minimal, "nope": 1})
    with pytest.raises(CorpusError):
        corpus_normalize({**minimal, "nope": 1})


def test_builtin_model_names_are_the_recipes():
    from memharness.models.recipes import BUILTINS
    from memharness.scenario.fields import BUILTIN_MODELS

    assert tuple(BUILTIN_MODELS) == tuple(BUILTINS)


def test_the_docs_name_every_option_of_every_kind():
    import re
    from pathlib import Path

    import memharness

    docs = Path(memharness.__file__).resolve().parents[1] / "docs"
    pipelines_md = (docs / "pipelines.md").read_text()
    scenario_md = (docs / "scenario.md").read_text()
    for kind in registry.KINDS:
        spec = registry.option_set(kind)
        bullet = re.search(rf"^- `{kind}`: (.*?)(?=^- `|^$)", scenario_md, re.M | re.S)
        assert bullet, f"docs/scenario.md has no bullet for {kind}"
        section = pipelines_md.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0] if kind != "callable" else ""
        for name in spec.names:
            assert f"`{name}`" in bullet.group(1), f"docs/scenario.md: {kind} option {name} missing"
            if section:
                assert f"`{name}`" in section, f"docs/pipelines.md: {kind} option {name} missing"
