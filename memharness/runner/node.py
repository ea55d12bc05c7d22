"""Facts about the machine a cell ran on: recorded in the manifest and in the cell's fingerprint.json."""

from __future__ import annotations

import os
import platform
from typing import Any


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_total() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001
        return None


def node_type(cpu_model: str | None, cpu_count: int | None, memory: int | None, gpus: str | None) -> str:
    """One line naming the kind of machine, e.g. `Intel Xeon x32, 251 GiB, 8 x NVIDIA H200`: cells run on
    different node types are an environment difference in `compare`."""
    parts = [f"{cpu_model or platform.machine()} x{cpu_count or '?'}"]
    if memory:
        parts.append(f"{memory / 2**30:.0f} GiB")
    parts.append(gpus or "no GPU")
    return ", ".join(parts)


def machine_gpus(fingerprint: dict[str, Any] | None) -> str | None:
    """Every GPU of the machine from a fingerprint's `gpu` section, e.g. `8 x NVIDIA H200` (None: no GPU)."""
    devices = ((fingerprint or {}).get("gpu") or {}).get("devices") or []
    names = [str(d.get("name", "?")) for d in devices if isinstance(d, dict)]
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(n if c == 1 else f"{c} x {n}" for n, c in counts.items()) or None


def local_node(gpus: str | None = None) -> dict[str, Any]:
    cpu, count, mem = _cpu_model(), os.cpu_count(), _memory_total()
    return {"hostname": platform.node(), "cpu": cpu, "cpu_count": count, "memory_total": mem,
            "type": node_type(cpu, count, mem, gpus)}


def local_placement(fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the manifest records about where a cell of the local executor ran (`fingerprint`: the probe's,
    for the machine's GPUs, so the type matches the one in the cell's fingerprint.json)."""
    node = local_node(machine_gpus(fingerprint))
    return {"executor": "local", "node": {"hostname": node["hostname"], "type": node["type"]}}
