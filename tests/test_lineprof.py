"""memory_profiler line tables of dotted-path targets: patched where they live, restored after."""

from __future__ import annotations

import functools
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memharness.core.lineprof import LineProfiles

pytestmark = pytest.mark.usefixtures("calibrated")  # see tests/conftest.py

MODULE = textwrap.dedent('''
    import functools

    import numpy as np


    def allocate(n_mib):
        keep = np.ones(n_mib * 131072)  # n_mib MiB of float64, every page written
        total = float(keep.sum())
        return keep, total


    def _tracked(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper


    @_tracked
    def wrapped(n):
        out = [0] * n
        return len(out)


    class Base:
        def inherited(self):
            return "base"


    class Indexer(Base):
        def __launch(self, n):
            block = bytearray(n)
            return len(block)

        def index(self, n):
            return self.__launch(n)

        @classmethod
        def build(cls, n):
            return cls.__name__ * n

        @staticmethod
        def helper(n):
            return n * 2
''')


@pytest.fixture()
def lpmod(tmp_path, monkeypatch):
    name = f"lp_target_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module(name)
    yield mod
    sys.modules.pop(name, None)


def _increment_on(text: str, fragment: str) -> float:
    for line in text.splitlines():
        if fragment in line:
            m = re.match(r"\s*\d+\s+([\d.]+) MiB\s+(-?[\d.]+) MiB\s+(\d+)", line)
            assert m, line
            return float(m.group(2))
    raise AssertionError(f"no line with {fragment!r} in:\n{text}")


def test_increment_matches_allocation_in_a_fresh_process(tmp_path):
    """Run where a measured cell would: a fresh interpreter, so the allocation reaches the OS."""
    (tmp_path / "lp_alloc.py").write_text(MODULE)
    out = tmp_path / "lineprof"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import lp_alloc
        from memharness.core.lineprof import LineProfiles
        lp = LineProfiles(["lp_alloc.allocate"])
        keep, _ = lp_alloc.allocate(120)
        lp.uninstall()
        lp.write({str(out)!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[1])
    text = (out / "lp_alloc.allocate.txt").read_text()
    assert "Line #    Mem usage    Increment  Occurrences   Line Contents" in text
    inc = _increment_on(text, "keep = np.ones(")
    assert 120 * 0.95 <= inc <= 120 * 1.05, text
    assert _increment_on(text, "total = float(") < 5


def test_patches_where_targets_live_and_restores(lpmod, tmp_path):
    name = lpmod.__name__
    before = {k: lpmod.Indexer.__dict__[k] for k in ("_Indexer__launch", "build", "helper")}
    before_fn, before_wrapped = lpmod.allocate, lpmod.wrapped
    lp = LineProfiles([f"{name}.allocate", f"{name}.Indexer.__launch", f"{name}.Indexer.build",
                       f"{name}.Indexer.helper", f"{name}.wrapped", f"{name}.Indexer.inherited", f"{name}.nope"])
    assert set(lp.errors) == {f"{name}.nope"}
    assert isinstance(lpmod.Indexer.__dict__["build"], classmethod)
    assert isinstance(lpmod.Indexer.__dict__["helper"], staticmethod)
    assert lpmod.allocate is not before_fn and "inherited" in lpmod.Indexer.__dict__

    assert lpmod.Indexer().index(1000) == 1000
    assert lpmod.Indexer.build(2) == "IndexerIndexer"
    assert lpmod.Indexer.helper(4) == 8 and lpmod.Indexer().helper(5) == 10
    assert lpmod.wrapped(3) == 3
    assert lpmod.Indexer().inherited() == "base"

    lp.uninstall()
    assert {k: lpmod.Indexer.__dict__[k] for k in before} == before
    assert lpmod.allocate is before_fn and lpmod.wrapped is before_wrapped
    assert "inherited" not in lpmod.Indexer.__dict__  # the base class keeps it; nothing left on the subclass

    files = {p.name: p.read_text() for p in lp.write(tmp_path / "out")}
    assert "block = bytearray(n)" in files[f"{name}.Indexer.__launch.txt"]
    assert "return cls.__name__ * n" in files[f"{name}.Indexer.build.txt"]
    assert "return n * 2" in files[f"{name}.Indexer.helper.txt"]
    # through a functools.wraps wrapper (as the call tracker leaves it) the inner function's lines are traced
    assert "out = [0] * n" in files[f"{name}.wrapped.txt"]
    assert files[f"{name}.allocate.txt"] == f"# {name}.allocate: not called while profiled\n"
    assert files[f"{name}.nope.txt"].startswith(f"# {name}.nope: not profiled: ")
    for text in (files[f"{name}.Indexer.helper.txt"], files[f"{name}.wrapped.txt"]):
        assert "Line #" in text and "Occurrences" in text


def test_stacks_over_an_existing_wrapper_and_unwinds_in_order(lpmod):
    name = lpmod.__name__
    original = lpmod.Indexer.__dict__["index"]

    def tracker(fn):
        @functools.wraps(fn)
        def w(*a, **k):
            return ("tracked", fn(*a, **k))
        return w

    lpmod.Indexer.index = tracker(original)
    tracked = lpmod.Indexer.__dict__["index"]
    with LineProfiles([f"{name}.Indexer.index"]) as lp:
        assert lpmod.Indexer().index(7) == ("tracked", 7)
    assert lpmod.Indexer.__dict__["index"] is tracked
    profiler = next(iter(lp.profilers.values()))
    assert any(True for _ in profiler.code_map.items())  # the original's code was traced, not the wrapper's
