"""The bisect's table and conclusion, as Markdown (printed, and kept in `<bisect>/bisect.md`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from memharness.bisect.search import BAD, GOOD, Outcome

MiB = float(1 << 20)
TREE = "(process tree)"


def _mib(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value / MiB:+.1f}" if signed else f"{value / MiB:.1f}"


def _path(p: str | None) -> str:
    if not p:
        return "—"
    rel = os.path.relpath(p)
    return rel if len(rel) < len(p) else p


def name_of(candidate: dict[str, Any]) -> str:
    if candidate.get("title"):
        title = candidate["title"]
        return f"{candidate['label']} {title[:40] + ('…' if len(title) > 40 else '')}"
    return candidate["label"]


def _verdict(step: dict[str, Any], index: int) -> str:
    if index == 0 and step["verdict"] == GOOD:
        return "good (reference)"
    if step.get("reason"):
        return f"{step['verdict']} ({step['reason']})"
    return step["verdict"]


def _row_name(row: dict[str, Any]) -> str:
    target = row.get("target")
    if not target:
        return "—"
    short = target if target == TREE else target.rsplit(".", 1)[-1]
    on = row.get("judged_on")
    return f"{short} {on}" if on and on not in ("status",) else short


def table(data: dict[str, Any]) -> str:
    """One line per measured candidate, oldest first."""
    candidates = data["candidates"]
    good_label = candidates[0]["label"]
    head = ["step", "version" if data["mode"] == "release" else "commit", "verdict", "tree peak MiB",
            "judged row", "MiB", f"Δ vs {good_label} MiB", "env", "run folder"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {s["index"]: n for n, s in enumerate(data["steps"], 1)}
    for step in sorted(data["steps"], key=lambda s: s["index"]):
        i = step["index"]
        row = step.get("row") or {}
        env = step.get("env") or {}
        state = "failed" if env.get("error") else "reused" if env.get("reused") else "built"
        how = "—" if not env else f"{state} {env.get('seconds', 0):.1f} s"
        cells = [str(order[i]), name_of(candidates[i]), _verdict(step, i), _mib(step.get("tree_peak")),
                 _row_name(row), _mib(row.get("value")), _mib(row.get("delta"), signed=True), how,
                 _path(step.get("run_dir"))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def conclusion(data: dict[str, Any], out: Outcome) -> str:
    c = data["candidates"]
    what = "version" if data["mode"] == "release" else "commit"
    pkg = data["package"]
    if out.kind == "found":
        assert out.first_bad is not None and out.last_good is not None
        return (f"first bad {what}: {pkg} {name_of(c[out.first_bad])} "
                f"(last good: {name_of(c[out.last_good])})")
    if out.kind == "no_regression":
        return (f"no regression: {pkg} {name_of(c[-1])} (the bad end) was judged good against "
                f"{name_of(c[0])}; no first bad {what}")
    if out.kind == "ambiguous":
        names = ", ".join(name_of(c[i]) for i in out.candidates)
        last = f" after the last good {name_of(c[out.last_good])}" if out.last_good is not None else ""
        return f"first bad {what} is one of: {names} (the others could not be measured){last}"
    return f"no conclusion: the good end {name_of(c[0])} could not be measured"


def summary(data: dict[str, Any]) -> str:
    runs = sum(1 for s in data["steps"] if s.get("ran_cell"))
    envs = [s.get("env") or {} for s in data["steps"]]
    built = [e for e in envs if e and not e.get("reused") and not e.get("error")]
    reused = [e for e in envs if e and e.get("reused")]
    parts = [f"{runs} cell run{'s' if runs != 1 else ''} over {len(data['candidates'])} candidates"]
    if built:
        parts.append(f"{len(built)} environment{'s' if len(built) != 1 else ''} built "
                     f"({sum(e.get('seconds', 0) for e in built):.1f} s)")
    if reused:
        parts.append(f"{len(reused)} reused ({sum(e.get('seconds', 0) for e in reused):.2f} s)")
    return "; ".join(parts)


def markdown(data: dict[str, Any], out: Outcome) -> str:
    cell = data["cell"]
    head = (f"bisect of {data['package']} {data['candidates'][0]['label']}..{data['candidates'][-1]['label']} "
            f"on {cell['pipeline']}@{cell['size']} of {Path(data['scenario']).name} "
            f"(metric {data['metric']}, threshold {data['rule']['threshold']:.0%}, "
            f"floor {data['rule']['min_bytes'] / MiB:.0f} MiB, {data['repeats']} repeat(s))")
    return "\n".join([head, "", table(data), "", conclusion(data, out), summary(data)])


def step_line(data: dict[str, Any], step: dict[str, Any]) -> str:
    row = step.get("row") or {}
    v = _verdict(step, step["index"])
    if step["verdict"] in (GOOD, BAD) and row:
        change = f"({_mib(row.get('delta'), signed=True)} MiB vs {data['candidates'][0]['label']})"
        tree = f"{v}: tree peak {_mib(step.get('tree_peak'))} MiB"
        if row.get("target") == TREE:
            return f"{tree} {change}"
        return f"{tree}; {_row_name(row)} {_mib(row.get('value'))} MiB {change}"
    return v
