"""Render run folders with an older revision's code and with this checkout's, and diff what users read.

    python scripts/rerender_check.py --old 28c1b88 RUN_DIR [RUN_DIR ...] [--compare BASE CURRENT]...

For each run folder: `memharness report RUN --output ...` with both codes, then `tables.md`, `summary.json`,
every `tables/*` file and `index.html` (charts inlined) are compared byte for byte; for each `--compare` pair,
`memharness compare` as Markdown and JSON. Lines that carry a path of the scratch folders are normalised (the
two reports are written to different folders). Prints one line per file and exits 1 on any difference: a
refactor that changes no behaviour prints only "same".
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> Path:
    """The `memharness` package of revision `rev` under `into` (git archive, no checkout touched)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "memharness"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def memharness(code: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(code), PYTHONHASHSEED="0", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "memharness", *args], env=env, capture_output=True, text=True)


def normalised(text: str, scratch: Path) -> list[str]:
    return text.replace(str(scratch), "<scratch>").splitlines(keepends=True)


def diff(name: str, old: str, new: str, scratch: Path) -> bool:
    a, b = normalised(old, scratch), normalised(new, scratch)
    if a == b:
        print(f"same: {name}")
        return True
    print(f"DIFFERS: {name}")
    sys.stdout.writelines(list(difflib.unified_diff(a, b, "old", "new", n=1))[:40])
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the revision to compare with (e.g. the commit before a refactor)")
    ap.add_argument("runs", nargs="*", type=Path, help="run folders to render with both codes")
    ap.add_argument("--compare", nargs=2, action="append", default=[], metavar=("BASE", "CURRENT"),
                    help="a pair of run specs (RUN or RUN:variant) to compare with both codes")
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="rerender-") as tmp:
        scratch = Path(tmp)
        codes = {"old": export(args.old, scratch / "old-code"), "new": ROOT}
        for i, run in enumerate(args.runs):
            outs = {}
            for which, code in codes.items():
                out = scratch / which / f"{i}-{run.name}"
                proc = memharness(code, "report", str(run), "--output", str(out))
                if proc.returncode != 0:
                    print(f"{which} report of {run} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
                    return 2
                outs[which] = out
            files = sorted({p.relative_to(outs["old"]) for p in outs["old"].rglob("*")
                            if p.is_file() and p.suffix in (".md", ".json", ".csv", ".html")})
            files_new = sorted({p.relative_to(outs["new"]) for p in outs["new"].rglob("*")
                                if p.is_file() and p.suffix in (".md", ".json", ".csv", ".html")})
            if files != files_new:
                print(f"DIFFERS: {run}: files {sorted(set(files) ^ set(files_new))}")
                ok = False
            for rel in files:
                if (outs["new"] / rel).is_file():
                    ok &= diff(f"{run} {rel}", (outs["old"] / rel).read_text(encoding="utf-8"),
                               (outs["new"] / rel).read_text(encoding="utf-8"), scratch)
        for base, current in args.compare:
            for fmt in ("md", "json"):
                res = {w: memharness(code, "compare", base, current, "--format", fmt) for w, code in codes.items()}
                name = f"compare {base} {current} --format {fmt}"
                if res["old"].returncode != res["new"].returncode:
                    print(f"DIFFERS: {name}: exit {res['old'].returncode} vs {res['new'].returncode}")
                    ok = False
                ok &= diff(name, res["old"].stdout + res["old"].stderr, res["new"].stdout + res["new"].stderr, scratch)
    print("no difference" if ok else "differences found")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
