"""The baseline store: a small JSON file mapping a name (by default the scenario) to a run folder.

Paths are stored relative to the folder that holds `.memharness/` (the folder the store was created
from), so a store and baseline run folders committed to a repository work in any checkout.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memharness.compare.sides import CompareError, open_run
from memharness.core.atomic import read_json, write_json
from memharness.names import BASELINE_STORE

STORE_FORMAT = "memharness-baselines"


@dataclass
class Baseline:
    name: str
    run_dir: Path  # resolved against the store's root
    variant: str | None
    stored: str  # the run folder as written in the store
    run_id: str
    scenario: str
    set_wall_ns: int

    @property
    def spec(self) -> str:
        """As `compare` takes it: RUN_DIR or RUN_DIR:variant."""
        return str(self.run_dir) + (f":{self.variant}" if self.variant else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run_dir": str(self.run_dir), "variant": self.variant,
                "stored": self.stored, "run_id": self.run_id, "scenario": self.scenario,
                "set_wall_ns": self.set_wall_ns}


def _root(store: Path) -> Path:
    """Folder stored paths are relative to: the parent of `.memharness/`, else the store's own folder."""
    store = Path(store).absolute()
    return store.parent.parent if store.parent.name == ".memharness" else store.parent


def _load(store: Path) -> dict[str, Any]:
    try:
        data = read_json(store)
    except ValueError as exc:
        raise CompareError(f"{store}: not a baseline store ({exc})") from None
    if data is None:
        return {"format": STORE_FORMAT, "version": 1, "baselines": {}}
    if not isinstance(data, dict) or not isinstance(data.get("baselines"), dict):
        raise CompareError(f"{store}: not a baseline store (expected {{'baselines': {{...}}}})")
    return data


def _entry(name: str, raw: dict[str, Any], store: Path) -> Baseline:
    stored = str(raw.get("run", ""))
    variant = raw.get("variant")
    run = Path(stored)
    path = run if run.is_absolute() else _root(store) / run
    return Baseline(name, path, variant, stored, str(raw.get("run_id", "")), str(raw.get("scenario", "")),
                    int(raw.get("set_wall_ns", 0)))


def set_baseline(spec: str, store: Path = BASELINE_STORE, name: str | None = None) -> Baseline:
    """Record `spec` (RUN_DIR or RUN_DIR:variant) as the baseline of its scenario, or of `name`."""
    run, variant = open_run(spec)
    scenario = run.scenario
    name = name or scenario
    if not name:
        raise CompareError(f"{run.dir}: the manifest names no scenario; give --name")
    store = Path(store)
    data = _load(store)
    rel = os.path.relpath(run.dir.absolute(), _root(store))
    data["baselines"][name] = {
        "run": rel,
        "variant": variant,
        "run_id": run.manifest.get("run_id", run.dir.name),
        "scenario": scenario,
        "set_wall_ns": time.time_ns(),
    }
    write_json(store, data)
    return _entry(name, data["baselines"][name], store)


def list_baselines(store: Path = BASELINE_STORE) -> list[Baseline]:
    store = Path(store)
    entries = sorted(_load(store)["baselines"].items())
    return [_entry(n, raw, store) for n, raw in entries if isinstance(raw, dict)]


def get_baseline(name: str, store: Path = BASELINE_STORE) -> Baseline:
    store = Path(store)
    found = {b.name: b for b in list_baselines(store)}
    if name not in found:
        known = ", ".join(found) or "none"
        raise CompareError(
            f"no baseline recorded for {name!r} in {store} (recorded: {known}); "
            f"run `memharness baseline set RUN_DIR` first"
        )
    return found[name]


def dumps(baselines: list[Baseline]) -> str:
    return json.dumps([b.to_dict() for b in baselines], indent=2)
