"""`memharness bisect` (issue 27).

End to end, offline, on a tiny `callable` pipeline package (tests/bisect_pkgs.py) whose wrapped function
`memtiny.index.build` starts keeping 200 MiB at a planted version:

- a local package index (a folder of wheels 1.0 ... 1.8, 1.5 planted): the bisect names 1.5 in at most 4 cell
  runs; a second bisect over the same range reuses every cached environment (timed, printed);
- Ctrl-C in the middle of a step: exit 130 with one line naming `--resume`; `--resume` finishes it;
- git mode on a local repository with a planted commit and a commit that does not import (skipped);
- a bad range (good newer than bad, an unknown version, a package with no release, an unknown cell): one line,
  exit 2, before anything is built or run;
- the search (with skips), the version listing (pre-releases, yanked files) and the installer's torch guard,
  as units.

Tolerances: the planted change is +200 MiB against compare's default rule (10% and 64 MiB with one repeat);
the unchanged steps move by a few MiB at most on a busy machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bisect_pkgs import KEEP_MIB, write_index, write_repo
from cli import cli_env, default_stop_signals, memharness_cli

from memharness.bisect import search
from memharness.bisect.search import BAD, GOOD, SKIP

VERSIONS = [f"1.{i}" for i in range(9)]
PLANTED = "1.5"

SCENARIO = """\
name: tiny
corpus: {{source: file, path: corpus.txt, format: txt}}
model: builtin:tiny
pipelines:
  - name: tiny
    kind: callable
    options: {{function: "memtiny.index:index"}}
    targets: [memtiny.index.build]
  - name: other
    kind: callable
    options: {{function: "memtiny.index:index"}}
sizes: [20]
repeats: 1
device: cpu
sample_interval: 20ms
timeout: 120s
max_rss: 4GiB
output: {output}
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A folder with the wheels, the corpus, the scenario and an environment cache shared by the tests."""
    tmp = tmp_path_factory.mktemp("bisect")
    write_index(tmp / "wheels", VERSIONS, PLANTED)
    (tmp / "corpus.txt").write_text("".join(f"passage number {i} about genes and proteins\n" for i in range(50)))
    (tmp / "tiny.yaml").write_text(SCENARIO.format(output=tmp / "results"))
    return tmp


def _index(ws: Path) -> list[str]:
    return ["--no-index", "--find-links", str(ws / "wheels"), "--env-cache", str(ws / "envs")]


def _bisect(ws: Path, *args: str) -> subprocess.CompletedProcess:
    proc = memharness_cli("bisect", *args, cwd=ws, timeout=900)
    print(proc.stdout)  # shown with pytest -s: the steps and the table
    print(proc.stderr, file=sys.stderr)
    return proc


def _state(folder: Path) -> dict:
    return json.loads((folder / "bisect.json").read_text())


def _release(ws: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    return _bisect(ws, str(ws / "tiny.yaml"), "--cell", "tiny@20", "--package", "memtiny", "--good", "1.0",
                   "--bad", "1.8", *_index(ws), "-o", str(ws / out), *extra)


TIMINGS: dict[str, list[float]] = {}


@pytest.mark.e2e
def test_local_index_bisect_names_the_planted_version_in_at_most_4_cell_runs(ws):
    proc = _release(ws, "first")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "first bad version: memtiny 1.5 (last good: 1.4)" in proc.stdout
    state = _state(ws / "first")
    runs = [s for s in state["steps"] if s["ran_cell"]]
    assert len(runs) <= 4, [s["label"] for s in runs]
    by_label = {s["label"]: s for s in state["steps"]}
    assert by_label["1.5"]["verdict"] == BAD and by_label["1.0"]["verdict"] == GOOD
    assert by_label["1.5"]["row"]["target"] == "memtiny.index.build"
    assert by_label["1.5"]["row"]["delta"] / 2**20 == pytest.approx(KEEP_MIB, abs=20)
    for s in runs:  # each version keeps an ordinary run folder
        assert (Path(s["run_dir"]) / "manifest.json").exists()
    assert all(not s["env"]["reused"] for s in state["steps"])
    TIMINGS["cold"] = [s["env"]["seconds"] for s in state["steps"]]
    # compare reads two versions' run folders as it reads any runs
    cmp = memharness_cli("compare", by_label["1.4"]["run_dir"], by_label["1.5"]["run_dir"], "--format", "json",
                         cwd=ws)
    assert cmp.returncode == 1, cmp.stderr
    assert json.loads(cmp.stdout)["verdict"] == "regressed"


@pytest.mark.e2e
def test_second_bisect_reuses_the_cached_environments(ws):
    if "cold" not in TIMINGS:
        pytest.skip("needs the first bisect's environments")
    proc = _release(ws, "second")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "first bad version: memtiny 1.5" in proc.stdout
    state = _state(ws / "second")
    envs = [s["env"] for s in state["steps"]]
    assert envs and all(e["reused"] for e in envs), envs  # no environment rebuilt
    warm = [e["seconds"] for e in envs]
    print(f"environments: first bisect built {len(TIMINGS['cold'])} in {sum(TIMINGS['cold']):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in TIMINGS['cold'])}); second reused {len(warm)} in {sum(warm):.3f} s")
    assert "reused" in proc.stdout


@pytest.mark.e2e
def test_ctrl_c_stops_with_one_line_and_resume_finishes(ws):
    out, hold = ws / "interrupted", ws / "hold"
    hold.mkdir()
    (hold / "hold-1.5").touch()  # the second step's cell waits in memtiny.index.index until this file goes
    cmd = [sys.executable, "-m", "memharness", "bisect", str(ws / "tiny.yaml"), "--cell", "tiny@20", "--package",
           "memtiny", "--good", "1.4", "--bad", "1.6", *_index(ws), "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=ws, env={**cli_env(), "MEMTINY_HOLD": str(hold)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_stop_signals)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not (hold / "started-1.5").exists():
            time.sleep(0.05)  # polling for the event with a deadline, not timing the test
        assert proc.poll() is None and (hold / "started-1.5").exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        (hold / "hold-1.5").unlink()
        if proc.poll() is None:
            proc.kill()
    print(stdout, stderr)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memharness bisect: interrupted by Ctrl-C"), stderr
    assert f"memharness bisect --resume {out}" in lines[0]
    assert _state(out)["running"] is not None and _state(out)["result"] is None

    resumed = _bisect(ws, "--resume", str(out))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "first bad version: memtiny 1.5 (last good: 1.4)" in resumed.stdout
    state = _state(out)
    assert [s["label"] for s in state["steps"]] == ["1.4", "1.5"]
    assert state["running"] is None


@pytest.mark.e2e
def test_git_mode_finds_the_planted_commit_and_skips_one_that_does_not_import(ws):
    repo = ws / "repo"
    shas = write_repo(repo, commits=8, planted=5, broken=3)
    proc = _bisect(ws, str(ws / "tiny.yaml"), "--cell", "tiny@20", "--git", str(repo), "--good", shas[0],
                   "--bad", "main", "--no-index", "--env-cache", str(ws / "envs"), "-o", str(ws / "git"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"first bad commit: memtiny {shas[5][:10]} change 5 (keeps a buffer)" in proc.stdout
    state = _state(ws / "git")
    by_index = {s["index"]: s for s in state["steps"]}
    assert by_index[3]["verdict"] == SKIP and "broken on purpose" in by_index[3]["reason"]
    assert not by_index[3]["ran_cell"]
    assert by_index[5]["verdict"] == BAD and by_index[4]["verdict"] == GOOD
    assert sum(s["ran_cell"] for s in state["steps"]) <= 4
    # installed editable: the cell imported memtiny from the commit's source in the environment cache
    env = Path(by_index[5]["env"]["path"])
    assert any("-e " in item for item in by_index[5]["env"]["installed"])
    assert (env / "src" / "memtiny" / "index.py").read_text().count(f"KEEP_MIB = {KEEP_MIB}") == 1
    assert subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""  # the checkout is only read


BAD_RANGES = [
    (["--good", "1.6", "--bad", "1.2"], "--good 1.6 is newer than --bad 1.2"),
    (["--good", "1.0", "--bad", "1.9"], "--bad 1.9: memtiny has no release 1.9; nearest released: 1.6, 1.7, 1.8"),
    (["--good", "1.0", "--bad", "1.0"], "the same version"),
    (["--good", "1.0", "--bad", "1.8", "--package", "nothere"], "nothere: no release found on find-links"),
    (["--good", "1.0", "--bad", "1.8", "--cell", "tiny@30"], "has no size 30 (sizes: 20)"),
    (["--good", "1.0", "--bad", "1.8", "--cell", "tinny@20"], "has no pipeline 'tinny'; did you mean 'tiny'?"),
]


@pytest.mark.parametrize(("args", "message"), BAD_RANGES, ids=["newer", "unknown", "same", "no-release",
                                                               "size", "pipeline"])
def test_a_bad_range_is_one_line_and_exit_2(ws, args, message):
    opts = {"--cell": "tiny@20", "--package": "memtiny"}
    it = iter(args)
    rest = []
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            rest.append(a)
    flat = [x for kv in opts.items() for x in kv]
    proc = memharness_cli("bisect", str(ws / "tiny.yaml"), *flat, *rest, *_index(ws), "-o", str(ws / "never"),
                          cwd=ws, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memharness bisect: "), proc.stderr
    assert message in lines[0]
    assert not (ws / "never").exists()  # nothing built, nothing run


def test_git_mode_bad_range_is_one_line(tmp_path):
    repo = tmp_path / "repo"
    shas = write_repo(repo, commits=3, planted=2)
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(SCENARIO.format(output=tmp_path / "results"))
    for good, bad, message in ((shas[2], shas[0], "is newer than --bad"), ("nope", "main", "not a commit of")):
        proc = memharness_cli("bisect", scenario, "--cell", "tiny@20", "--git", repo, "--good", good, "--bad", bad,
                              "--no-index", cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr


# --- units ---------------------------------------------------------------------------------------------------


def _simulate(n: int, first_bad: int, skip: set[int] = frozenset()) -> tuple[search.Outcome, list[int]]:
    verdicts: dict[int, str] = {}
    order = []
    while (i := search.next_index(n, verdicts)) is not None:
        order.append(i)
        verdicts[i] = SKIP if i in skip else (BAD if i >= first_bad else GOOD)
    return search.outcome(n, verdicts), order


def test_search_finds_every_first_bad_in_log2_steps():
    for n in range(2, 34):
        for first_bad in range(1, n):
            out, order = _simulate(n, first_bad)
            assert out.kind == "found" and out.first_bad == first_bad, (n, first_bad, order)
            # the good end, then at most ceil(log2(n - 1)) steps, plus the bad end when nothing else was bad
            bound = 1 + max(1, (n - 2).bit_length()) + (1 if first_bad == n - 1 else 0)
            assert len(order) <= bound, (n, first_bad, order)
    out, order = _simulate(9, 5)
    assert order == [0, 4, 6, 5]


def test_search_skips_like_git_bisect_skip():
    out, order = _simulate(9, 6, skip={4})
    assert order == [0, 4, 3, 5, 6]  # the skipped middle's nearest neighbour next
    assert out.kind == "found" and out.first_bad == 6
    # only a skipped candidate between the last good and the first bad: either may be the first bad
    out, _ = _simulate(9, 5, skip={4})
    assert out.kind == "ambiguous" and out.candidates == (4, 5) and out.last_good == 3
    out, _ = _simulate(9, 4, skip={4})
    assert out.kind == "ambiguous" and out.candidates == (4, 5)
    # the bad end cannot be measured and nothing else was bad
    out, _ = _simulate(9, 9, skip={8})
    assert out.kind == "ambiguous" and out.candidates == (8,)
    # nothing regressed: the bad end is measured and judged good
    verdicts = {i: GOOD for i in range(9)}
    assert search.outcome(9, verdicts).kind == "no_regression"
    assert search.next_index(9, {0: GOOD, 8: GOOD}) is None


def test_versions_from_a_simple_index_skip_yanked_and_pre_releases(tmp_path):
    from memharness.bisect.versions import Index, between, list_versions

    page = tmp_path / "simple" / "memtiny"
    page.mkdir(parents=True)
    files = ["memtiny-1.0-py3-none-any.whl", "memtiny-1.1.tar.gz", "memtiny-1.2rc1-py3-none-any.whl",
             "memtiny-1.2-py3-none-any.whl", "memtiny-1.3.post1-py3-none-any.whl", "other-1.1-py3-none-any.whl"]
    links = "".join(f'<a href="../../files/{f}#sha256=00">{f}</a>\n' for f in files)
    links += '<a href="../../files/memtiny-1.4-py3-none-any.whl" data-yanked="">memtiny-1.4-py3-none-any.whl</a>\n'
    page.joinpath("index.html").write_text(f"<html><body>{links}</body></html>")
    listing = list_versions("MemTiny", Index(index_url=(tmp_path / "simple").as_uri()))
    assert between(listing, "memtiny", "1.0", "1.3.post1") == ["1.0", "1.1", "1.2", "1.3.post1"]
    assert between(listing, "memtiny", "1.0", "1.2", pre=True) == ["1.0", "1.1", "1.2rc1", "1.2"]
    assert between(listing, "memtiny", "1.0", "1.2rc1") == ["1.0", "1.1", "1.2rc1"]  # an end is always kept
    with pytest.raises(Exception, match="yanked"):
        between(listing, "memtiny", "1.0", "1.4")


def test_installer_never_layers_torch(monkeypatch):
    from memharness.bisect import installer

    dry_run = " + faiss-cpu==1.9.0\n + torch==2.14.1\n - numpy==2.4.6\n + numpy==2.0.0\n"
    monkeypatch.setattr(installer, "run_uv", lambda uv, args, log: subprocess.CompletedProcess(args, 0, "", dry_run))
    with pytest.raises(installer.InstallFailed, match="never installs torch"):
        installer.plan("uv", "python", "pins.txt", "faiss-cpu", ["faiss-cpu==1.9.0"], [], None, [])
    monkeypatch.setattr(installer, "run_uv", lambda uv, args, log: subprocess.CompletedProcess(
        args, 0, "", " + faiss-cpu==1.9.0\n + numpy==2.0.0\n"))
    planned = installer.plan("uv", "python", "pins.txt", "faiss-cpu", ["faiss-cpu==1.9.0"], [], None, [])
    assert [p.spec for p in planned] == ["faiss-cpu==1.9.0", "numpy==2.0.0"]


def test_the_table_names_the_process_tree_as_compare_does():
    from memharness.bisect import render
    from memharness.results.figures import TREE

    assert render.TREE == TREE

