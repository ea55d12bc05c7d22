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
from memharness.pipelines.options import Option, OptionSet

_MISSING = object()


def function_problem(module: Any, module_name: str, name: str) -> str | None:
    """Why `module.name` cannot be called as the pipeline's function, or None: it is missing, or it is a
    value that is not callable (worded like the targets: `mod.x is an int, not callable`)."""
    obj = getattr(module, name, _MISSING)
    if obj is _MISSING:
        return f"{module_name} has no function {name!r}"
    if not callable(obj):
        kind = type(obj).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        return f"{module_name}.{name} is {article} {kind}, not callable"
    return None


def load_function(spec: str):
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"callable function must look like package.module:function, got {spec!r}")
    module = importlib.import_module(module_name)
    problem = function_problem(module, module_name, name)
    if problem is not None:
        raise ValueError(problem)
    return getattr(module, name)


# The kind's options: `function` and `prepare`; every other key is passed on to them as given.
OPTIONS = OptionSet((
    Option("function", "function", "the function to profile, as package.module:function", required=True),
    Option("prepare", "function", "called the same way in the cell's prepare phase, left out of the run "
           "figures; what it returns (when not None) reaches `function` as the keyword argument `prepared`"),
), open=True)

# No packages of its own: the function's top-level package is added to the fingerprint from `function`.
PACKAGES: tuple[str, ...] = ()


class CallablePipeline(Pipeline):
    kind: ClassVar[str] = "callable"
    default_targets: ClassVar[list[str]] = []
    packages: ClassVar[list[str]] = list(PACKAGES)
    option_set: ClassVar[OptionSet] = OPTIONS

    OWN_OPTIONS: ClassVar[tuple[str, ...]] = tuple(OPTIONS.names)

    def _options(self, ctx: CellContext) -> dict[str, Any]:
        return {k: v for k, v in ctx.options.items() if k not in self.OWN_OPTIONS}

    def prepare(self, ctx: CellContext) -> None:
        self._prepared = None
        if ctx.options.get("prepare"):
            self._prepared = load_function(ctx.options["prepare"])(ctx.ids, ctx.texts, self._options(ctx),
                                                                    ctx.workdir)

    def import_modules(self, options: dict[str, Any]) -> list[str]:
        """The callable's module, after the modules its top level imports (each measured on its own)."""
        from memharness.core.imports import module_imports

        module_name = str(options.get("function", "")).partition(":")[0]
        if not module_name:
            return []
        return [*module_imports(module_name), module_name]

    def run(self, ctx: CellContext) -> None:
        extra = {} if getattr(self, "_prepared", None) is None else {"prepared": self._prepared}
        load_function(ctx.options["function"])(ctx.ids, ctx.texts, self._options(ctx), ctx.workdir, **extra)
