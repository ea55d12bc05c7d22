"""The fingerprint names the packages a pipeline depends on: its kind's PACKAGES, and the top-level package
of every target and of a `callable` pipeline's function (a PyLate callable must show pylate's version)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from memharness.pipelines import colbert, ragatouille, registry
from memharness.runner import fingerprint
from memharness.runner.probe import probe_all

TESTS = Path(__file__).resolve().parent


def test_top_level_modules_of_targets_and_functions():
    paths = ["pylate.indexes.PLAID.add_documents", "colbert.indexer.Indexer.index", "mypkg.index:build",
             "colbert.indexing.collection_indexer.encode"]
    assert fingerprint.top_level_modules(paths) == ["pylate", "colbert", "mypkg"]


def test_collect_records_each_module_with_its_distribution_and_version():
    fp = fingerprint.collect((), ["colbert", "numpy", "no_such_module_xyz"])
    assert fp["target_packages"] == {"colbert": "colbert-ai", "numpy": "numpy", "no_such_module_xyz": None}
    assert fp["packages"]["colbert-ai"] == importlib.metadata.version("colbert-ai")
    required = fingerprint.direct_requirements("colbert-ai")  # what the library pulls in is named too
    assert "transformers" in required and set(required) <= set(fp["packages"])


def test_probe_fingerprint_names_the_callable_and_target_packages():
    request = {"kind": "callable", "options": {"function": "workloads:pipeline_ok"},
               "targets": ["yaml.safe_load"], "line_profile": [], "sys_path": [str(TESTS)]}
    (result,) = probe_all([request])
    assert result["ok"], result["errors"]
    fp = result["fingerprint"]
    assert fp["target_packages"] == {"yaml": "PyYAML", "workloads": None}  # workloads: a file, no distribution
    assert fp["packages"]["PyYAML"] == importlib.metadata.version("PyYAML")


def test_each_kind_declares_its_packages_as_plain_data():
    assert registry.get("colbert").packages == list(colbert.PACKAGES) and "colbert-ai" in colbert.PACKAGES
    assert registry.get("ragatouille").packages == list(ragatouille.PACKAGES)
    assert registry.get("callable").packages == []
