"""`kind: callable` pipelines whose `function` names something that cannot be called: preflight (the probe)
and the cell say what it is rather than that it does not exist."""

from __future__ import annotations

import sys

import pytest

from memharness.pipelines.callable import load_function
from memharness.runner.probe import probe


@pytest.fixture()
def module_dir(tmp_path, monkeypatch):
    (tmp_path / "edge_mod.py").write_text("not_callable = 3\nlabel = 'x'\n\ndef index(ids, texts, options, workdir):\n"
                                          "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("edge_mod", None)


@pytest.mark.parametrize("name, message", [
    ("not_callable", "edge_mod.not_callable is an int, not callable"),
    ("label", "edge_mod.label is a str, not callable"),
    ("nothing_here", "edge_mod has no function 'nothing_here'"),
])
def test_function_that_is_not_callable_is_named_for_what_it_is(module_dir, name, message):
    with pytest.raises(ValueError) as info:
        load_function(f"edge_mod:{name}")
    assert str(info.value) == message
    result = probe({"kind": "callable", "options": {"function": f"edge_mod:{name}"}, "sys_path": [str(module_dir)]})
    assert not result["ok"]
    assert [e["message"] for e in result["errors"]] == [f"target 'edge_mod:{name}': {message}"]


def test_callable_function_loads(module_dir):
    assert load_function("edge_mod:index").__name__ == "index"
