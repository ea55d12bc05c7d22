"""explain.md: the explained call's sites as Markdown tables (at its peak; with --retained, at its exit; with
--at-entry, alive when it starts), each with the agreement line against the harness's own figure."""

from __future__ import annotations

from typing import Any

from memharness.explain.frames import SKIP_PACKAGES, USER, short_frame, short_path

MiB = 1 << 20
STACK_SHOWN = 5  # frames from the site outwards shown in a table row


def mib(n: float | None) -> str:
    return "?" if n is None else f"{n / MiB:,.1f} MiB"


def stack_text(stack: list[str], site: int) -> str:
    """The stack from the site frame outwards, after the innermost frame when library frames were skipped;
    every element `function file:line`."""
    parts = []
    if site > 0:
        parts.append(f"`{short_frame(stack[0])}`" + (f" ← ({site - 1} more)" if site > 1 else ""))
    parts += [f"`{short_frame(f)}`" for f in stack[site:site + STACK_SHOWN]]
    rest = len(stack) - site - STACK_SHOWN
    return " ← ".join(parts) + (f" ← … ({rest} more)" if rest > 0 else "")


def site_rows(sites: list[dict[str, Any]], what: str = "bytes at peak") -> list[str]:
    rows = [f"| # | site (file:line) | function | {what} | allocations | stack (innermost first) |",
            "|---|---|---|---:|---:|---|"]
    for i, s in enumerate(sites, 1):
        rows.append(f"| {i} | `{short_path(s['file'])}:{s['line']}` | `{s['function']}` | {mib(s['bytes'])} "
                    f"| {s['count']} | {stack_text(s['stack'], s.get('site_frame', 0))} |")
    return rows


def agreement_line(kind: str, total: int, agreement: dict[str, Any], reference: int | None, ref_name: str,
                   what: str = "at peak") -> str:
    if agreement["status"] == "unknown":
        return f"{kind}: explainer total {what} {mib(total)}; no {ref_name} to compare with."
    verdict = ("agrees with" if agreement["status"] == "agree" else "DISAGREES with")
    floor = agreement.get("floor") or 0
    if agreement.get("ratio") is not None and (reference or 0) >= floor:
        how = f"ratio {agreement['ratio']:.2f}"
    else:  # a reference near zero: the difference says more than a ratio
        how = f"difference {mib(total - (reference or 0))}"
    tolerance = f"±10% or {mib(floor)}" if floor else "±10%"
    return (f"{kind}: explainer total {what} {mib(total)} {verdict} the {ref_name} {mib(reference)} "
            f"({how}, tolerance {tolerance}).")


def in_all(n: int) -> str:
    return f"{n} site in all." if n == 1 else f"{n} sites in all."


def changed_lines(result: dict[str, Any]) -> list[str]:
    """One line per wrapped function whose source changed since the measured run (`harness.changed_sources`)."""
    return [f"**The source of `{c['target']}` changed since the run** (hash {c['run']} then, {c['now']} now): the "
            "measured and the explained figures come from different code, so they need not agree." for c in
            result.get("changed_sources") or []] + ([""] if result.get("changed_sources") else [])


def _header(result: dict[str, Any], head: dict[str, Any]) -> list[str]:
    src = ("a second run of this cell with the explainer on" if result["second_run"]
           else "this run, with the explainer on for this cell")
    lines = [f"# Explain: `{result['target']}`", ""] + changed_lines(result) + [
             f"Figures below come from {src}; the call's peak in the report stays the harness's exact "
             "figure. Explained invocations: " + ", ".join(f"{c['name']} (pid {c['pid']})" for c in result["calls"])
             + f"; shown: {head['name']}."]
    if result.get("frames", USER) == USER:
        lines.append(f"Site: the innermost frame outside {', '.join(SKIP_PACKAGES)} and the standard library "
                     "(`--frames all`: the innermost frame of any file).")
    else:
        lines.append("Site: the innermost frame of any file (`--frames all`).")
    ov = result.get("overhead", {})
    if ov.get("time_factor"):
        lines.append(f"Overhead: the call took {ov['explained_call_s']:.2f} s under the explainer vs "
                     f"{ov['measured_call_s']:.2f} s in the measured run (ratio {ov['time_factor']:.2f}; it also "
                     "carries run-to-run variation: machine load, iterations to convergence).")
    if result.get("harness_source") == "explained run":
        lines.append("The measured run did not wrap this call: the harness's figures below are the explained run's.")
    if ov.get("peak_over_start_explained_run") is not None and result.get("harness"):
        measured, explained = result["harness"]["peak_over_start"], ov["peak_over_start_explained_run"]
        change = f" ({(explained / measured - 1) * 100:+.1f}%)" if measured else ""
        lines.append(f"Harness peak over start of the call: {mib(measured)} in the measured run, "
                     f"{mib(explained)} in the explained run{change}.")
    return lines + [""]


def _reference(result: dict[str, Any]) -> dict[str, Any]:
    """The harness's figures the totals are checked against: the measured run's, else the explained run's."""
    return result.get("harness") or result.get("harness_explained_run") or {}


def _host(result: dict[str, Any], h: dict[str, Any]) -> list[str]:
    ref = _reference(result)
    lines = ["## Host (memray, high-water mark of the call)", "",
             agreement_line("Host", h["total_at_peak"], result["host_agreement"], ref.get("peak_over_start"),
                            "harness's exact peak over start"), ""]
    lines += site_rows(h["sites"])
    lines += ["", in_all(h["n_sites"]) + " Flame graph: "
              + (f"[{result['host_flamegraph']}]({result['host_flamegraph']})" if result.get("host_flamegraph")
                 else f"not written ({result.get('host_flamegraph_error', '?')})"), ""]
    if "retained" in h:
        r, rag = h["retained"], result["host_retained_agreement"]
        lines += ["## Host: retained at the call's exit (allocated during the call, alive when it returned)", "",
                  agreement_line("Host retained", r["total"], rag, rag.get("reference"),
                                 rag.get("reference_name", "?"), "at exit")]
        measured = result.get("harness") or {}
        if measured.get("increment") is not None:
            lines.append(f"The call's increment (rss_end - rss_start) in the measured run: "
                         f"{mib(measured['increment'])}.")
        lines.append("")
        lines += site_rows(r["sites"], "bytes at exit") + ["", in_all(r["n_sites"]), ""]
    return lines


def _gpu(result: dict[str, Any], g: dict[str, Any]) -> list[str]:
    ag = result["gpu_agreement"]
    lines = ["## GPU (torch allocator history, high-water mark of the call)", "",
             agreement_line("GPU", g["total_at_peak"], ag, ag.get("reference"), ag.get("reference_name", "?")), ""]
    lines += site_rows(g["sites"])
    lines += ["", f"Snapshot for https://pytorch.org/memory_viz: [{result['gpu_snapshot']}]"
              f"({result['gpu_snapshot']})", ""]
    if "retained" in g:
        r, rag = g["retained"], result["gpu_retained_agreement"]
        lines += ["## GPU: retained at the call's exit (allocated during the call, alive when it returned)", "",
                  agreement_line("GPU retained", r["total"], rag, rag.get("reference"),
                                 "harness's torch allocated at exit over entry", "at exit"), ""]
        lines += site_rows(r["sites"], "bytes at exit") + ["", in_all(r["n_sites"]), ""]
    return lines


def _at_entry(result: dict[str, Any], ae: dict[str, Any]) -> list[str]:
    lines = ["## Alive at the call's entry (memray from the process's start to the call's first entry)", ""]
    if "total" not in ae:
        return lines + [f"Not recorded: {'; '.join(ae.get('errors') or []) or ae.get('error', '?')}.", ""]
    start = ae.get("start", {})
    if "at_entry_agreement" in result:
        lines.append(agreement_line("At entry", ae["total"], result["at_entry_agreement"],
                                    result["at_entry_agreement"]["reference"],
                                    "rise of anonymous RSS over the same window", "alive at entry"))
    lines.append(f"Not seen: what the process held when tracking began ({mib(start.get('rss'))} resident, "
                 f"{mib(start.get('anon'))} anonymous: the interpreter and memharness's start-up), memory the "
                 "pipeline allocated and freed before the call, and non-heap memory (mapped files, CUDA).")
    gpu = _reference(result).get("gpu") or {}
    if gpu.get("allocated_at_entry") is not None:
        lines.append(f"GPU at entry: torch allocated {mib(gpu['allocated_at_entry'])} (harness, "
                     f"{result.get('harness_source', 'measured run')}); "
                     "GPU sites at entry are not recorded.")
    lines += [""] + site_rows(ae["sites"], "bytes at entry") + ["", in_all(ae["n_sites"]), ""]
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    if result.get("error"):
        return "\n".join([f"# Explain: `{result['target']}`", "", *changed_lines(result),
                          f"Not explained: {result['error']}.", ""])
    head = next(c for c in result["calls"] if c["name"] == result["headline"])
    lines = _header(result, head)
    if "host" in head:
        lines += _host(result, head["host"])
    if "gpu" in head:
        lines += _gpu(result, head["gpu"])
    entry = next((c for c in result["calls"] if c["name"] == result.get("at_entry_call")), None)
    if entry is not None:
        lines += _at_entry(result, entry["at_entry"])
    errors = [e for c in result["calls"] for e in c["errors"]]
    if errors:
        lines += ["Explainer errors: " + "; ".join(errors), ""]
    return "\n".join(lines)
