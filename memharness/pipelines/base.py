"""What a pipeline kind is: the context a cell hands it and the interface it implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from memharness.pipelines.options import OptionSet, check


@dataclass
class CellContext:
    """Everything a pipeline needs to index one collection slice inside a cell process."""

    pipeline: str
    kind: str
    size: int
    ids: list[str]
    texts: list[str]
    options: dict[str, Any]
    model: str
    device: str
    workdir: Path
    info: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Base class of pipeline kinds.

    `default_targets` are dotted paths wrapped in every cell of this kind; one that does not resolve in
    the installed library version is reported as missing, not fatal. `packages` are distributions whose
    versions go into the cell's fingerprint. `option_set` is the kind's options table (plain data, see
    `memharness.pipelines.options`); None takes any options mapping.
    """

    kind: ClassVar[str] = ""
    default_targets: ClassVar[list[str]] = []
    packages: ClassVar[list[str]] = []
    option_set: ClassVar[OptionSet | None] = None

    def import_modules(self, options: dict[str, Any]) -> list[str]:
        """Modules the cell imports (and measures, `imports.json`) after `packages`, before the session."""
        return []

    def validate_options(self, options: dict[str, Any]) -> list[str]:
        """Error messages for options this kind does not accept (empty when fine): `option_set`'s check, the
        same one `memharness validate` runs."""
        if self.option_set is None:
            return []
        _, issues = check(self.option_set, options)
        return [f"options.{key}: {message}" if key else f"options: {message}" for key, message in issues]

    def prepare(self, ctx: CellContext) -> None:
        """Warm-ups that must not be charged to the measured run (compiling extensions, ...)."""

    def run(self, ctx: CellContext) -> None:
        """Index `ctx.texts` into `ctx.workdir`; this is the measured part."""
        raise NotImplementedError
