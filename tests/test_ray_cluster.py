"""The Ray executor on two Ray nodes of one machine (`ray.cluster_utils.Cluster`): cells pinned to each node
through custom resources run there, and the manifest names both nodes."""

from __future__ import annotations

import json
import os

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402
from test_ray_executor import run_in_process  # noqa: E402
from test_runner_failures import TESTS, write_scenario  # noqa: E402

from memharness.compare.envdiff import diff  # noqa: E402


@pytest.fixture
def two_nodes(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS)] + [os.environ.get("PYTHONPATH", "")]))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"node_a": 1}, "include_dashboard": False, "object_store_memory": 100 << 20})
    cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=100 << 20)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_cells_pinned_to_two_nodes(tmp_path, two_nodes):
    by_resource = {r: n["NodeID"] for n in ray.nodes() if n["Alive"] for r in ("node_a", "node_b")
                   if r in n["Resources"]}
    assert len(set(by_resource.values())) == 2
    path = write_scenario(tmp_path, "two_nodes", """\
        - {name: on_a, kind: callable, options: {function: "workloads:pipeline_ok", mib: 20}, resources: {node_a: 1}}
        - {name: on_b, kind: callable, options: {function: "workloads:pipeline_ok", mib: 20}, resources: {node_b: 1}}
        """, sizes="[50, 60]")
    code, run, out = run_in_process(path, executor="ray")
    assert code == 0, out
    manifest = json.loads((run / "manifest.json").read_text())
    nodes = {c["id"]: c["node"]["node_id"] for c in manifest["cells"]}
    print(json.dumps(nodes, indent=1))
    assert nodes == {"on_a__50__r0": by_resource["node_a"], "on_a__60__r0": by_resource["node_a"],
                     "on_b__50__r0": by_resource["node_b"], "on_b__60__r0": by_resource["node_b"]}
    for c in manifest["cells"]:
        fp = json.loads((run / c["dir"] / "fingerprint.json").read_text())
        assert fp["node"]["node_id"] == nodes[c["id"]]  # the fingerprint was taken on that node


def test_compare_flags_different_node_types():
    a = {"python": "3.11.9", "node": {"type": "Xeon x32, 251 GiB, 8 x NVIDIA H200"}}
    b = {"python": "3.11.9", "node": {"type": "EPYC x64, 503 GiB, 8 x NVIDIA A100"}}
    result = diff([a], [a, b])
    assert ("node type", a["node"]["type"], f"{a['node']['type']} | {b['node']['type']}") in result.differ
    assert ("python", "3.11.9") in result.same
