"""jsonargparse's parser errors, said in one line: the option's full key, what was wrong, and
what was expected.

jsonargparse explains a value it cannot parse as a tree, one level per union and per
``class_path`` it tried (8-18 lines for a typo in a nested option), e.g.::

    Parser key "model":
      Does not validate against any of the Union subtypes
      Subtypes: [<class '...LightningModule'>, <class 'NoneType'>]
      Errors:
        - Problem with given class_path 'ram_lightning.AttentionClassifier':
            Parser key "hidden_size":
              Expected a <class 'int'>. Got value: x
        - Expected a <class 'NoneType'>
      ...

:func:`summarise_parser_error` keeps the deepest problem of that tree (the one closest to what
the user wrote) and the path of keys above it, here ``model.init_args.hidden_size: expected
int, got 'x'``. A message without that structure (``unrecognized arguments: ...``) is kept as
its first line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

_KEY = re.compile(r'^Parser key "(?P<key>[^"]+)":$')
_CLASS_PATH = re.compile(r"^Problem with given class_path '(?P<class_path>[^']+)':$")
_EXPECTED = re.compile(r"^Expected an? (?P<type>.+?)(?:\. Got value: (?P<value>.*))?$")
_NOT_ACCEPTED = re.compile(r"^Option '(?P<option>[^']+)' is not accepted$")
_IMPORT = re.compile(r"^(No module named .*|module '.*' has no attribute .*)$")
_NOISE = ("Does not validate against any of the Union subtypes", "Errors:", "Given value type:", "Expected a path but ")
_NONE = ("<class 'NoneType'>", "NoneType")


@dataclass
class _Node:
    """A ``Parser key`` or a ``class_path`` level of the message, at its indentation."""

    indent: int
    key: Optional[str] = None  # a Parser key level
    class_path: Optional[str] = None  # a class_path level
    subtypes: Optional[str] = None
    given: Optional[str] = None


@dataclass
class _Leaf:
    """One problem of the message and the levels above it."""

    text: str
    path: List[_Node] = field(default_factory=list)


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``; ``<class 'a.b.Estimator'>`` -> ``a subclass of Estimator``;
    ``list[a.b.Callback]`` -> ``list[Callback]``; a Literal -> ``one of`` its values."""
    text = text.strip()
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return f"one of {literal.group(1)}"
    match = re.fullmatch(r"<class '([\w.]+)'>", text)
    if match:
        name = match.group(1)
        if name == "NoneType":
            return "null"
        if "." not in name:
            return name
        if name.startswith("collections.abc."):
            return name.rpartition(".")[2]
        return f"a subclass of {name.rpartition('.')[2]}"
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", text)  # module paths off: typing.Sequence[float] -> Sequence[float]


def _join(names: List[str]) -> str:
    """``a or b``; the values of several Literals as one list (``one of 64, 32, '16-mixed'``)."""
    values = [name[len("one of "):] for name in names if name.startswith("one of ")]
    others = [name for name in names if not name.startswith("one of ")]
    if values:
        others.insert(0, "one of " + ", ".join(values))
    return " or ".join(others)


def _split_types(subtypes: str) -> List[str]:
    """The items of ``[A, B[C, D], E]`` at the top level of brackets."""
    inner = subtypes.strip()[1:-1]
    items, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            items.append(inner[start:index])
            start = index + 1
    items.append(inner[start:])
    return [item.strip() for item in items if item.strip()]


def _expected(node: Optional[_Node], leaves: List[_Leaf]) -> str:
    """What the option accepts: its union's subtypes, else the types the leaves expected."""
    if node is not None and node.subtypes:
        names = [_type_name(t) for t in _split_types(node.subtypes)]
    else:
        names = [_type_name(m.group("type")) for m in (_EXPECTED.match(leaf.text) for leaf in leaves) if m]
    names = [name for name in dict.fromkeys(names) if name != "null"] or names[:1]
    return _join(names)


def _option_key(path: List[_Node]) -> str:
    """``model`` / class_path / ``hidden_size`` -> ``model.init_args.hidden_size``; a class_path last -> ``.class_path``."""
    parts = []
    for index, node in enumerate(path):
        if node.key is not None:
            parts.append(node.key)
        elif parts:
            parts.append("init_args" if index + 1 < len(path) else "class_path")
    return ".".join(parts)


def _parse(message: str) -> List[_Leaf]:
    """Every problem of the message with the levels above it."""
    stack: List[_Node] = []
    leaves: List[_Leaf] = []
    for raw in message.splitlines():
        if not raw.strip():
            continue
        text = raw.lstrip(" ")
        indent = len(raw) - len(text)
        if text.startswith("- "):
            text, indent = text[2:], indent + 2
        while stack and stack[-1].indent >= indent:
            stack.pop()
        key, class_path = _KEY.match(text), _CLASS_PATH.match(text)
        if key or class_path:
            stack.append(_Node(indent, key=key and key.group("key"), class_path=class_path and class_path.group("class_path")))
            continue
        holder = next((node for node in reversed(stack) if node.key is not None), None)
        if text.startswith("Subtypes: ") and holder is not None:
            holder.subtypes = text[len("Subtypes: "):]
        elif text.startswith("Given value: ") and holder is not None:
            holder.given = text[len("Given value: "):]
        elif not text.startswith(_NOISE):
            leaves.append(_Leaf(text, list(stack)))
    return leaves


def _deepest(leaves: List[_Leaf]) -> List[_Leaf]:
    """The leaves of the deepest level, without 'Expected a NoneType' unless that is all there is."""
    depth = max(len(leaf.path) for leaf in leaves)
    deepest = [leaf for leaf in leaves if len(leaf.path) == depth]
    useful = [leaf for leaf in deepest if not any(leaf.text.endswith(none) for none in _NONE)]
    return useful or deepest


def summarise_parser_error(message: str) -> str:
    """One line for a jsonargparse error message; see the module docstring."""
    lines = [line for line in message.splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    leaves = _parse(message)
    if not leaves or not any(leaf.path for leaf in leaves):
        key = _KEY.match(lines[0].strip())
        if key and len(lines) > 1:  # e.g. only "Expected a path but ..." under the key
            return f"{key.group('key')}: {' '.join(lines[1].strip().lstrip('- ').split())}"
        return " ".join(lines[0].split())
    chosen = _deepest(leaves)
    leaf = chosen[0]
    key = _option_key(leaf.path)
    holder = next((node for node in reversed(leaf.path) if node.key is not None), None)
    parent = leaf.path[-1] if leaf.path else None
    not_accepted = _NOT_ACCEPTED.match(leaf.text)
    if not_accepted and parent is not None and parent.class_path:
        key = _option_key(leaf.path[:-1] + [_Node(0, key="init_args"), _Node(0, key=not_accepted.group("option"))])
        return f"{key}: not an option of {parent.class_path}"
    expected = _EXPECTED.match(leaf.text)
    if expected:
        got = expected.group("value") if expected.group("value") is not None else (holder.given if holder else None)
        # a holder of an intermediate level (a class_path's own key) describes other types
        wanted = _expected(holder if holder is not None and holder is leaf.path[-1] else None, chosen)
        return f"{key}: expected {wanted}" + (f", got {got!r}" if got is not None else "")
    problem = leaf.text
    if _IMPORT.match(leaf.text) and parent is not None and parent.class_path:
        problem = f"cannot import {parent.class_path!r} ({leaf.text})"
    wanted = _expected(holder, []) if holder is not None and holder.subtypes else ""
    return f"{key}: {problem}" + (f"; expected {wanted}" if wanted else "")
