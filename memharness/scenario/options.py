"""Kind-specific `options` of pipelines: one model per kind, in one table (`KIND_OPTIONS`).

A kind of `memharness.pipelines.registry.KINDS` without an entry here takes any options mapping.
Defaults written here (e.g. ragatouille's `split_documents: false`) are filled into the validated
options, so the run manifest shows what the adapter was given.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool, ValidationError, WithJsonSchema

from memharness.scenario.errors import Loc, describe, translate
from memharness.scenario.fields import FunctionRef, PositiveInt, StrictModel

KMeans = Literal["faiss", "fastkmeans", "auto"]


def _check_nbits(value: Any) -> int:
    if isinstance(value, bool) or value not in (1, 2, 4, 8) or not isinstance(value, int):
        raise ValueError(f"expected one of 1, 2, 4 or 8, got {describe(value)}")
    return value


NBits = Annotated[
    int, BeforeValidator(_check_nbits), WithJsonSchema({"type": "integer", "enum": [1, 2, 4, 8]})
]


class CallableOptions(BaseModel):
    """`function` is called as function(ctx); every other key is passed on to it in `ctx.options`.
    `prepare` (optional) is called the same way in the cell's prepare phase, left out of run figures."""

    model_config = ConfigDict(extra="allow")

    function: FunctionRef
    prepare: FunctionRef | None = None


class ColbertOptions(StrictModel):
    """Fields of colbert-ai's ColBERTConfig / RunConfig that a scenario may set; unset = library default."""

    nbits: NBits | None = None
    doc_maxlen: PositiveInt | None = None
    query_maxlen: PositiveInt | None = None
    kmeans_niters: PositiveInt | None = None
    index_bsize: PositiveInt | None = None
    bsize: PositiveInt | None = None
    dim: PositiveInt | None = None
    nranks: PositiveInt | None = None
    avoid_fork_if_possible: StrictBool | None = None
    kmeans: KMeans | None = None
    checkpoint_config: dict[str, Any] | None = None


class RagatouilleOptions(StrictModel):
    """Arguments of RAGPretrainedModel.index; `split_documents` defaults to false so size N = N documents."""

    use_faiss: StrictBool | None = None
    split_documents: StrictBool = False
    max_document_length: PositiveInt | None = None
    bsize: PositiveInt | None = None
    index_name: str | None = None
    kmeans: KMeans | None = None


KIND_OPTIONS: dict[str, type[BaseModel]] = {
    "callable": CallableOptions,
    "colbert": ColbertOptions,
    "ragatouille": RagatouilleOptions,
}


def validate_options(kind: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
    """Check `options` for `kind`: (normalised options, [(location inside options, message)])."""
    model = KIND_OPTIONS.get(kind)
    if model is None:
        return dict(options), []
    try:
        validated = model.model_validate(options)
    except ValidationError as exc:
        issues = translate(exc, model)
        if model is CallableOptions:
            issues = [
                (loc, f"{msg} (the function to profile, as package.module:function)")
                if loc == ("function",) and msg == "required field is missing"
                else (loc, msg)
                for loc, msg in issues
            ]
        return dict(options), issues
    return validated.model_dump(exclude_none=True), []
