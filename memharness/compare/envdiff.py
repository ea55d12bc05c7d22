"""Environment difference between two sides, from the cells' `fingerprint.json` files.

Fingerprints are read defensively: any key may be missing, null, or of an older shape. A side whose cells
disagree on a value (say a whole run whose variants use two virtualenvs) shows every value it holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MEMORY_ENV_VARS = ("PYTORCH_CUDA_ALLOC_CONF", "MALLOC_ARENA_MAX", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
# Keys shown first, in this order; any other package or env var a fingerprint holds follows them.
KEY_ORDER = ("python", "torch", "CUDA", "cudnn", "driver", "GPU", "colbert-ai", "ragatouille", "transformers",
             "faiss", "glibc", *(f"env {v}" for v in MEMORY_ENV_VARS), "kmeans", "platform", "node type")
MISSING = "-"
UNSET = "(unset)"


@dataclass
class EnvDiff:
    differ: list[tuple[str, str, str]]  # (key, base, current)
    same: list[tuple[str, str]]  # (key, value)

    def to_dict(self) -> dict[str, Any]:
        return {"differ": [{"key": k, "base": b, "current": c} for k, b, c in self.differ],
                "same": [{"key": k, "value": v} for k, v in self.same]}


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _packages(fp: dict[str, Any]) -> dict[str, str]:
    pkgs = fp.get("packages")
    if isinstance(pkgs, list):  # [{"name", "version"}]
        pkgs = {p.get("name"): p.get("version") for p in pkgs if isinstance(p, dict) and p.get("name")}
    if not isinstance(pkgs, dict):
        return {}
    return {str(k).lower(): _text(v) for k, v in pkgs.items()}


def _gpu_names(gpu: Any) -> str | None:
    devices = gpu.get("devices") if isinstance(gpu, dict) else None
    if not isinstance(devices, list) or not devices:
        return None
    names = [str(d.get("name", "?")) if isinstance(d, dict) else str(d) for d in devices]
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(n if c == 1 else f"{c} x {n}" for n, c in counts.items())


def flatten(fp: dict[str, Any]) -> dict[str, str]:
    """The comparable facts of one fingerprint as key -> text."""
    out: dict[str, str] = {}
    for key in ("python", "glibc", "platform"):
        if key in fp:
            out[key] = _text(fp[key])
    torch = fp.get("torch")
    if isinstance(torch, dict):
        out["torch"] = _text(torch.get("version"))
        out["CUDA"] = _text(torch.get("cuda"))
        out["cudnn"] = _text(torch.get("cudnn"))
    elif isinstance(torch, str):
        out["torch"] = torch
    elif "torch" in fp:  # null: torch not installed in that interpreter
        out["torch"] = "not installed"
    gpu = fp.get("gpu")
    if isinstance(gpu, dict):
        out["driver"] = _text(gpu.get("driver"))
        out["GPU"] = _gpu_names(gpu) or "none"
    elif "gpu" in fp:
        out["GPU"] = "none"
    faiss = []
    for name, version in _packages(fp).items():
        if name.startswith("faiss"):
            faiss.append(f"{name} {version}")
        else:
            out[name] = version
    if faiss:
        out["faiss"] = ", ".join(sorted(faiss))
    env = fp.get("env")
    if isinstance(env, dict):
        for var, value in env.items():
            out[f"env {var}"] = UNSET if value is None else str(value)
    if "kmeans" in fp:
        out["kmeans"] = _text(fp["kmeans"])
    node = fp.get("node")  # the Ray executor records the node a cell ran on; cells on two node types differ
    if isinstance(node, dict) and node.get("type"):
        out["node type"] = _text(node["type"])
    return out


def _side_values(fps: list[dict[str, Any]]) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    for fp in fps:
        for k, v in flatten(fp).items():
            values.setdefault(k, [])
            if v not in values[k]:
                values[k].append(v)
    return {k: " | ".join(vs) for k, vs in values.items()}


def _order(key: str) -> tuple[int, str]:
    return (KEY_ORDER.index(key), "") if key in KEY_ORDER else (len(KEY_ORDER), key)


def diff(base_fps: list[dict[str, Any]], current_fps: list[dict[str, Any]]) -> EnvDiff:
    base, current = _side_values(base_fps), _side_values(current_fps)
    differ, same = [], []
    for key in sorted(set(base) | set(current), key=_order):
        b = base.get(key, MISSING)
        c = current.get(key, MISSING)
        if b == c:
            if b != MISSING:  # unknown on both sides says nothing
                same.append((key, b))
        else:
            differ.append((key, b, c))
    return EnvDiff(differ, same)
