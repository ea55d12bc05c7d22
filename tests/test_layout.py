"""The package's layout holds: run-folder file names live only in `memharness/names.py`, and the
imports between packages are the ones `docs/layout.md` documents (no loops, no arrow pointing up)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "memharness"
NAMES = PACKAGE / "names.py"

FILE_NAME = re.compile(r"^[\w.*-]*\.(json|jsonl|bin|xz|log|yaml|md|html|png|csv|pickle|txt)$")
# Files of other tools that memharness reads: not part of a run folder.
OTHER_TOOLS = {
    ("corpus/hf.py", "state.json"): "a datasets save_to_disk folder",
    ("corpus/hf.py", "dataset_dict.json"): "a datasets save_to_disk folder",
    ("corpus/vocab.py", "vocab.txt"): "the MiniLM package's tokenizer vocabulary",
    ("models/__init__.py", "memharness-model.json"): "the marker of a built-in model folder (the model cache)",
    ("models/build.py", "vocab.txt"): "a BERT checkpoint's files",
    ("models/build.py", "tokenizer.json"): "a BERT checkpoint's files",
    ("models/build.py", "tokenizer_config.json"): "a BERT checkpoint's files",
    ("models/build.py", "special_tokens_map.json"): "a BERT checkpoint's files",
    ("models/build.py", "config.json"): "a BERT checkpoint's files",
    ("models/build.py", "model.safetensors"): "a BERT checkpoint's files",
    ("pipelines/colbert_setup.py", "metadata.json"): "a ColBERT index's metadata",
    ("drift/artifacts.py", "plan.json"): "a ColBERT index's files",
    ("drift/artifacts.py", "metadata.json"): "a ColBERT index's files",
    ("drift/capture.py", "config.json"): "a Hugging Face model folder",
    ("drift/tiny.py", "config.json"): "a Hugging Face model folder",
    ("core/imports.py", "top_level.txt"): "a distribution's metadata",
    ("corpus/files.py", ".jsonl"): "the file formats a `file` corpus may have",
    ("corpus/files.py", ".csv"): "the file formats a `file` corpus may have",
    ("corpus/files.py", ".txt"): "the file formats a `file` corpus may have",
    ("drift/artifacts.py", ".json"): "the kinds of index artifact `artifacts diff` compares",
    ("commands/run.py", "SCENARIO.yaml"): "a metavar in --help",
    ("commands/bisect.py", "SCENARIO.yaml"): "a metavar in --help",
    ("bisect/versions.py", "index.html"): "a package index's page (PEP 503) in a file:// folder",
    ("corpus/cache.py", ".jsonl"): "the corpus cache (outside run folders)",
    ("corpus/cache.py", ".json"): "the corpus cache (outside run folders)",
    ("runner/preflight.py", ".json"): "a temporary file handed to the probe",
}
FOLDER_WORDS = {"calls", "cells", "work", "report", "explain", "lineprof", "tables", "capture", "rerun"}


def _literals(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, text, why) of string constants that name a file: a file-name shape anywhere, or a run-folder
    word on the right of a `/` path join."""
    found = []
    in_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if id(node) in in_fstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and FILE_NAME.match(node.value):
            found.append((node.lineno, node.value, "file name"))
        elif isinstance(node, ast.JoinedStr):
            tail = node.values[-1] if node.values else None
            if isinstance(tail, ast.Constant) and isinstance(tail.value, str) and re.fullmatch(
                    r"[\w.*-]*\.(json|jsonl|bin|log|png|md|csv|txt|pickle)", tail.value):
                found.append((node.lineno, tail.value, "file name pattern"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and isinstance(right.value, str) and right.value in FOLDER_WORDS:
                found.append((node.lineno, right.value, "path part"))
    return sorted(found)


def test_no_run_folder_file_name_outside_names_py():
    """Every run-folder name comes from names.py: a file renamed there is renamed everywhere."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == NAMES:
            continue
        rel = path.relative_to(PACKAGE).as_posix()
        for line, text, why in _literals(ast.parse(path.read_text(encoding="utf-8"))):
            if (rel, text) in OTHER_TOOLS:
                continue
            offenders.append(f"memharness/{rel}:{line}: {text!r} ({why})")
    assert not offenders, "file-name literals outside names.py:\n" + "\n".join(offenders)


def test_the_literal_finder_finds_what_it_should():
    src = 'p = cell / "status.json"\nq = out / "calls"\nr = f"timeline-{x}.png"\ns = {"calls": 1}\n'
    found = _literals(ast.parse(src))
    assert found == [(1, "status.json", "file name"), (2, "calls", "path part"), (3, ".png", "file name pattern")]


LEAVES = {"errors", "metrics", "names", "numeric"}
ENTRY = {"__init__", "__main__"}  # `import memharness` (lazy API) and `python -m memharness`


def _unit(module: str) -> str:
    """The floor-level unit of a dotted module: `memharness.report.html` -> `report`, the leaves as named."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    return parts[0]


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def import_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> the files that import it (every import statement, nested ones included)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        src = _unit(".".join(rel.parts).removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")]
                found = subs if len(subs) == len(node.names) else [node.module] + subs
            else:
                continue
            for target in found:
                if target == "memharness" or target.startswith("memharness."):
                    dst = _unit(target)
                    if dst != src and dst not in ENTRY:
                        graph.setdefault(src, {}).setdefault(dst, []).append(str(path.relative_to(ROOT)))
    return graph


def documented_floors() -> list[list[str]]:
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    block = text.split("<!-- floors: read by tests/test_layout.py -->", 1)[1].split("```", 2)[1]
    return [line.split() for line in block.strip().splitlines() if line.strip()]


def test_every_import_points_down_the_documented_floors():
    floors = documented_floors()
    floor_of = {unit: i for i, line in enumerate(floors) for unit in line}
    graph = import_graph()
    units = set(graph) | {d for deps in graph.values() for d in deps}
    undocumented = sorted(units - set(floor_of) - LEAVES - ENTRY)
    assert not undocumented, f"packages on no floor of docs/layout.md: {undocumented}"
    wrong = []
    for src, deps in sorted(graph.items()):
        if src in LEAVES or src in ENTRY:
            continue
        for dst, files in sorted(deps.items()):
            if dst in LEAVES:
                continue
            if floor_of[dst] <= floor_of[src]:
                where = "its own floor" if floor_of[dst] == floor_of[src] else "a floor above"
                wrong.append(f"{src} -> {dst} ({where}; {sorted(set(files))[0]})")
    assert not wrong, "imports against docs/layout.md:\n" + "\n".join(wrong)
    for leaf in LEAVES:  # a leaf imports no other memharness module
        assert not (set(graph.get(leaf, {})) - ENTRY), f"{leaf} is documented as a leaf but imports {graph[leaf]}"
    print("floors:", " | ".join(" ".join(line) for line in floors))
    print(f"{sum(len(d) for d in graph.values())} package arrows checked, 0 against the floors")


def test_the_graph_sees_nested_and_from_imports():
    graph = import_graph()
    assert "core" in graph["results"]  # results.run: from memharness.core.records import ...
    assert "explain" in graph["runner"]  # supervisor: imported inside run_cell
    assert "names" in graph["core"] and "results" not in graph["core"]  # the leaf, not the package


def module_graph() -> dict[str, set[str]]:
    """module -> the memharness modules it imports (every import statement, nested ones included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = graph.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                         for a in node.names]
            else:
                continue
            deps.update(t for t in found if t.startswith("memharness.") and t != mod)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_round_a_loop():
    graph = module_graph()
    # a package's __init__ that re-exports its modules is not a loop of code: leave the package nodes out
    packages = {m for m in graph if (ROOT / Path(*m.split("."))).is_dir()}
    graph = {m: {d for d in deps if d not in packages} for m, deps in graph.items() if m not in packages}
    loops = _cycles(graph)
    assert not loops, "modules that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(loop) for loop in loops)
    print(f"{len(graph)} modules, {sum(len(d) for d in graph.values())} module imports, 0 loops")


def test_the_loop_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
