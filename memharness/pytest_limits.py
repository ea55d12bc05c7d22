"""What the `memharness` pytest marker does for a marked test (imported only when a test is marked):
parse the marker, profile the test's call, check the limits, save the run folder, compare with a baseline.
See memharness/pytest_plugin.py for the rules."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memharness.names import MANIFEST

MiB = float(1 << 20)
MARKER_KEYS = ("targets", "peak", "increment", "tree_peak", "gpu_peak", "follow_children", "sample_interval")
PROPERTY = "memharness"


def folder_name(nodeid: str) -> str:
    """A test's run folder name: `tests/test_x.py::test_y[a-1]` -> `tests_test_x.py__test_y_a-1_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", nodeid.replace("::", "__")).strip(".") or "test"


def _mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB"


@dataclass
class MarkSpec:
    targets: list[str]
    peak: dict[str, int] = field(default_factory=dict)
    increment: dict[str, int] = field(default_factory=dict)
    gpu_peak: dict[str, int] = field(default_factory=dict)
    tree_peak: int | None = None
    follow_children: bool = True
    sample_interval: Any = None

    @classmethod
    def parse(cls, marker: pytest.Mark) -> MarkSpec:
        """Raise ValueError naming the marker argument that is wrong."""
        from memharness.scenario.units import parse_memory

        if marker.args:
            raise ValueError("takes keyword arguments only (targets=[...], peak={...}, ...)")
        unknown = sorted(set(marker.kwargs) - set(MARKER_KEYS))
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(MARKER_KEYS)}")
        from memharness.api import target_list

        kw = marker.kwargs
        targets = target_list(kw.get("targets", []))

        def limits(key: str) -> dict[str, int]:
            value = kw.get(key) or {}
            if not isinstance(value, dict):
                raise ValueError(f"{key}= must be a dict of dotted function path -> size, got {value!r}")
            out = {}
            for fn, size in value.items():
                try:
                    out[str(fn)] = parse_memory(size)
                except ValueError as exc:
                    raise ValueError(f"{key}[{fn!r}]: {exc}") from None
            return out

        spec = cls(targets, limits("peak"), limits("increment"), limits("gpu_peak"))
        if kw.get("tree_peak") is not None:
            try:
                spec.tree_peak = parse_memory(kw["tree_peak"])
            except ValueError as exc:
                raise ValueError(f"tree_peak: {exc}") from None
        spec.follow_children = bool(kw.get("follow_children", True))
        spec.sample_interval = kw.get("sample_interval")
        for fn in list(spec.peak) + list(spec.increment) + list(spec.gpu_peak):
            if fn not in spec.targets:
                spec.targets.append(fn)
        return spec


def check_limits(spec: MarkSpec, figures: dict[str, dict[str, float]], test: str,
                 root_peak: int | None = None) -> tuple[list[str], list[str]]:
    """(failures, warnings): one line per limit crossed, naming the test, the function, limit and value.

    `root_peak`: the test process's exact peak RSS over the test (its high-water mark); the tree's sampled
    peak is raised to it, so a spike of the test process between two samples still counts."""
    from memharness.results.figures import TREE

    failures: list[str] = []
    warnings: list[str] = []
    for key, metric, what in (("peak", "peak_over_start", "peak over its entry RSS"),
                              ("increment", "increment", "RSS increment"),
                              ("gpu_peak", "gpu_peak", "GPU peak allocated")):
        for fn, limit in getattr(spec, key).items():
            fig = figures.get(fn)
            if not fig:
                failures.append(f"{test}: {fn} was never called, so {key}={{{fn!r}: {_mib(limit)}}} cannot be "
                                f"checked")
                continue
            if metric not in fig:
                warnings.append(f"{test}: {fn}: no {what} recorded (no CUDA device seen); {key} not checked")
                continue
            value = fig[metric]
            if value > limit:
                calls = int(fig.get("calls", 0))
                failures.append(f"{test}: {fn}: {what} {_mib(value)} exceeds the limit {key}={_mib(limit)} "
                                f"(absolute peak RSS {_mib(fig.get('peak', 0))}, {calls} call"
                                f"{'s' if calls != 1 else ''})")
    if spec.tree_peak is not None:
        tree = figures.get(TREE)
        if not tree:
            failures.append(f"{test}: tree_peak needs the timeline sampler, which did not run")
        else:
            peak = max(tree["peak"], root_peak or 0)
            rise = peak - tree["start"]
            if rise > spec.tree_peak:
                failures.append(f"{test}: process tree: peak {_mib(rise)} above its RSS at the test's start "
                                f"exceeds the limit tree_peak={_mib(spec.tree_peak)} (absolute peak {_mib(peak)}, "
                                f"all processes of the test summed)")
    return failures, warnings


def check_options(config: pytest.Config) -> None:
    """Refuse bad --memharness-* values at startup, with the option named."""
    from memharness.commands.compare import parse_threshold
    from memharness.metrics import NAMES as METRICS

    try:
        parse_threshold(config.getoption("--memharness-threshold"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc).replace("--threshold", "--memharness-threshold")) from None
    if config.getoption("--memharness-metric") not in METRICS:
        raise pytest.UsageError(f"--memharness-metric: choose one of {', '.join(METRICS)}")
    if config.getoption("--memharness-min-mib") < 0:
        raise pytest.UsageError("--memharness-min-mib must not be negative")


def _save(prof, dest: Path, fingerprint: bool = True) -> Path:
    """Save a test's run folder, replacing the one an earlier session saved there."""
    if dest.exists():
        if not (dest / MANIFEST).exists():
            raise FileExistsError(f"{dest} exists and is not a memharness run folder; not replacing it")
        shutil.rmtree(dest)
    return prof.save(dest, fingerprint=fingerprint)


def _compare(config: pytest.Config, base: Path, current: Path, test: str) -> list[str]:
    from memharness.commands.compare import parse_threshold
    from memharness.compare import CompareError, Rule, compare
    from memharness.compare.engine import FAILED
    from memharness.compare.rule import REGRESSED

    metric = config.getoption("--memharness-metric")
    rule = Rule(threshold=parse_threshold(config.getoption("--memharness-threshold")),
                min_bytes=config.getoption("--memharness-min-mib") * MiB)
    try:
        result = compare(str(base), str(current), metric, rule)
    except CompareError as exc:
        return [f"{test}: cannot compare with the baseline {base}: {exc}"]
    lines = []
    for r in result.rows:
        if r.verdict == REGRESSED and r.decision is not None:
            d = r.decision
            ratio = f", x{d.ratio:.2f}" if d.ratio else ""
            lines.append(f"{test}: {r.target}: {metric} {_mib(d.old)} -> {_mib(d.new)} (+{_mib(d.delta)}{ratio}) "
                         f"regressed against the baseline {base} (threshold {rule.threshold:.0%}, floor "
                         f"{_mib(rule.min_bytes)})")
    for c in result.failed_cells:
        lines.append(f"{test}: {FAILED} where the baseline passed: {c.detail}")
    return lines


def _summary(figures: dict[str, dict[str, float]], root_peak: int | None) -> str:
    """`fn +301.0 MiB, tree +301.0 MiB`: each function's peak over its entry, the tree's as for tree_peak."""
    from memharness.results.figures import TREE

    parts = []
    for target, fig in figures.items():
        if target == TREE:
            parts.append(f"tree +{_mib(max(fig['peak'], root_peak or 0) - fig['start'])}")
        else:
            parts.append(f"{target} +{_mib(fig.get('peak_over_start', 0))}")
    return ", ".join(parts)


def measure(item: pytest.Item, marker: pytest.Mark):
    """The marked test's call, profiled: a generator the plugin's hook wrapper delegates to (`yield from`)."""
    from memharness.api import Profile

    config = item.config
    test = item.nodeid
    from memharness.core.targets import TargetError

    problem = None
    try:
        spec = MarkSpec.parse(marker)
        interval = spec.sample_interval or config.getoption("--memharness-interval")
        prof = Profile(spec.targets, sample_interval=interval, follow_children=spec.follow_children,
                       label=folder_name(item.name), name=folder_name(test))
        prof.start()
    except (ValueError, TargetError) as exc:
        problem = str(exc)
    if problem is not None:  # failed before the yield: the test does not run
        pytest.fail(f"{test}: @pytest.mark.memharness: {problem}", pytrace=False)
    try:
        result = yield
    except BaseException as exc:
        prof.stop(exc)
        _keep(config, prof, test)
        raise
    prof.stop()
    figures = prof.figures()
    root_peak = prof.block_peak()
    failures, warnings = check_limits(spec, figures, test, root_peak)
    saved = _keep(config, prof, test)
    baseline = config.getoption("--memharness-baseline")
    if baseline is not None:
        base = Path(baseline) / folder_name(test)
        if not (base / MANIFEST).exists():
            warnings.append(f"{test}: no baseline run folder {base}; not compared")
        else:
            tmp = None
            if saved is None:
                tmp = Path(tempfile.mkdtemp(prefix="memharness-pytest-"))
                saved = _save(prof, tmp / folder_name(test), fingerprint=False)  # only its rows are read
            try:
                failures += _compare(config, base, saved, test)
            finally:
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
    item.user_properties.append((PROPERTY, _summary(figures, root_peak) + (" -- FAILED" if failures else "")))
    for w in warnings:
        item.warn(pytest.PytestWarning(w))
    if failures:
        pytest.fail("memharness:\n" + "\n".join(failures), pytrace=False)
    return result


def _keep(config: pytest.Config, prof, test: str) -> Path | None:
    out = config.getoption("--memharness-report")
    if out is None:
        return None
    return _save(prof, Path(out) / folder_name(test))


