"""`memharness bisect SCENARIO --cell PIPELINE@SIZE --package NAME --good V1 --bad V2`: the release (or, with
`--git`, the commit) that changed a cell's memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memharness.commands.compare import METRIC_HELP, MIN_MIB_HELP, THRESHOLD_HELP, parse_threshold
from memharness.errors import MemharnessError

ERROR_PREFIX = "memharness bisect"


def bisect(
    scenario: Annotated[Path | None, typer.Argument(metavar="SCENARIO.yaml", help="Scenario file.")] = None,
    cell: Annotated[str | None, typer.Option("--cell", metavar="PIPELINE@SIZE",
                                             help="The cell to measure, e.g. colbert@200.")] = None,
    package: Annotated[str | None, typer.Option("--package", help="The distribution bisected over its "
                                                "releases (with --git: default the checkout's name).")] = None,
    good: Annotated[str | None, typer.Option("--good", help="Known-good version (or commit with --git).")] = None,
    bad: Annotated[str | None, typer.Option("--bad", help="Known-bad version (or commit with --git).")] = None,
    git: Annotated[Path | None, typer.Option("--git", metavar="PATH", help="Bisect the commits of this local "
                                             "checkout, installed editable.")] = None,
    repeats: Annotated[int | None, typer.Option("--repeats", min=1, help="Repeats per step (default: the "
                                                "scenario's).")] = None,
    metric: Annotated[str, typer.Option("--metric", help=METRIC_HELP)] = "own",
    threshold: Annotated[str, typer.Option("--threshold", help=THRESHOLD_HELP)] = "10%",
    min_mib: Annotated[float, typer.Option("--min-mib", help=MIN_MIB_HELP)] = 64.0,
    alpha: Annotated[float, typer.Option("--alpha", help="significance level of the Mann-Whitney U test")] = 0.05,
    pre: Annotated[bool, typer.Option("--pre", help="Include pre-releases.")] = False,
    index_url: Annotated[str | None, typer.Option("--index-url", help="Package index (default: UV_INDEX_URL, "
                                                  "PIP_INDEX_URL, else PyPI).")] = None,
    extra_index_url: Annotated[list[str] | None, typer.Option("--extra-index-url", help="Another index.")] = None,
    find_links: Annotated[list[str] | None, typer.Option("--find-links", help="A folder of wheels/sdists.")] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Only --find-links folders.")] = False,
    unpin: Annotated[list[str] | None, typer.Option("--unpin", metavar="NAME", help="Let this dependency move "
                                                    "with the bisected package (default: every other package "
                                                    "stays at the base's version).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help="The bisect folder "
                                                "(default: <scenario output>/bisect/<name>-<package>-<time>).")]
    = None,
    env_cache: Annotated[Path | None, typer.Option("--env-cache", metavar="DIR", help="Where the per-version "
                                                   "environments are kept (default: "
                                                   "$MEMHARNESS_CACHE/bisect-envs).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", metavar="BISECT_DIR",
                                                help="Continue an interrupted bisect.")] = None,
) -> None:
    """Find the release of a package (or the commit of a local checkout) that changed one cell's memory.

    Lists the releases from --good to --bad on the index, builds one virtualenv per version on demand (uv;
    every other package pinned to the base environment's version; kept in a cache), runs the cell in each
    through `memharness run` and judges it against the good end with compare's rule, bisecting. Prints each
    step's version, peak and verdict and the first bad version; each version keeps its run folder.

    Exit codes: 0 a first bad version named; 1 none (the bad end was judged good, or only versions that could
    not be measured are left); 2 bad input (unknown version, good newer than bad, unknown pipeline or size);
    130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (--resume continues). See docs/bisect.md.
    """
    from memharness.bisect.driver import Request, run
    from memharness.bisect.versions import Index

    def say(message: str) -> None:
        typer.echo(message)

    if resume is not None:
        raise typer.Exit(run(None, resume, say))
    missing = [name for name, value in (("SCENARIO", scenario), ("--cell", cell), ("--good", good), ("--bad", bad))
               if value is None]
    if missing:
        raise MemharnessError(f"missing {', '.join(missing)} (or --resume BISECT_DIR)")
    if git is None and package is None:
        raise MemharnessError("give --package NAME (a release bisect) or --git PATH (a commit bisect)")
    if min_mib < 0:
        raise MemharnessError("--min-mib must not be negative")
    if not 0 < alpha < 1:
        raise MemharnessError("--alpha must lie between 0 and 1")
    try:
        rule_threshold = parse_threshold(threshold)
    except ValueError as exc:
        raise MemharnessError(str(exc)) from None
    assert scenario is not None and cell is not None and good is not None and bad is not None
    req = Request(scenario=scenario, cell=cell, good=good, bad=bad, package=package, git=git, repeats=repeats,
                  metric=metric, threshold=rule_threshold, min_mib=min_mib, alpha=alpha, pre=pre,
                  index=Index(index_url, tuple(extra_index_url or ()), tuple(find_links or ()), no_index),
                  unpin=tuple(unpin or ()), output=output, env_cache=env_cache)
    from memharness.scenario import ScenarioError

    try:
        code = run(req, None, say)
    except ScenarioError as exc:
        raise MemharnessError(str(exc).replace("\n", "; ")) from None
    raise typer.Exit(code)
