"""What a finished `memharness.profile` block gives back: its calls, the seed-format table, peaks, the
timeline (numpy) and its chart, and `save()` into a run folder. Every figure is read back from the block's run
folder through `memharness.results`, so a number printed here is the number `memharness report` prints for the
saved folder. The measuring itself is `api.Profile`, which inherits these methods."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from memharness import names
from memharness.core.atomic import write_json
from memharness.core.records import CallRecord, read_calls, read_timeline, tree_rss_series
from memharness.errors import MemharnessError

MiB = float(1 << 20)
_fingerprint_cache: dict[str, Any] | None = None


class ProfileError(MemharnessError, RuntimeError):
    """Misuse of `memharness.profile` (nested blocks, results asked before the block ended, ...)."""


def environment_fingerprint() -> dict[str, Any]:
    """`runner.fingerprint.collect()` taken in a separate interpreter (it imports torch to read its version;
    doing that here would add torch to the measured process). Taken once per process."""
    global _fingerprint_cache
    if _fingerprint_cache is None:
        from memharness.core.session import sampler_env

        code = "import json; from memharness.runner.fingerprint import collect; print(json.dumps(collect()))"
        try:
            out = subprocess.run([sys.executable, "-c", code], env=sampler_env(), capture_output=True, text=True,
                                 timeout=300, check=True).stdout
            _fingerprint_cache = json.loads(out.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
            _fingerprint_cache = {"error": f"fingerprint not taken: {type(exc).__name__}: {exc}"[:500]}
    return dict(_fingerprint_cache)


class ProfileTable(list):
    """The per-function figures of a profile: one dict per row (the process tree first, then the wrapped
    functions in the order they were first called). Memory in MiB (2^20 bytes), time in seconds."""

    COLUMNS = [("function", "Function"), ("start_mib", "Starting Memory"), ("increment_mib", "Memory Increment"),
               ("final_mib", "Final Memory"), ("peak_mib", "Peak Memory"), ("peak_over_start_mib", "Peak over Start"),
               ("gpu_peak_mib", "GPU Peak (allocated)"), ("duration_s", "Duration (s)"), ("calls", "Calls")]

    def to_markdown(self) -> str:
        keys = [(k, title) for k, title in self.COLUMNS if any(k in row for row in self)]
        lines = ["| " + " | ".join(title for _, title in keys) + " |",
                 "|" + "|".join("---" if k == "function" else "---:" for k, _ in keys) + "|"]
        for row in self:
            cells = []
            for k, _ in keys:
                v = row.get(k)
                if v is None:
                    cells.append("–")
                elif k == "function":
                    cells.append(str(v).replace("|", "\\|"))
                elif k == "calls":
                    cells.append(f"{int(v):,}")
                elif k == "duration_s":
                    cells.append(f"{v:.2f}")
                else:
                    cells.append(f"{v:.1f} MiB")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()


class ProfileResults:
    """The presenting half of `api.Profile`: what a finished block's run folder holds, read back."""

    run_dir: Path | None
    cell_dir: Path | None
    status: str | None
    label: str
    _t0: int

    def _need_done(self, what: str) -> None:
        if self.status in (None, "running"):
            when = "before the block started" if self.status is None else "while the block is running"
            raise ProfileError(f"memharness.profile: {what} is available after the block ends, not {when}")

    @property
    def calls(self) -> list[CallRecord]:
        """Every recorded call of a wrapped function (all processes), in start order."""
        if self.cell_dir is None:
            return []
        return [r for r in read_calls(self.cell_dir) if not r.target.startswith("phase:")]

    def figures(self) -> dict[str, dict[str, float]]:
        """target -> figures in bytes / seconds (start, increment, final, peak, peak_over_start, duration_s,
        calls, GPU figures when recorded), as `memharness report` computes them; `"(process tree)"` holds the
        sampled whole-tree figures."""
        self._need_done("figures()")
        from memharness.results.figures import cell_figures

        return cell_figures(self.cell_dir)

    def block_peak(self) -> int | None:
        """This process's exact peak RSS in bytes over the whole block (its kernel high-water mark, folded
        as for any wrapped call); the sampled tree peak can miss a spike shorter than the interval."""
        self._need_done("block_peak()")
        for rec in read_calls(self.cell_dir):
            if rec.target == f"phase:{self.label}" and rec.pid == os.getpid() and rec.peak_rss is not None:
                return rec.peak_rss
        return None

    def targets_order(self) -> list[str]:
        order: list[str] = []
        for rec in self.calls:
            if rec.target not in order:
                order.append(rec.target)
        return order

    def table(self) -> ProfileTable:
        """The seed-format figures as a list of row dicts (MiB, seconds), with `.to_markdown()`."""
        from memharness.results.figures import TREE

        figs = self.figures()
        names = ([TREE] if TREE in figs else []) + [t for t in self.targets_order() if t in figs]
        rows = ProfileTable()
        for name in names:
            f = figs[name]
            row: dict[str, Any] = {"function": name}
            for metric in ("start", "increment", "final", "peak", "peak_over_start", "gpu_peak"):
                if metric in f:
                    row[f"{metric}_mib"] = f[metric] / MiB
            row["duration_s"] = f.get("duration_s")
            if name != TREE:
                row["calls"] = int(f.get("calls", 0))
            rows.append(row)
        return rows

    def _match(self, target: str, figs: dict[str, dict[str, float]]) -> str:
        if target in figs:
            return target
        short = target.lstrip(".")
        hits = [t for t in figs if t.endswith("." + short) or t == short]
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(sorted(figs)) or "none"
        if hits:
            raise KeyError(f"{target!r} matches several recorded functions: {', '.join(hits)}")
        raise KeyError(f"{target!r} was not recorded (never called, or not a target); recorded: {known}")

    def peak(self, target: str | None = None, *, over_start: bool = False) -> int:
        """Peak RSS in bytes of a wrapped function (highest over its calls; a unique suffix such as
        "CollectionIndexer.train" is enough), or of the whole process tree when no target is given.
        `over_start=True`: the rise above the RSS at the call's entry instead."""
        from memharness.results.figures import TREE

        figs = self.figures()
        name = TREE if target is None else self._match(target, figs)
        if name not in figs:
            raise KeyError("no process-tree figures: the profile ran without a sampler (sample_interval=None)")
        return int(figs[name]["peak_over_start" if over_start else "peak"])

    def timeline(self):
        """The sampled whole-tree RSS as a numpy structured array with fields `t_s` (seconds from the
        block's start) and `rss` (bytes)."""
        import numpy as np

        self._need_done("timeline()")
        t, v = tree_rss_series(read_timeline(self.cell_dir))
        out = np.zeros(len(t), dtype=[("t_s", "f8"), ("rss", "i8")])
        out["t_s"] = (t - self._t0) / 1e9
        out["rss"] = v
        return out

    def plot(self, path: str | Path | None = None):
        """The timeline chart of `memharness report` (RSS lines, peak marked, calls as spans) as a
        matplotlib Figure; also written as a PNG when `path` is given."""
        self._need_done("plot()")
        from memharness.report import png
        from memharness.report.charts.timeline import DPI, target_colors, timeline_figure
        from memharness.report.series import cell_series, target_order
        from memharness.results.run import Run

        run = Run.open(self.run_dir)
        cell = run.cells[0]
        fig, _ = timeline_figure(cell, cell_series(cell), target_colors(target_order(run)))
        if path is not None:
            png.save(fig, Path(path), DPI)
        return fig

    def save(self, run_dir: str | Path, report: bool = False, fingerprint: bool = True) -> Path:
        """Copy the recorded run folder to `run_dir` (which must not exist or be empty), with the
        environment fingerprint (taken once per process, in a separate interpreter: seconds where torch is
        installed; `fingerprint=False` leaves it out); `memharness report RUN_DIR` renders the folder,
        `report=True` renders it now."""
        self._need_done("save()")
        dest = Path(run_dir)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise FileExistsError(f"{dest} exists and is not an empty folder; save() never overwrites a run")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        shutil.copytree(self.run_dir, dest, ignore=shutil.ignore_patterns(names.BOOT))
        from memharness.results.writer import Manifest

        manifest = Manifest.load(dest)
        manifest.data["run_id"] = dest.name
        manifest.save()
        for cell in manifest.data["cells"] if fingerprint else []:
            write_json(dest / cell["dir"] / names.FINGERPRINT, environment_fingerprint())
        if report:
            from memharness.report import build

            build(dest)
        return dest
