"""The Ray executor: one Ray task per cell, each in a fresh worker process (`max_calls=1`).

The task runs the local executor's `run_cell` (the same cell process and sampler, the sampler rooted at the
cell process, not at the Ray worker) into a scratch folder on the worker node, takes the fingerprint there,
and returns the cell folder as a tar archive (without `work/` unless the scenario says `return_work`). The
driver unpacks it into a temporary folder inside the run folder and renames it into place, so a cell folder
in the run folder is always whole. A worker or node lost while a cell runs is `failed` with cause `lost`
(run again up to `retries_on_lost` times). A signal on the driver cancels every task (`ray.cancel(force=True)`,
whose death a reaper process turns into the cell's) and raises Interrupted for runner/execute.py, which marks
the running cells interrupted for `--resume`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memharness import names
from memharness.core.atomic import read_json, write_json
from memharness.core.session import interpreter_env
from memharness.errors import MemharnessError
from memharness.runner.executors.base import Executor, Finished, RunContext, Started
from memharness.runner.matrix import CellPlan
from memharness.runner.node import local_node, machine_gpus
from memharness.runner.preflight import Preflight
from memharness.runner.signals import Interrupted, stop_message
from memharness.runner.supervisor import CellOutcome, run_cell, write_cell_spec

if TYPE_CHECKING:
    from memharness.scenario import Scenario

EXTRA_HINT = "executor ray: Ray is not installed; it is an optional extra: pip install 'memharness[ray]'"
LOST_ERRORS = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "ActorDiedError",
               "LocalRayletDiedError", "RaySystemError")


class RayMissing(MemharnessError, ValueError):
    """Ray is not installed; the message names the extra."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissing(EXTRA_HINT) from None
    return ray


# --- on the worker node ------------------------------------------------------------------------------


def _node_fingerprint(python: str, packages: list[str], env_extra: dict[str, str]) -> dict[str, Any] | None:
    """The pipeline interpreter's fingerprint taken on this node (what the probe took on the driver)."""
    code = ("import json, sys; from memharness.runner.fingerprint import collect; "
            f"sys.stdout.write('@@FP@@' + json.dumps(collect({packages!r}), default=str))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300,
                             env=interpreter_env(env_extra), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or "@@FP@@" not in out.stdout:
        return None
    return json.loads(out.stdout.split("@@FP@@", 1)[1])


def _gpu_names(fp: dict[str, Any] | None, gpu_ids: list[Any]) -> str | None:
    devices = ((fp or {}).get("gpu") or {}).get("devices") or []
    names = [str(d.get("name")) for d in devices if not gpu_ids or str(d.get("index")) in map(str, gpu_ids)]
    return ", ".join(names) or None


def _tar_folder(folder: Path, skip_work: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for item in sorted(folder.iterdir()):
            if skip_work and item.name == names.WORK:
                continue
            tar.add(item, arcname=item.name)
    return buf.getvalue()


# Variables Ray sets in its workers that the local executor's cells would not see; the task puts back the
# driver's values (CUDA_VISIBLE_DEVICES stays Ray's: it is how a cell gets the GPU Ray gave it).
RAY_SET_ENV = ("OMP_NUM_THREADS",)


def driver_env() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in RAY_SET_ENV}


def cell_task(plan: CellPlan, scenario: Scenario, pre: Preflight, board, env: dict[str, str | None]) -> dict[str, Any]:
    """The body of a cell's Ray task: run the cell into a scratch folder and hand the folder back."""
    import ray

    for key, value in env.items():  # the worker process ends after this task (max_calls=1)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    ctx = ray.get_runtime_context()
    gpu_ids = list(ray.get_gpu_ids())
    node = {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "gpu_ids": gpu_ids,
            "worker_pid": os.getpid(), **local_node()}
    board.started.remote(plan.id, node)
    scratch = Path(tempfile.mkdtemp(prefix=f"memharness-{plan.id}-"))
    # The cell runs in its own session: if this worker is killed (cancelled, lost), the reaper kills the cell.
    subprocess.Popen([sys.executable, "-m", "memharness.runner.executors.reaper", str(os.getpid()), str(scratch)],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    try:
        cell_dir = scratch / plan.id
        outcome = run_cell(plan, cell_dir, scenario, pre)
        check = pre.pipelines[plan.pipeline]
        fp = read_json(cell_dir / names.FINGERPRINT, {}) or {}
        taken = _node_fingerprint(check.python, sorted((fp.get("packages") or {}).keys()), scenario.env)
        if taken is not None:
            fp.update(taken)
        node["gpu"] = _gpu_names(taken, gpu_ids) if gpu_ids else None  # the GPUs Ray gave this cell
        node["type"] = local_node(machine_gpus(fp))["type"]  # the machine, as the local executor records it
        fp["node"] = {**(fp.get("node") or {}),
                      **{k: node[k] for k in ("hostname", "node_id", "node_ip", "type", "gpu_ids", "gpu")}}
        fp["executor"] = "ray"
        write_json(cell_dir / names.FINGERPRINT, fp)
        return {"outcome": asdict(outcome), "node": node,
                "tar": _tar_folder(cell_dir, skip_work=not scenario.return_work)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Board:
    """Where tasks say which node they started on, for the driver's live progress and the manifest."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def started(self, cell_id: str, node: dict[str, Any]) -> None:
        self.nodes[cell_id] = node

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return dict(self.nodes)


# --- on the driver -----------------------------------------------------------------------------------


def cell_options(scenario: Scenario, pre: Preflight, plan: CellPlan) -> dict[str, Any]:
    """Ray resources of one cell's task (`max_calls=1`, a fresh worker per cell, is set on the function)."""
    device = pre.pipelines[plan.pipeline].device
    gpus = scenario.gpus_per_cell if scenario.gpus_per_cell is not None else (1 if device == "cuda" else 0)
    opts: dict[str, Any] = {"num_cpus": scenario.num_cpus, "num_gpus": gpus, "max_retries": 0,
                            "retry_exceptions": False}
    if scenario.max_rss is not None:
        opts["memory"] = int(scenario.max_rss)
    resources = {**scenario.resources, **_pipeline_resources(scenario, plan.pipeline)}
    if resources:
        opts["resources"] = resources
    return opts


def _pipeline_resources(scenario: Scenario, name: str) -> dict[str, float]:
    for p in scenario.pipelines:
        if p.name == name:
            return dict(p.resources)
    return {}


def install_cell(run_dir: Path, cell_id: str, archive: bytes) -> Path:
    """Write a returned cell folder into the run folder atomically: unpack beside it, then rename."""
    cells = run_dir / names.CELLS
    cells.mkdir(parents=True, exist_ok=True)
    incoming = cells / f".incoming-{cell_id}-{uuid.uuid4().hex[:8]}"
    incoming.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
            tar.extractall(incoming, filter="data")
        final = cells / cell_id
        if final.exists():  # an earlier interrupted attempt (resume): move it aside, then drop it
            old = cells / f".replaced-{cell_id}-{uuid.uuid4().hex[:8]}"
            final.rename(old)
            incoming.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            incoming.rename(final)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return final


def record_failure(run_dir: Path, plan: CellPlan, scenario: Scenario, pre: Preflight, cause: str, message: str,
                   node: dict[str, Any] | None, status: str = "failed") -> CellOutcome:
    """A cell whose folder did not come back (lost, cancelled): a cell folder holding its spec and status."""
    cell_dir = run_dir / names.CELLS / plan.id
    cell_dir.mkdir(parents=True, exist_ok=True)
    write_cell_spec(cell_dir, plan, scenario, pre)
    record = {"status": status, "cause": cause, "message": message, "exit_code": None, "wall_seconds": 0.0,
              "peak_tree_rss": 0, "size": plan.size, "pipeline": plan.pipeline}
    if node:
        record["node"] = {k: node.get(k) for k in ("hostname", "node_id", "node_ip")}
    write_json(cell_dir / names.STATUS, record)
    return CellOutcome(status, cause, message, 0.0, 0)


def _classify_error(exc: BaseException) -> tuple[str, str]:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name == "OutOfMemoryError":
        return "oom_kill", f"Ray's memory monitor killed the worker: {text}"
    if any(n in name for n in LOST_ERRORS):
        return "lost", f"the Ray worker or node running the cell was lost ({name})"
    return "executor", f"the Ray task failed: {name}: {text}"


def _unplaceable(ray, opts: dict[str, Any]) -> str | None:
    """Why no node of the cluster can ever run a task asking for `opts` (None when some node can)."""
    need = {"CPU": opts.get("num_cpus") or 0, "GPU": opts.get("num_gpus") or 0, "memory": opts.get("memory") or 0,
            **opts.get("resources", {})}
    need = {k: v for k, v in need.items() if v}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not need or any(all(have.get(k, 0) >= v for k, v in need.items()) for have in nodes):
        return None
    wanted = ", ".join(f"{k} {v / 2**30:.2f} GiB" if k == "memory" else f"{k} {v:g}" for k, v in need.items())
    return f"no node of the Ray cluster offers {wanted} (num_cpus, gpus_per_cell / device, max_rss, resources)"


def _placement(node: dict[str, Any] | None) -> dict[str, Any]:
    if not node:
        return {"executor": "ray"}
    return {"executor": "ray", "node": {k: node.get(k) for k in ("hostname", "node_id", "node_ip", "type")},
            "gpu": {"ids": node.get("gpu_ids") or [], "name": node.get("gpu")}}


class RayExecutor(Executor):
    """One Ray task per cell, on a local Ray instance or the cluster at `address`."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        super().__init__(address)
        self._ray = None
        self._started_here = False
        self._pending: dict[Any, CellPlan] = {}

    def check(self) -> None:
        import_ray()  # no Ray: one line naming the extra, before any work

    def open(self, ctx: RunContext) -> dict[str, Any] | None:
        """Start (or join) Ray; the manifest records the address and Ray's version."""
        ray = self._ray = import_ray()
        self._started_here = not ray.is_initialized()
        if self._started_here:
            self._init(ray, ctx)
        return {"name": "ray", "address": self.address or "local", "ray": ray.__version__}

    def _init(self, ray: Any, ctx: RunContext) -> None:
        # Ray installs handlers of its own: keep the run's (runner/signals.py) so Ctrl-C still stops it cleanly.
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ValueError(f"cannot {where}: {first}; the run folder {ctx.run_dir} keeps its cells pending "
                             "(--resume runs them)") from None
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)

    def _refuse_unplaceable(self, todo: list[CellPlan], ctx: RunContext) -> None:
        for plan in todo:
            why = _unplaceable(self._ray, cell_options(ctx.scenario, ctx.pre, plan))
            if why is not None and self._started_here:
                self._ray.shutdown()
                raise ValueError(f"{plan.id}: {why}; it would wait forever")
            if why is not None:  # a cluster that joins nodes on demand (autoscaler) may still place it
                ctx.say(f"warning: {plan.id}: {why} yet; it waits until one joins")

    def run(self, todo: list[CellPlan], ctx: RunContext) -> Iterator[Started | Finished]:
        ray = self._ray
        board = ray.remote(num_cpus=0)(_Board).remote()
        remote = ray.remote(max_calls=1)(cell_task)
        env = driver_env()
        tries: dict[str, int] = {}
        pending = self._pending

        def submit(plan: CellPlan) -> None:
            tries[plan.id] = tries.get(plan.id, 0) + 1
            opts = cell_options(ctx.scenario, ctx.pre, plan)
            pending[remote.options(**opts).remote(plan, ctx.scenario, ctx.pre, board, env)] = plan

        self._refuse_unplaceable(todo, ctx)
        done = failed = 0
        seen_running: set[str] = set()
        nodes: dict[str, dict[str, Any]] = {}
        try:
            for plan in todo:
                submit(plan)
            while pending:
                signum = ctx.stop_requested()
                if signum is not None:
                    self._stop(ctx, signum, seen_running, nodes)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                nodes = ray.get(board.snapshot.remote())
                for cell_id, node in nodes.items():
                    if cell_id not in seen_running and cell_id in {p.id for p in pending.values()}:
                        seen_running.add(cell_id)
                        yield Started(next(p for p in pending.values() if p.id == cell_id), _placement(node))
                for ref in ready:
                    plan = pending.pop(ref)
                    outcome, node, again = self._collect(ref, plan, nodes.get(plan.id), tries, ctx)
                    if again:
                        seen_running.discard(plan.id)
                        submit(plan)
                        continue
                    where = f" on {node.get('hostname')} ({str(node.get('node_id'))[:8]})" if node else ""
                    yield Finished(plan, outcome, _placement(node), tries[plan.id], where)
                    done, failed = (done + 1, failed) if outcome.status == "done" else (done, failed + 1)
                running = sorted({nodes[c].get("hostname", "?") + ":" + str(nodes[c].get("node_id"))[:8]
                                  for c in seen_running if c in nodes and c in {p.id for p in pending.values()}})
                n_running = sum(1 for p in pending.values() if p.id in seen_running)
                ctx.progress(description=f"ray: {n_running} running, {done} done, {failed} failed",
                             live=("on " + ", ".join(running)) if running else "")
        finally:
            self.cancel()

    def _collect(self, ref: Any, plan: CellPlan, node: dict[str, Any] | None, tries: dict[str, int],
                 ctx: RunContext) -> tuple[CellOutcome, dict[str, Any] | None, bool]:
        """(outcome, node, run it again) of a finished task: its folder installed, or a failure recorded."""
        try:
            result = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - every way a task can fail becomes a recorded cause
            cause, message = _classify_error(exc)
            if cause == "lost" and tries[plan.id] <= ctx.scenario.retries_on_lost:
                ctx.say(f"{plan.id}: {message}; running it again (try {tries[plan.id] + 1})")
                return CellOutcome("pending", None, "", 0.0, 0), node, True
            return record_failure(ctx.run_dir, plan, ctx.scenario, ctx.pre, cause, message, node), node, False
        node = result["node"]
        if ctx.disk_low():
            raise OSError(errno.ENOSPC, "No space left on device", str(ctx.run_dir / names.CELLS / plan.id))
        install_cell(ctx.run_dir, plan.id, result["tar"])
        return CellOutcome(**result["outcome"]), node, False

    def _stop(self, ctx: RunContext, signum: int, seen_running: set[str], nodes: dict[str, dict[str, Any]]) -> None:
        """Cancel every task, leave an `interrupted` folder for each cell that had started, raise Interrupted."""
        for ref, plan in list(self._pending.items()):  # cancel first, then leave what the folder needs
            self._ray.cancel(ref, force=True)
            if plan.id in seen_running:
                record_failure(ctx.run_dir, plan, ctx.scenario, ctx.pre, "interrupted", stop_message(signum),
                               nodes.get(plan.id) if nodes else None, status="interrupted")
        raise Interrupted(signum)

    def cancel(self) -> None:
        if self._ray is None:
            return
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
