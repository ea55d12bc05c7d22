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
FUNCTION_LIMITS = ("own", "peak", "peak_over_start", "increment", "final", "gpu_own", "gpu_peak")  # metrics.py names
TREE_LIMITS = ("tree_peak", "tree_peak_over_start")
MARKER_KEYS = ("targets", *FUNCTION_LIMITS, *TREE_LIMITS, "follow_children", "sample_interval")
WHAT = {"own": "peak over its entry RSS", "peak_over_start": "peak over its entry RSS", "peak": "peak RSS",
        "increment": "RSS increment", "final": "RSS at its last exit",
        "gpu_own": "GPU peak over entry (torch allocated)", "gpu_peak": "GPU peak allocated (torch)"}
PROPERTY = "memharness"


def test_key(item: pytest.Item) -> str:
    """A test's name for its run folder, the same whatever pytest chose as rootdir (an option value taken for a
    path can move it): the test file relative to the folder pytest was started in, then the test's name."""
    invoked = Path(item.config.invocation_params.dir)
    try:
        where = Path(item.path).resolve().relative_to(invoked.resolve()).as_posix()
    except ValueError:
        where = Path(item.path).name
    return f"{where}::{item.nodeid.split('::', 1)[1]}" if "::" in item.nodeid else where


def option_path(config: pytest.Config, name: str) -> Path | None:
    """A folder option (`--memharness-report`, `--memharness-baseline`) resolved from where pytest was started."""
    value = config.getoption(name)
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def folder_name(nodeid: str) -> str:
    """A test's run folder name: `tests/test_x.py::test_y[a-1]` -> `tests_test_x.py__test_y_a-1_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", nodeid.replace("::", "__")).strip(".") or "test"


def _mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB"


@dataclass
class MarkSpec:
    """The marker's limits, named as `memharness compare --metric` names figures (`memharness/metrics.py`):
    `own={fn: size}` / `peak_over_start=` the rise over the call's entry, `peak=` the absolute peak RSS,
    `increment=`, `final=`, `gpu_own=`, `gpu_peak=`; `tree_peak=` the whole tree's absolute peak and
    `tree_peak_over_start=` its rise above the test's start."""

    targets: list[str]
    limits: dict[str, dict[str, int]] = field(default_factory=dict)  # metric -> function -> bytes
    tree: dict[str, int] = field(default_factory=dict)  # tree_peak / tree_peak_over_start -> bytes
    follow_children: bool = True
    sample_interval: Any = None

    @classmethod
    def parse(cls, marker: pytest.Mark) -> MarkSpec:
        """Raise ValueError naming the marker argument that is wrong."""
        from memharness.scenario.units import parse_memory

        if marker.args:
            raise ValueError("takes keyword arguments only (targets=[...], own={...}, ...)")
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

        spec = cls(targets, {k: v for k in FUNCTION_LIMITS if (v := limits(k))})
        for key in TREE_LIMITS:
            if kw.get(key) is not None:
                try:
                    spec.tree[key] = parse_memory(kw[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        spec.follow_children = bool(kw.get("follow_children", True))
        spec.sample_interval = kw.get("sample_interval")
        for fn in (fn for fns in spec.limits.values() for fn in fns):
            if fn not in spec.targets:
                spec.targets.append(fn)
        return spec


def check_limits(spec: MarkSpec, figures: dict[str, dict[str, float]], test: str,
                 root_peak: int | None = None) -> tuple[list[str], list[str]]:
    """(failures, warnings): one line per limit crossed, naming the test, the function, limit and value.

    `root_peak`: the test process's exact peak RSS over the test (its high-water mark); the tree's sampled
    peak is raised to it, so a spike of the test process between two samples still counts."""
    from memharness import metrics
    from memharness.results.figures import TREE

    failures: list[str] = []
    warnings: list[str] = []
    for key, fns in spec.limits.items():
        figure, what = metrics.get(key).function_figure, WHAT[key]
        for fn, limit in fns.items():
            fig = figures.get(fn)
            if not fig:
                failures.append(f"{test}: {fn} was never called, so {key}={{{fn!r}: {_mib(limit)}}} cannot be "
                                f"checked")
                continue
            if figure not in fig:
                warnings.append(f"{test}: {fn}: no {what} recorded (no CUDA device seen); {key} not checked")
                continue
            value = fig[figure]
            if value > limit:
                calls = int(fig.get("calls", 0))
                failures.append(f"{test}: {fn}: {what} {_mib(value)} exceeds the limit {key}={_mib(limit)} "
                                f"(peak RSS {_mib(fig.get('peak', 0))}, peak over entry "
                                f"{_mib(fig.get('peak_over_start', 0))}, {calls} call{'s' if calls != 1 else ''})")
    if spec.tree:
        tree = figures.get(TREE)
        if not tree:
            failures.append(f"{test}: tree limits need the timeline sampler, which did not run")
            return failures, warnings
        peak = max(tree["peak"], root_peak or 0)
        for key, limit in spec.tree.items():
            value = peak if key == "tree_peak" else peak - tree["start"]
            what = "peak" if key == "tree_peak" else "peak above its RSS at the test's start"
            if value > limit:
                failures.append(f"{test}: process tree: {what} {_mib(value)} exceeds the limit {key}={_mib(limit)} "
                                f"(absolute peak {_mib(peak)}, {_mib(tree['start'])} at the test's start, all "
                                "processes of the test summed)")
    return failures, warnings


def check_options(config: pytest.Config) -> None:
    """Refuse bad --memharness-* values at startup, with the option named."""
    from memharness.commands.compare import parse_threshold
    from memharness.metrics import NAMES as METRICS

    try:
        parse_threshold(config.getoption("--memharness-threshold"), "--memharness-threshold")
        parse_threshold(config.getoption("--memharness-floor-share"), "--memharness-floor-share")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
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
    from memharness.results.figures import TREE

    metric = config.getoption("--memharness-metric")
    rule = Rule(threshold=parse_threshold(config.getoption("--memharness-threshold")),
                min_bytes=config.getoption("--memharness-min-mib") * MiB,
                floor_share=parse_threshold(config.getoption("--memharness-floor-share")))
    try:
        result = compare(str(base), str(current), metric, rule)
    except CompareError as exc:
        return [f"{test}: cannot compare with the baseline {base}: {exc}"]
    lines = []
    for r in sorted(result.rows, key=lambda r: r.target == TREE):  # functions first: they say why
        if r.verdict == REGRESSED and r.decision is not None:
            d = r.decision
            ratio = f", x{d.ratio:.2f}" if d.ratio else ""
            lines.append(f"{test}: {r.target}: {metric} ({r.judged_on}) {_mib(d.old)} -> {_mib(d.new)} "
                         f"(+{_mib(d.delta)}{ratio}) regressed against the baseline {base} (threshold "
                         f"{rule.threshold:.0%}, floor {r.floor_source or _mib(rule.min_bytes)})")
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
                       label=folder_name(item.name), name=folder_name(test_key(item)))
        prof.start()
    except (ValueError, TargetError) as exc:
        problem = str(exc)
    if problem is not None:  # failed before the yield: the test does not run
        pytest.fail(f"{test}: @pytest.mark.memharness: {problem}", pytrace=False)
    try:
        result = yield
    except BaseException as exc:
        prof.stop(exc)
        _keep(config, prof, item)
        raise
    prof.stop()
    figures = prof.figures()
    root_peak = prof.block_peak()
    failures, warnings = check_limits(spec, figures, test, root_peak)
    saved = _keep(config, prof, item)
    baseline = option_path(config, "--memharness-baseline")
    if baseline is not None:
        base = baseline / folder_name(test_key(item))
        if not (base / MANIFEST).exists():
            missing = f"{test}: no baseline run folder {base}; not compared"
            (failures if config.getoption("--memharness-baseline-missing") == "fail" else warnings).append(missing)
        else:
            tmp = None
            if saved is None:
                tmp = Path(tempfile.mkdtemp(prefix="memharness-pytest-"))
                saved = _save(prof, tmp / folder_name(test_key(item)), fingerprint=False)  # only its rows are read
            try:
                failures += _compare(config, base, saved, test)
            finally:
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
    item.user_properties.append((PROPERTY, _summary(figures, root_peak) + (" -- FAILED" if failures else "")))
    for w in warnings:
        item.warn(pytest.PytestWarning(w))
    if failures:  # the first reason on the first line (what -q's short summary shows), without the test's id
        reasons = [f.removeprefix(f"{test}: ") for f in failures]
        pytest.fail(f"memharness: {reasons[0]}" + "".join(f"\n{r}" for r in reasons[1:]), pytrace=False)
    return result


def _keep(config: pytest.Config, prof, item: pytest.Item) -> Path | None:
    out = option_path(config, "--memharness-report")
    if out is None:
        return None
    return _save(prof, out / folder_name(test_key(item)))


