"""The GPU-host job scripts (README "GPU hosts"): `gpu_poll.sh` fetches each packed run once and shows the
running cell's last progress line; `gpu_stop.sh` stops a `gpu_session.sh` job by the process group it
recorded (a `pgrep -f` pattern there matched the calling command itself)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _poll(work: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_poll.sh"), str(work), str(limit), str(out)],
                          capture_output=True, text=True, timeout=120)


def test_poll_returns_with_a_packed_run_once_and_the_last_progress_line(tmp_path: Path) -> None:
    work = tmp_path / "gw"
    (work / "out").mkdir(parents=True)
    (work / "times.txt").write_text("cell-a-1M start 2026-12-07T17:07:34Z\n")
    (work / "log").write_text("run folder: results/x\n[1/1] a__1M__r0: cell 60.1 s RSS 9000 MiB\n"
                              "[1/1] a__1M__r0: cell 120.2 s RSS 12000 MiB\n")
    (work / "out" / "a-500k.run.tar.xz").write_bytes(b"packed")
    (work / "out" / "b-1M.run.tar.xz.part").write_bytes(b"half")  # being written: never fetched
    first = _poll(work, tmp_path / "o1", 100)  # a packed run not fetched yet: returns at once
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["a-500k.run.tar.xz", "log-tail.txt",
                                                                  "times.txt"]
    assert "JOB RUNNING" in first.stdout
    assert first.stdout.rstrip().splitlines()[-1] == "[1/1] a__1M__r0: cell 120.2 s RSS 12000 MiB"
    second = _poll(work, tmp_path / "o2", 1)  # nothing new: waits out its 1 s limit, fetches nothing again
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["log-tail.txt", "times.txt"]
    assert second.returncode == 0


def test_poll_waits_for_a_run_not_for_the_extensions_and_fetches_them_with_it(tmp_path: Path) -> None:
    work = tmp_path / "gw"
    (work / "out").mkdir(parents=True)
    (work / "times.txt").write_text("cell-a-1M start 2026-12-07T17:07:34Z\n")
    (work / "log").write_text("")
    (work / "out" / "torch-extensions.tar.xz").write_bytes(b"compiled")
    alone = _poll(work, tmp_path / "o1", 1)  # extensions alone: no early return, waits out its limit
    assert "torch-extensions.tar.xz" in {p.name for p in (tmp_path / "o1").iterdir()}
    assert "JOB RUNNING" in alone.stdout
    (work / "out" / "a-1M.run.tar.xz").write_bytes(b"packed")
    (work / "done").touch()
    after = _poll(work, tmp_path / "o2", 100)
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["a-1M.run.tar.xz", "log-tail.txt", "times.txt"]
    assert "JOB DONE" in after.stdout


def _extensions(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_extensions.sh"), *args], capture_output=True,
                          text=True, timeout=120)


def test_extensions_pack_once_without_locks_and_unpack_only_into_a_new_folder(tmp_path: Path) -> None:
    ext = tmp_path / "cache" / "torch_extensions"
    (ext / "packbits_cpp").mkdir(parents=True)
    (ext / "packbits_cpp" / "packbits_cpp.so").write_bytes(b"compiled")
    (ext / "packbits_cpp" / "build.ninja").write_text("rule cxx\n")
    (ext / "packbits_cpp" / "lock").write_text("")  # a build in progress: must not travel
    tarball = tmp_path / "out" / "torch-extensions.tar.xz"
    tarball.parent.mkdir()
    packed = _extensions("pack", str(ext), str(tarball))
    assert packed.returncode == 0 and tarball.is_file(), packed.stderr
    assert not list(tarball.parent.glob("*.part"))
    first = tarball.stat().st_mtime_ns
    assert _extensions("pack", str(ext), str(tarball)).stdout == ""  # once per job: the second is a no-op
    assert tarball.stat().st_mtime_ns == first

    fresh = tmp_path / "fresh" / "ext"
    unpacked = _extensions("unpack", str(tarball), str(fresh))
    assert unpacked.returncode == 0, unpacked.stderr
    assert sorted(p.name for p in (fresh / "packbits_cpp").iterdir()) == ["build.ninja", "packbits_cpp.so"]
    assert (fresh / "packbits_cpp" / "packbits_cpp.so").read_bytes() == b"compiled"
    (fresh / "packbits_cpp" / "packbits_cpp.so").write_bytes(b"rebuilt here")
    again = _extensions("unpack", str(tarball), str(fresh))  # a folder already there is left as it is
    assert again.returncode == 0 and again.stdout == ""
    assert (fresh / "packbits_cpp" / "packbits_cpp.so").read_bytes() == b"rebuilt here"
    none = _extensions("unpack", str(tmp_path / "absent.tar.xz"), str(tmp_path / "other"))
    assert none.returncode == 0 and not (tmp_path / "other").exists()
    assert _extensions("bogus").returncode == 2


def test_stop_ends_the_jobs_whole_process_group(tmp_path: Path) -> None:
    work = tmp_path / "gw"
    work.mkdir()
    leader = subprocess.Popen(["bash", "-c", f'echo $$ > {work}/pid; sleep 300 & sleep 301 & wait'],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(psutil.Process(leader.pid).children()) < 2:
        time.sleep(0.05)  # polling for the event (both sleepers started) with a deadline
    sleepers = psutil.Process(leader.pid).children()
    assert len(sleepers) == 2
    stop = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_stop.sh"), str(work)], capture_output=True,
                          text=True, timeout=120)
    assert stop.returncode == 0 and stop.stdout.strip() == f"job {leader.pid}: stopped", stop.stdout + stop.stderr
    leader.wait(timeout=60)
    gone, alive = psutil.wait_procs(sleepers, timeout=60)
    assert not alive
    again = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_stop.sh"), str(work)], capture_output=True,
                           text=True, timeout=60)
    assert again.stdout.strip() == f"job {leader.pid}: already ended"
