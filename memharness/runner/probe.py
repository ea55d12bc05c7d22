"""Preflight inside a pipeline's interpreter: do the kind, the targets and the callable resolve there?

Run as `python -m memharness.runner.probe REQUEST.json`; prints one JSON object on stdout:
`{"ok", "kind_error", "default_targets", "resolved", "missing_defaults", "errors": [{"path", "message"}],
"cuda_available", "fingerprint"}`. Importing the libraries here (not in the supervisor) is the point:
only this interpreter knows what its installed versions contain.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from memharness.core.targets import TargetError, resolve


def _resolve_callable(spec: str) -> None:
    import importlib

    module_name, _, func = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        raise TargetError(spec, f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    from memharness.pipelines.callable import function_problem

    problem = function_problem(module, module_name, func)
    if problem is not None:
        raise TargetError(spec, problem)


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Check one pipeline; `packages` lists the distributions its fingerprint should name."""
    from memharness.pipelines import registry

    for path in request.get("sys_path", []):
        if path not in sys.path:
            sys.path.insert(0, path)
    out: dict[str, Any] = {"ok": True, "kind_error": None, "default_targets": [], "resolved": [],
                           "missing_defaults": [], "errors": [], "cuda_available": False}
    packages: list[str] = []
    try:
        pipeline = registry.get(request["kind"])
        out["default_targets"] = list(pipeline.default_targets) if request.get("use_defaults", True) else []
        packages = list(pipeline.packages)
        for problem in pipeline.validate_options(request.get("options", {})):
            out["errors"].append({"path": "options", "message": problem})
    except Exception as exc:  # noqa: BLE001 - e.g. the pipeline library is not installed here
        out["kind_error"] = f"{type(exc).__name__}: {exc}"
    if request["kind"] == "callable" and request.get("options", {}).get("function"):
        try:
            _resolve_callable(request["options"]["function"])
        except TargetError as exc:
            out["errors"].append({"path": exc.path, "message": str(exc)})
    for path in out["default_targets"]:
        try:
            resolve(path)
            out["resolved"].append(path)
        except TargetError as exc:
            out["missing_defaults"].append({"path": path, "reason": exc.reason, "default": True})
    for path in list(request.get("targets", [])) + list(request.get("line_profile", [])):
        try:
            resolve(path)
            out["resolved"].append(path)
        except TargetError as exc:
            out["errors"].append({"path": path, "message": str(exc)})
    out["packages"] = packages
    out["ok"] = out["kind_error"] is None and not out["errors"]
    return out


def probe_all(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check several pipelines of one interpreter in one process; one fingerprint serves them all."""
    from memharness.runner import fingerprint

    results = [probe(r) for r in requests]
    packages = [p for r in results for p in r.pop("packages")]
    paths = [p for req, r in zip(requests, results, strict=True)
             for p in [*r["default_targets"], *req.get("targets", []), *req.get("line_profile", []),
                       *[str(v) for k, v in req.get("options", {}).items()
                         if req.get("kind") == "callable" and k in ("function", "prepare") and v]]]
    fp = fingerprint.collect(packages, fingerprint.top_level_modules(paths))
    cuda = bool((fp.get("torch") or {}).get("cuda_available"))
    for r in results:
        r["fingerprint"] = fp
        r["cuda_available"] = cuda
    return results


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as fh:
        requests = json.load(fh)
    result = probe_all(requests)
    sys.stdout.write("\n@@MEMHARNESS-PROBE@@" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
