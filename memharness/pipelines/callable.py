"""Pipeline kind `callable`: any importable function `pkg.module:function`.

It is called as `function(ids, texts, options, workdir)` with the corpus slice, the pipeline's options
(minus `function` and `prepare`) and the cell's work folder. This is how PyLate, sentence-transformers or
in-house indexing code is profiled, and how the runner's own tests drive calibrated workloads.

The optional `prepare` option names a second function, called the same way in the cell's `prepare` phase
(model loads, warm-ups, compiles) so the report's run-phase figures leave it out; when it returns
something other than None, `function` gets it as the keyword argument `prepared`.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from memharness.pipelines.base import CellContext, Pipeline


def load_function(spec: str):
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"callable function must look like package.module:function, got {spec!r}")
    fn = getattr(importlib.import_module(module_name), name, None)
    if not callable(fn):
        raise ValueError(f"{module_name} has no function {name!r}")
    return fn


class CallablePipeline(Pipeline):
    kind: ClassVar[str] = "callable"
    default_targets: ClassVar[list[str]] = []
    packages: ClassVar[list[str]] = []

    OWN_OPTIONS: ClassVar[tuple[str, ...]] = ("function", "prepare")

    def validate_options(self, options: dict[str, Any]) -> list[str]:
        errors = []
        if "function" not in options:
            errors.append("callable pipelines need options.function (package.module:function)")
        for key in self.OWN_OPTIONS:
            value = options.get(key)
            if value is not None and (not isinstance(value, str) or ":" not in value):
                errors.append(f"callable options.{key} must look like package.module:function, got {value!r}")
        return errors

    def _options(self, ctx: CellContext) -> dict[str, Any]:
        return {k: v for k, v in ctx.options.items() if k not in self.OWN_OPTIONS}

    def prepare(self, ctx: CellContext) -> None:
        self._prepared = None
        if ctx.options.get("prepare"):
            self._prepared = load_function(ctx.options["prepare"])(ctx.ids, ctx.texts, self._options(ctx),
                                                                    ctx.workdir)

    def run(self, ctx: CellContext) -> None:
        extra = {} if getattr(self, "_prepared", None) is None else {"prepared": self._prepared}
        load_function(ctx.options["function"])(ctx.ids, ctx.texts, self._options(ctx), ctx.workdir, **extra)
