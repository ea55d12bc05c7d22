"""Loading scenario files: YAML composed into nodes (for line numbers), then validated by the schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from memharness.scenario.errors import Loc, ScenarioError, ScenarioIssue, describe, format_path, translate
from memharness.scenario.schema import Scenario

MERGE_KEY = "<<"
MAX_EXPANDED_VALUES = 20_000  # keys, values and list items (aliases expanded); scenarios hold hundreds


def load(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file; raises `ScenarioError` listing every problem found."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(filename, [ScenarioIssue("", None, "file not found")]) from None
    except IsADirectoryError:
        raise ScenarioError(
            filename, [ScenarioIssue("", None, "is a directory, not a scenario file")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            filename, [ScenarioIssue("", None, f"not a UTF-8 text file (byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise ScenarioError(filename, [ScenarioIssue("", None, f"cannot read: {exc.strerror}")]) from None
    return load_text(text, filename)


def load_text(text: str, filename: str = "<string>") -> Scenario:
    """Validate scenario YAML given as text; `filename` is only used in messages."""
    data, lines = parse_yaml(text, filename)
    return validate(data, lines, filename)


def validate(data: Any, lines: dict[Loc, int], filename: str) -> Scenario:
    """Validate parsed YAML data, placing each error at the line `lines` maps its field path to."""
    if not isinstance(data, dict):
        raise ScenarioError(
            filename,
            [
                ScenarioIssue(
                    "", lines.get((), 1), f"expected a mapping of scenario fields, got {describe(data)}"
                )
            ],
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        issues = [
            ScenarioIssue(format_path(loc), line_of(lines, loc), msg) for loc, msg in translate(exc, Scenario)
        ]
        issues.sort(key=lambda issue: issue.line or 0)
        raise ScenarioError(filename, issues) from None


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """Line of `loc`, or of its nearest enclosing field present in the file (a missing key's mapping)."""
    loc = tuple(loc)
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


class _TooManyValues(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _CountingLoader(yaml.SafeLoader):
    """A SafeLoader that stops composing once the file itself (aliases not expanded) holds more than
    MAX_EXPANDED_VALUES values: a huge plain file is refused after reading that many, not after all of it
    (300,000 option keys took 51 s and 594 MB to compose)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            self.composed += 1
            if self.composed > MAX_EXPANDED_VALUES:
                raise _TooManyValues(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def parse_yaml(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    """(plain data, {field path: 1-based line}); YAML errors, duplicate keys, empty files and files holding
    more than MAX_EXPANDED_VALUES values (written out, or once aliases are expanded) raise."""
    loader = _CountingLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
            raise ScenarioError(filename, [ScenarioIssue("", None, "file is empty")])
        expansion = _alias_expansion_issue(loader, node)
        if expansion is not None:
            raise ScenarioError(filename, [expansion])
        duplicates = _duplicate_keys(loader, node, ())
        if duplicates:
            raise ScenarioError(filename, duplicates)
        data = loader.construct_document(node)
        lines: dict[Loc, int] = {}
        _map_lines(loader, node, (), lines, set())
        return data, lines
    except _TooManyValues as exc:
        raise ScenarioError(filename, [ScenarioIssue(
            "", exc.line, f"the file holds more than {MAX_EXPANDED_VALUES} values (keys, values and list items); "
                          f"a scenario holds hundreds: is this the right file?")]) from None
    except yaml.MarkedYAMLError as exc:
        raise ScenarioError(filename, [_yaml_issue(exc)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(filename, [ScenarioIssue("", None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[tuple[yaml.Node | None, yaml.Node]]:
    """(key node or None, child node) of a composed node; a mapping's keys count as children too."""
    if isinstance(node, yaml.MappingNode):
        return [pair for k, v in node.value for pair in ((None, k), (k, v))]
    if isinstance(node, yaml.SequenceNode):
        return [(None, item) for item in node.value]
    return []


def _alias_expansion_issue(loader: yaml.SafeLoader, root: yaml.Node) -> ScenarioIssue | None:
    """Refuse an alias that refers to itself, or aliases that expand the document past MAX_EXPANDED_VALUES.

    PyYAML composes an alias as a second reference to the anchored node, so a 600-byte file of nested
    `&a [*a, *a, ...]` is a small graph that every tree walk (line mapping, validation, JSON) expands into
    billions of values. The expanded size is counted here once per distinct node, in time linear in the file.
    """
    sizes: dict[int, int] = {}
    refs: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative depth-first walk: a deep nesting must not hit Python's recursion limit
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for _, child in _children(node))
            continue
        refs[key] = refs.get(key, 0) + 1
        if key in sizes:
            continue
        if key in on_path:
            return ScenarioIssue("", node.start_mark.line + 1,
                                 "a YAML alias refers to the value that contains it (a recursive alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for _, child in reversed(_children(node)))
    if sizes[id(root)] <= MAX_EXPANDED_VALUES:
        return None
    # Name the outermost value written in the file that its aliases blow up: walk down the largest child
    # while it is not itself the target of an alias.
    node, path, line = root, (), root.start_mark.line + 1
    while True:
        pairs = [(k, c) for k, c in _children(node) if k is not None or isinstance(node, yaml.SequenceNode)]
        if not pairs:
            break
        index, (key_node, child) = max(enumerate(pairs), key=lambda p: sizes[id(p[1][1])])
        if sizes[id(child)] <= MAX_EXPANDED_VALUES or refs[id(child)] > 1:
            break  # `node` is the value whose aliases expand past the bound
        path = (*path, _key(loader, key_node) if key_node is not None else index)
        line = (key_node or child).start_mark.line + 1
        node = child
    return ScenarioIssue(
        format_path(path), line,
        f"YAML aliases expand this to more than {MAX_EXPANDED_VALUES} values (an alias bomb?); "
        f"a scenario may hold at most {MAX_EXPANDED_VALUES} values once its aliases are expanded",
    )


def _yaml_issue(exc: yaml.MarkedYAMLError) -> ScenarioIssue:
    """PyYAML's "while parsing X ... expected Y" as one line, at the line of the problem."""
    mark = exc.problem_mark or exc.context_mark
    context = exc.context or ""
    if context and exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
        context += f" on line {exc.context_mark.line + 1}"
    message = ", ".join(part for part in (context, exc.problem or "") if part)
    return ScenarioIssue("", mark.line + 1 if mark is not None else None, f"invalid YAML: {message}")


def _key(loader: yaml.SafeLoader, key_node: yaml.Node) -> Any:
    """The key as the constructed data holds it (so int keys match pydantic's locations)."""
    if isinstance(key_node, yaml.ScalarNode):
        try:
            return loader.construct_object(key_node)
        except yaml.YAMLError:
            return key_node.value
    return f"<{key_node.id}>"


def _duplicate_keys(
    loader: yaml.SafeLoader, node: yaml.Node, path: Loc, stack: frozenset = frozenset()
) -> list:
    if id(node) in stack:
        return []
    stack = stack | {id(node)}
    issues: list[ScenarioIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key == MERGE_KEY:
                continue
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: the constructor reports it
                continue
            if first is not None:
                issues.append(
                    ScenarioIssue(format_path((*path, key)), line, f"duplicate key (first on line {first})")
                )
            else:
                seen[key] = line
            issues += _duplicate_keys(loader, value_node, (*path, key), stack)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues += _duplicate_keys(loader, item, (*path, i), stack)
    return issues


def _map_lines(
    loader: yaml.SafeLoader, node: yaml.Node, path: Loc, lines: dict[Loc, int], stack: set[int]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in stack:
        return
    stack.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _key(loader, key_node)
            try:
                lines[(*path, key)] = key_node.start_mark.line + 1
            except TypeError:
                continue
            if not isinstance(key, str):  # errors name such keys by their text
                lines.setdefault((*path, str(key)), key_node.start_mark.line + 1)
            _map_lines(loader, value_node, (*path, key), lines, stack)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _map_lines(loader, item, (*path, i), lines, stack)
    stack.discard(id(node))
