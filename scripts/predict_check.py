"""Check the size prediction on a finished run's summary.json: fit each pipeline's run-phase tree peak
(and GPU peak) on every measured size but the largest, predict the largest, print the error.

    python scripts/predict_check.py [results/samples/genomics-gpu-h200/summary.json] [--budget 24GiB]

Works from summary.json alone (the committed GPU sample has no cell folders).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memharness.report import predict
from memharness.report.fmt import size_label
from memharness.scenario import parse_memory

DEFAULT = Path(__file__).resolve().parents[1] / "results/samples/genomics-gpu-h200/summary.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--budget", default=None, help="also print the largest size that fits this RAM budget")
    ap.add_argument("--gpu-budget", default=None)
    args = ap.parse_args()
    rows = json.loads(args.summary.read_text(encoding="utf-8"))["rows"]
    pipelines = list(dict.fromkeys(r["pipeline"] for r in rows))
    print(f"{args.summary}")
    for p in pipelines:
        for metric in ("peak", "gpu_nvml_peak"):
            sizes = sorted(predict.measured(rows, p, metric))
            if len(sizes) < 3:
                continue
            largest = sizes[-1]
            fit = predict.fit_rows(rows, p, metric, max_size=sizes[-2])
            measured = predict.measured(rows, p, metric)[largest]
            got = fit.predict(largest)
            loo = ", ".join(f"{m} {v * 100:.1f}%" for m, v in fit.loo.items() if v is not None)
            print(f"{p} {metric}: fit on {', '.join(size_label(s) for s in fit.sizes)} -> {fit.model} "
                  f"({fit.formula()}; leave-one-out error {loo})")
            err = "" if fit.error is None else f", error bar ±{fit.error * 100:.1f}%"
            print(f"  predicted {size_label(largest)}: {got:.1f} MiB{err}; measured {measured:.1f} MiB; "
                  f"error {(got - measured) / measured * 100:+.1f}%")
    if args.budget or args.gpu_budget:
        b = parse_memory(args.budget) if args.budget else None
        g = parse_memory(args.gpu_budget) if args.gpu_budget else None
        print("\n".join(predict.budget_lines(rows, pipelines, b, g)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
