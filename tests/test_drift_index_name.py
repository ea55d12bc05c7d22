"""`artifacts diff` of two pipeline variants: `config.index_name` (the variant's name, given by memharness)
is ignored by default and listed as ignored (issue 19)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from test_drift_artifacts import make_index
from typer.testing import CliRunner

from memharness.cli import app

os.environ.setdefault("HF_HUB_OFFLINE", "1")
runner = CliRunner()


def _named(root: Path, index_name: str) -> Path:
    make_index(root)
    for name in ("plan.json", "metadata.json"):
        plan = json.loads((root / "plan.json").read_text())
        plan["config"]["index_name"] = index_name
        (root / name).write_text(json.dumps(plan))
    return root


def test_variants_differing_only_in_index_name_are_identical(tmp_path):
    a = _named(tmp_path / "torch-2.13" / "idx", "torch-2.13")
    b = _named(tmp_path / "torch-2.14" / "idx", "torch-2.14")
    res = runner.invoke(app, ["artifacts", "diff", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.stdout
    data = json.loads(res.stdout)
    assert {"plan.json:config.index_name", "metadata.json:config.index_name"} <= set(data["ignored"])
    md = runner.invoke(app, ["artifacts", "diff", str(a), str(b)])
    assert md.exit_code == 0 and "`plan.json:config.index_name`" in md.stdout
    strict = runner.invoke(app, ["artifacts", "diff", str(a), str(b), "--no-default-ignores"])
    assert strict.exit_code == 1
