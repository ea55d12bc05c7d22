"""The scenario file schema (pydantic v2).

Defaults of the scenario's own fields live here. The defaults of a corpus source's fields come from the
source's module (`DEFAULTS` in memharness/corpus/{synthetic,hf,files}.py, `DEFAULT_LENGTHS` in lengths.py)
and a pipeline kind's options from the kind's module (`OPTIONS`, checked in scenario/options.py).

The validated model holds parsed values: sizes as ints, durations as float seconds, memory as int bytes,
pipeline options normalised per kind. `Scenario.model_dump()` is the dict that goes into the manifest,
and `Scenario.model_validate` accepts it again.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from memharness.corpus import files as file_source
from memharness.corpus import hf as hf_source
from memharness.corpus import synthetic as synthetic_source
from memharness.corpus.lengths import DEFAULT_LENGTHS, DISTRIBUTIONS
from memharness.numeric import is_number
from memharness.pipelines.registry import KINDS
from memharness.scenario.errors import LocatedErrors, describe, did_you_mean, format_path
from memharness.scenario.executors import DEFAULT_EXECUTOR, EXECUTORS
from memharness.scenario.fields import (
    ENV_NAME_PATTERN,
    DottedPath,
    Duration,
    Memory,
    ModelRef,
    Name,
    PositiveDuration,
    PositiveInt,
    Size,
    StrictModel,
    require_string,
)
from memharness.scenario.options import options_json_schema, validate_options
from memharness.scenario.units import format_size

SAMPLE_INTERVAL_MIN = 0.001
SAMPLE_INTERVAL_MAX = 60.0

# --- corpus ------------------------------------------------------------------------------------------


class Lengths(StrictModel):
    """Passage length distribution of the synthetic corpus, in words."""

    distribution: Literal[DISTRIBUTIONS] = DEFAULT_LENGTHS["distribution"]  # type: ignore[valid-type]
    median_words: Annotated[StrictFloat, Field(gt=0)] = float(DEFAULT_LENGTHS["median_words"])
    sigma: Annotated[StrictFloat, Field(ge=0)] = float(DEFAULT_LENGTHS["sigma"])
    min_words: PositiveInt = DEFAULT_LENGTHS["min_words"]
    max_words: PositiveInt = DEFAULT_LENGTHS["max_words"]

    @model_validator(mode="after")
    def _bounds(self) -> Lengths:
        if self.max_words < self.min_words:
            raise LocatedErrors(
                [(("max_words",), f"must be >= min_words ({self.min_words}), got {self.max_words}")]
            )
        return self


class SyntheticCorpus(StrictModel):
    """Deterministic passages from a seed, words from a tokenizer vocabulary."""

    source: Literal["synthetic"]
    seed: Annotated[StrictInt, Field(ge=0)] = synthetic_source.DEFAULTS["seed"]
    records: Size | None = synthetic_source.DEFAULTS["records"]
    vocab: Annotated[str, Field(min_length=1)] = synthetic_source.DEFAULTS["vocab"]
    lengths: Lengths = Field(default_factory=Lengths)


def _check_data_files(value: Any) -> Any:
    def is_files(v: Any) -> bool:
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))

    if value is None or is_files(value):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and is_files(v) for k, v in value.items()):
        return value
    raise ValueError(
        f"expected a path, a list of paths or a mapping of split -> path(s), got {describe(value)}"
    )


_FILES_SCHEMA = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
DataFiles = Annotated[
    Any,
    BeforeValidator(_check_data_files),
    WithJsonSchema(
        {"anyOf": [*_FILES_SCHEMA["anyOf"], {"type": "object", "additionalProperties": _FILES_SCHEMA}]}
    ),
]


class HFCorpus(StrictModel):
    """A Hugging Face dataset, loaded with datasets.load_dataset(path, name, split=..., ...)."""

    source: Literal["hf"]
    path: Annotated[str, Field(min_length=1)]
    name: str | None = hf_source.DEFAULTS["name"]
    split: str = hf_source.DEFAULTS["split"]
    text_field: str = hf_source.DEFAULTS["text_field"]
    id_field: str | None = hf_source.DEFAULTS["id_field"]
    revision: str | None = hf_source.DEFAULTS["revision"]
    data_files: DataFiles | None = hf_source.DEFAULTS["data_files"]


class FileCorpus(StrictModel):
    """A local file: JSON lines, parquet, CSV/TSV, or plain text with one passage per line."""

    source: Literal["file"]
    path: Annotated[str, Field(min_length=1)]  # relative: to the scenario file's folder (runner/preflight.py)
    format: Literal[("auto", *file_source.FORMATS)] = file_source.DEFAULTS["format"]  # type: ignore[valid-type]
    text_field: str = file_source.DEFAULTS["text_field"]
    id_field: str | None = file_source.DEFAULTS["id_field"]


Corpus = Annotated[SyntheticCorpus | HFCorpus | FileCorpus, Field(discriminator="source")]

# --- pipelines ---------------------------------------------------------------------------------------


def check_kind(value: Any) -> str:
    text = require_string(value)
    if text not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown pipeline kind {text!r}{did_you_mean(text, KINDS)} (known: {known})")
    return text


def check_python(value: Any) -> str:
    """An interpreter given as a path (relative to the current directory) or a command name on PATH."""
    text = require_string(value)
    path = os.path.expanduser(text)
    if os.sep not in path and (os.altsep is None or os.altsep not in path):
        if shutil.which(path) is None:
            raise ValueError(f"interpreter not found: {text}")
        return text
    if not os.path.exists(path):
        raise ValueError(f"interpreter not found: {text}")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise ValueError(f"interpreter not executable: {text}")
    return text


def _options_schema() -> dict[str, Any]:
    return {
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"properties": {"options": options_json_schema(kind)}},
            }
            for kind in KINDS
        ]
    }


class PipelineSpec(StrictModel):
    """One pipeline variant of the matrix."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=lambda schema: schema.update(_options_schema())
    )

    name: Name
    kind: Annotated[
        str, BeforeValidator(check_kind), WithJsonSchema({"type": "string", "enum": sorted(KINDS)})
    ]
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    python: Annotated[str, BeforeValidator(check_python)] | None = None
    model: ModelRef | None = None
    targets: list[DottedPath] = Field(default_factory=list)
    default_targets: StrictBool = True
    # Ray executor only: custom Ray resources this pipeline's cells ask for (pins them to nodes offering them).
    resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # A field validator (not a model one) so option errors show even when other fields are wrong.
        kind = info.data.get("kind")
        if kind is None:  # the kind itself is invalid and reported
            return options
        options, issues = validate_options(kind, options)
        if issues:
            raise LocatedErrors(issues)
        return options


# --- scenario ----------------------------------------------------------------------------------------


def _check_env(value: Any) -> Any:
    """Environment values may be written as YAML numbers; they become strings. Names are identifiers (no
    `=`, NUL or newline); values hold no NUL byte, which the OS cannot pass to a process."""
    if not isinstance(value, dict):
        return value
    issues = []
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(ENV_NAME_PATTERN, key):
            issues.append(((key,), f"invalid environment variable name {key!r}"))
        elif is_number(item):
            out[key] = str(item)
        elif isinstance(item, str) and "\0" in item:
            issues.append(((key,), f"the value holds a NUL byte (\\0 at character {item.index(chr(0))}), "
                                   "which an environment variable cannot carry"))
        elif isinstance(item, str):
            out[key] = item
        else:
            issues.append(((key,), f"expected a string (quote it), got {describe(item)}"))
    if issues:
        raise LocatedErrors(issues)
    return out


class ExplainSpec(StrictModel):
    """One `explain:` entry: explain TARGET in the matching cells during the run (see docs/explain.md)."""

    target: DottedPath
    pipelines: list[Name] = Field(default_factory=list)  # empty: every pipeline
    sizes: list[Size] = Field(default_factory=list)  # empty: every size
    host: StrictBool = True
    gpu: StrictBool = False
    native: StrictBool = False
    top: Annotated[StrictInt, Field(ge=1)] = 10


class Scenario(StrictModel):
    """A scenario file: which corpus, model and pipelines, at which sizes, measured how."""

    name: Name
    description: str | None = None
    corpus: Corpus
    model: ModelRef = "builtin:minilm"
    pipelines: Annotated[list[PipelineSpec], Field(min_length=1)]
    sizes: Annotated[list[Size], Field(min_length=1)]
    repeats: Annotated[StrictInt, Field(ge=1)] = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    targets: list[DottedPath] = Field(default_factory=list)
    sample_interval: Duration = 0.05
    line_profile: list[DottedPath] = Field(default_factory=list)
    timeout: PositiveDuration | None = None
    max_rss: Memory | None = None
    output: Annotated[str, Field(min_length=1)] = "results"
    env: Annotated[dict[str, str], BeforeValidator(_check_env)] = Field(default_factory=dict)
    # What to do with processes a cell leaves behind (found by the cell's marker in their environment):
    # kill them (recorded in status.json), warn and leave them running, or keep them (recorded only).
    leftovers: Literal["kill", "warn", "keep"] = "kill"
    # Cells to explain during the run: memray / torch's allocator history around one call (memharness[explain]).
    explain: list[ExplainSpec] = Field(default_factory=list)
    # Where cells run (docs/executors.md): one after another on this machine, or as Ray tasks.
    executor: Literal[tuple(EXECUTORS)] = DEFAULT_EXECUTOR  # type: ignore[valid-type]
    # Ray only: GPUs per cell (fractional allowed; default 1 for device cuda, else 0), CPUs per cell,
    # how often a cell whose worker or node was lost is run again, and whether its work/ folder comes back.
    gpus_per_cell: Annotated[float, Field(gt=0)] | None = None
    num_cpus: Annotated[float, Field(ge=0)] = 1
    retries_on_lost: Annotated[StrictInt, Field(ge=0)] = 0
    return_work: StrictBool = False
    # Ray only: custom Ray resources every cell's task asks for (a pipeline's `resources` add to these).
    resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _unique_sizes(cls, sizes: list[int]) -> list[int]:
        issues = []
        seen: dict[int, int] = {}
        for i, size in enumerate(sizes):
            if size in seen:
                issues.append(((i,), f"duplicate size {format_size(size)} (also sizes[{seen[size]}])"))
            seen.setdefault(size, i)
        if issues:
            raise LocatedErrors(issues)
        return sizes

    @field_validator("sample_interval")
    @classmethod
    def _interval_range(cls, seconds: float) -> float:
        if not SAMPLE_INTERVAL_MIN <= seconds <= SAMPLE_INTERVAL_MAX:
            raise ValueError(f"must be between 1ms and 60s, got {seconds:g} s")
        return seconds

    @model_validator(mode="after")
    def _consistency(self) -> Scenario:
        issues: list[tuple[tuple[Any, ...], str]] = []
        seen_names: dict[str, int] = {}
        for i, pipeline in enumerate(self.pipelines):
            if pipeline.name in seen_names:
                first = format_path(("pipelines", seen_names[pipeline.name], "name"))
                issues.append(
                    (("pipelines", i, "name"), f"duplicate pipeline name {pipeline.name!r} (also {first})")
                )
            seen_names.setdefault(pipeline.name, i)
        for i, spec in enumerate(self.explain):
            for j, name in enumerate(spec.pipelines):
                if name not in seen_names:
                    issues.append((("explain", i, "pipelines", j), f"no pipeline named {name!r}"
                                   f"{did_you_mean(name, list(seen_names))}"))
        records = getattr(self.corpus, "records", None)
        if records is not None and max(self.sizes) > records:
            largest = format_size(max(self.sizes))
            issues.append(
                (
                    ("corpus", "records"),
                    f"{format_size(records)} records cannot serve the largest size {largest}",
                )
            )
        if issues:
            raise LocatedErrors(issues)
        return self

    @property
    def n_cells(self) -> int:
        return len(self.pipelines) * len(self.sizes) * self.repeats

    def pipeline_model(self, pipeline: PipelineSpec) -> str:
        """The model a pipeline uses: its own override or the scenario's."""
        return pipeline.model or self.model
