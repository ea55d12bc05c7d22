"""Resolving and wrapping dotted paths without editing the library's source."""

from __future__ import annotations

import sys
import textwrap

import pytest

from memharness.core.records import read_calls
from memharness.core.session import Session
from memharness.core.targets import TargetError, resolve

LIB = '''
LIMIT = 3

def helper(x):
    return x + 1

class Base:
    def shared(self):
        return "base"

class Indexer(Base):
    batch = 8

    def index(self, n):
        return self.__sample(n) + self._single(n) + Indexer.make(n) + Indexer.fixed(n)

    def __sample(self, n):
        return helper(n)

    def _single(self, n):
        return 0

    @classmethod
    def make(cls, n):
        return 0

    @staticmethod
    def fixed(n):
        return 0

    class Inner:
        def deep(self):
            return 1
'''

USER = '''
from fakelib.core import helper

def use(n):
    return helper(n)
'''


@pytest.fixture()
def fakelib(tmp_path, monkeypatch):
    pkg = tmp_path / "fakelib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(textwrap.dedent(LIB))
    (pkg / "user.py").write_text(textwrap.dedent(USER))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m.startswith("fakelib")]:
        del sys.modules[name]


ALL = [
    "fakelib.core.Indexer.index",
    "fakelib.core.Indexer.__sample",
    "fakelib.core.Indexer._single",
    "fakelib.core.Indexer.make",
    "fakelib.core.Indexer.fixed",
    "fakelib.core.Indexer.Inner.deep",
    "fakelib.core.helper",
]


def test_resolve_kinds(fakelib):
    kinds = {p: resolve(p).kind for p in ALL}
    assert kinds == {
        "fakelib.core.Indexer.index": "method",
        "fakelib.core.Indexer.__sample": "method",
        "fakelib.core.Indexer._single": "method",
        "fakelib.core.Indexer.make": "classmethod",
        "fakelib.core.Indexer.fixed": "staticmethod",
        "fakelib.core.Indexer.Inner.deep": "method",
        "fakelib.core.helper": "function",
    }
    assert resolve("fakelib.core.Indexer.__sample").attrs == ("Indexer", "_Indexer__sample")


def test_wrap_every_kind_record_nesting_and_restore(fakelib, tmp_path):
    import fakelib.core as core
    import fakelib.user as user

    originals = {k: core.Indexer.__dict__[k] for k in ("index", "_Indexer__sample", "_single", "make", "fixed")}
    orig_helper = core.helper
    out = tmp_path / "run"
    with Session(out, ALL, sample_interval=None):
        assert user.helper is not orig_helper  # the `from x import f` re-binding was patched too
        assert core.Indexer().index(1) == 2
        assert user.use(1) == 2
        assert core.Indexer.Inner().deep() == 1
        assert isinstance(core.Indexer.__dict__["fixed"], staticmethod)
        assert isinstance(core.Indexer.__dict__["make"], classmethod)
    for k, v in originals.items():
        assert core.Indexer.__dict__[k] is v
    assert core.helper is orig_helper and user.helper is orig_helper

    calls = read_calls(out)
    names = [c.target for c in calls]
    assert names == [
        "fakelib.core.Indexer.index",
        "fakelib.core.Indexer.__sample",
        "fakelib.core.helper",
        "fakelib.core.Indexer._single",
        "fakelib.core.Indexer.make",
        "fakelib.core.Indexer.fixed",
        "fakelib.core.helper",  # through fakelib.user's re-bound name
        "fakelib.core.Indexer.Inner.deep",
    ]
    depth = {c.target: c.depth for c in calls[:6]}
    assert depth["fakelib.core.Indexer.index"] == 0 and depth["fakelib.core.Indexer.__sample"] == 1
    assert calls[2].parent_id == calls[1].call_id


def test_inherited_method_patched_on_named_class_and_removed_after(fakelib, tmp_path):
    import fakelib.core as core

    with Session(tmp_path, ["fakelib.core.Indexer.shared"], sample_interval=None):
        assert "shared" in core.Indexer.__dict__
        assert core.Indexer().shared() == "base"
    assert "shared" not in core.Indexer.__dict__
    assert [c.target for c in read_calls(tmp_path)] == ["fakelib.core.Indexer.shared"]


def test_exception_recorded_and_reraised(fakelib, tmp_path):
    import fakelib.core as core

    with Session(tmp_path, ["fakelib.core.helper"], sample_interval=None):
        with pytest.raises(TypeError):
            core.helper("x")
    (call,) = read_calls(tmp_path)
    assert call.complete and call.error.startswith("TypeError: ")


@pytest.mark.parametrize(
    "path, message",
    [
        ("fakelib.core.Indexer.indx",
         "target 'fakelib.core.Indexer.indx': fakelib.core.Indexer has no attribute 'indx'; closest: index"),
        ("fakelib.core.Indexer.__sampel",
         "target 'fakelib.core.Indexer.__sampel': fakelib.core.Indexer has no attribute '__sampel'; "
         "closest: __sample"),
        ("fakelib.cor.helper",
         "target 'fakelib.cor.helper': fakelib has no attribute 'cor'; closest: core"),
        ("nosuchlib_xyz.mod.f",
         "target 'nosuchlib_xyz.mod.f': no importable module in the path (module 'nosuchlib_xyz' not found)"),
        ("fakelbi.core.helper",
         "target 'fakelbi.core.helper': no importable module in the path (module 'fakelbi' not found; "
         "closest: fakelib)"),
        ("fakelib.core.LIMIT", "target 'fakelib.core.LIMIT': is an int, not a function"),
        ("fakelib.core.Indexer.batch", "target 'fakelib.core.Indexer.batch': is an int, not a function or method"),
        ("fakelib.core.Base", "target 'fakelib.core.Base': is a type, not a function"),
        ("fakelib", "target 'fakelib': not a dotted path of identifiers like pkg.module.Class.method"),
    ],
)
def test_unresolvable_paths_name_the_closest(fakelib, tmp_path, path, message):
    with pytest.raises(TargetError) as err:
        resolve(path)
    assert str(err.value) == message


def test_bad_target_fails_before_any_work(fakelib, tmp_path):
    import fakelib.core as core

    orig = core.helper
    with pytest.raises(TargetError):
        Session(tmp_path, ["fakelib.core.helper", "fakelib.core.nothere"], sample_interval=None).start()
    assert core.helper is orig
    assert not (tmp_path / "calls").exists()


def test_missing_optional_target_is_reported_not_fatal(fakelib, tmp_path):
    s = Session(tmp_path, ["fakelib.core.helper"], optional_targets=["fakelib.core.gone"], sample_interval=None)
    with s:
        pass
    assert s.missing == [{"path": "fakelib.core.gone",
                          "reason": "fakelib.core has no attribute 'gone'", "default": True}]


def test_file_name_of_a_dotted_path():
    from memharness.core.targets import file_name

    assert file_name("pkg.mod.Class.meth") == "pkg.mod.Class.meth"
    assert file_name("pkg.mod:f<locals>") == "pkg.mod_f_locals_"
    assert file_name("pkg.modé.f") == "pkg.mod_.f"  # ASCII only: the same name on every file system
    assert file_name("..") == "target"
