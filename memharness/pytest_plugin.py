"""The `memharness` pytest plugin (entry point `pytest11`): memory limits and regression checks per test.

    @pytest.mark.memharness(targets=["pkg.mod.build"], own={"pkg.mod.build": "1.5GiB"},
                            tree_peak_over_start="4GiB")
    def test_build(): ...

A marked test's call runs inside `memharness.profile` (see api.py): the targets are wrapped, every call
recorded with its exact peak, spawned workers followed, the process tree sampled from outside. The limits
are named as `memharness compare --metric` names figures (memharness/metrics.py), with the same meaning:

- `own={fn: size}` (or `peak_over_start=`): the highest rise of the process RSS above its value at `fn`'s
  entry, over its calls (the report's "Peak over Start"; calls in child processes count too): what `fn`
  itself needs, whatever ran before it in the same worker;
- `peak={fn: size}`: the highest RSS during `fn` (the report's "Peak Memory", absolute);
- `increment={fn: size}`: RSS at exit minus RSS at entry, summed over `fn`'s calls; `final=`: RSS at the last exit;
- `gpu_own={fn: size}` / `gpu_peak={fn: size}`: torch's allocated GPU memory, peak over entry / peak (a
  warning where no GPU was seen);
- `tree_peak=size`: the whole process tree's peak (the test process and every child, absolute);
  `tree_peak_over_start=size`: its rise above its RSS when the test started. Both are raised to the test
  process's exact peak where that is higher than the sampled tree.

`--memharness-report DIR` saves a run folder per marked test (`memharness report DIR/<test>` renders it);
`--memharness-baseline DIR` compares each marked test with `DIR/<test>` by the rule of `memharness compare`
(both folders from where pytest was started; `<test>` is the test file relative to it and the test's name, so
the folder does not move with pytest's rootdir). `--memharness-baseline-missing=fail` fails a marked test that
has no baseline folder (for CI).
Unmarked tests are not touched: no session, no sampler, no files, no import beyond this module (the work
for marked tests lives in memharness/pytest_limits.py).
"""

from __future__ import annotations

import pytest

from memharness import metrics

MARKER_HELP = ("memharness(targets=[...], own={fn: '1.5GiB'}, peak={fn: size}, increment={fn: size}, "
               "tree_peak_over_start='4GiB', gpu_peak={fn: size}): profile the test with memharness and fail it "
               "over a limit (the names of memharness compare --metric)")
PROPERTY = "memharness"  # the user property holding a marked test's summary line


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memharness", "memory limits and regressions per test (memharness)")
    group.addoption("--memharness-report", metavar="DIR", default=None,
                    help="save a memharness run folder per marked test under DIR (memharness report DIR/<test>)")
    group.addoption("--memharness-baseline", metavar="DIR", default=None,
                    help="compare every marked test with the run folder of an earlier --memharness-report DIR "
                         "and fail on a regression (the rule of memharness compare)")
    pct = metrics.THRESHOLD_TEXT.replace("%", "%%")
    group.addoption("--memharness-threshold", metavar="PCT", default=metrics.THRESHOLD_TEXT,
                    help=f"relative change that can count as a regression: 10%% or 0.1 (default {pct})")
    group.addoption("--memharness-min-mib", metavar="MIB", type=float, default=metrics.FLOOR_MIB,
                    help=f"absolute floor in MiB a regression must also exceed (default {metrics.FLOOR_MIB:g})")
    share = metrics.FLOOR_SHARE_TEXT.replace("%", "%%")
    group.addoption("--memharness-floor-share", metavar="PCT", default=metrics.FLOOR_SHARE_TEXT,
                    help=f"the floor as a share of the test's process-tree peak, when larger (default {share})")
    group.addoption("--memharness-baseline-missing", choices=("warn", "fail"), default="warn",
                    help="a marked test without a run folder in --memharness-baseline: warn (default) or fail "
                         "(for CI: a renamed test or a moved baseline cannot pass unchecked)")
    group.addoption("--memharness-metric", default=metrics.CLI_DEFAULT,
                    help=f"figure compared with the baseline, as memharness compare --metric: {metrics.cli_help()}")
    group.addoption("--memharness-interval", metavar="DURATION", default="50ms",
                    help="timeline sampling interval of marked tests (default 50ms)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.getoption("--memharness-baseline") is not None:
        from memharness.pytest_limits import check_options

        check_options(config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    marker = item.get_closest_marker("memharness")
    if marker is None:  # unmarked: nothing is started, nothing imported
        return (yield)
    from memharness.pytest_limits import measure

    return (yield from measure(item, marker))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001, ARG001
    lines = []
    for reports in terminalreporter.stats.values():
        for rep in reports:
            if getattr(rep, "when", None) != "call":
                continue
            for key, value in getattr(rep, "user_properties", ()):
                if key == PROPERTY:
                    lines.append(f"{rep.nodeid}: {value}")
    if not lines:
        return
    terminalreporter.section("memharness")
    for line in sorted(lines):
        terminalreporter.write_line(line)
    out = config.getoption("--memharness-report")
    if out:
        terminalreporter.write_line(f"run folders: {out}/<test> (memharness report {out}/<test>)")
