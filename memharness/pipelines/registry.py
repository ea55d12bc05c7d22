"""Registry of pipeline kinds: kind name -> "module:Class", imported on first use.

Adding a kind: write its module (a `Pipeline` subclass with `OPTIONS` and `PACKAGES`, see
docs/adding-a-pipeline.md) and add one line here.
"""

from __future__ import annotations

import importlib

from memharness.pipelines.base import Pipeline
from memharness.pipelines.options import OptionSet

KINDS: dict[str, str] = {
    "callable": "memharness.pipelines.callable:CallablePipeline",
    "colbert": "memharness.pipelines.colbert:ColbertPipeline",
    "ragatouille": "memharness.pipelines.ragatouille:RagatouillePipeline",
}


def pipeline_class(kind: str) -> type[Pipeline]:
    try:
        target = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown pipeline kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get(kind: str) -> Pipeline:
    return pipeline_class(kind)()


def option_set(kind: str) -> OptionSet | None:
    """The kind's options table (None: any options mapping). Importing a kind's module imports none of
    its libraries, so the scenario schema can read it without them."""
    return pipeline_class(kind).option_set
