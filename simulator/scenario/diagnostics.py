"""Where a problem is in a YAML file, and what it means in words an author can act on.

Pydantic's validation errors are turned into :class:`Problem` s with the 1-based line and
column of the field in the file (or its nearest existing parent).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from simulator.scenario.models import ABSOLUTE_PATH, DOTTED, FAULT_NAME, SETUP_ACTIONS, SLUG, STEP_TAGS, VAR_NAME
from simulator.scenario.problems import FieldProblems, Problem, did_you_mean, format_path, show_value


def _unwrap(tp: Any) -> list[Any]:
    """The BaseModel classes and containers reachable from a type annotation."""
    args = get_args(tp)
    origin = getattr(tp, "__origin__", None)
    if origin is Annotated:
        return _unwrap(args[0])
    if args and origin not in (list, dict, tuple):
        return [t for arg in args for t in _unwrap(arg)]
    return [tp]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose field ``loc[-1]`` is (best effort, for did-you-mean)."""
    current: list[Any] = [model]
    for part in loc[:-1]:
        if part in STEP_TAGS:
            current = [STEP_TAGS[part]]
            continue
        nxt: list[Any] = []
        for tp in current:
            origin = getattr(tp, "__origin__", None)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                for name, info in tp.model_fields.items():
                    if part in (name, info.alias):
                        nxt += _unwrap(info.annotation)
            elif origin is list and isinstance(part, int):
                nxt += _unwrap(get_args(tp)[0])
            elif origin is dict and isinstance(part, str):
                nxt += _unwrap(get_args(tp)[1])
        current = nxt
    models = [t for t in current if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def _humanize(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        model = _model_at(root, err["loc"])
        key = err["loc"][-1]
        if model is None:
            return f"unknown field {key!r}"
        known = [info.alias or name for name, info in model.model_fields.items()]
        return f"unknown field {key!r}" + (did_you_mean(key, known)
                                           or f"; expected one of: {', '.join(known)}")
    if kind == "setup_step":
        if not isinstance(value, Mapping):
            return f"expected a setup step (a mapping like `run: ...`), got {show_value(value)}"
        given = [k for k in SETUP_ACTIONS if k in value]
        if len(given) > 1:
            return f"a setup step does one thing; this one has {', '.join(given)}: split it into steps"
        guess = "".join(did_you_mean(k, SETUP_ACTIONS) for k in value if k != "node")[:80]
        return "a setup step needs exactly one of apply, snapshot, fault, run, file or record" + guess
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {show_value(value)}" + did_you_mean(value, re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        what = {
            SLUG: "a slug like etcd-backup (lowercase letters, digits and dashes, 2-63 characters)",
            VAR_NAME: "a var name like backup_file (lowercase letters, digits, underscores)",
            DOTTED: "a checker name like snapshot.valid or script",
            FAULT_NAME: "a fault name like delete-namespace",
            ABSOLUTE_PATH: "an absolute path like /opt/backup/etcd.db (or {{ var }}/... where the var's values are)",
        }.get(pattern, f"text matching {pattern}")
        return f"expected {what}, got {show_value(value)}"
    simple = {
        "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
        "int_from_float": "a whole number", "bool_type": "true or false", "bool_parsing": "true or false",
        "list_type": "a list", "tuple_type": "a list [lo, hi]", "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
        "float_type": "a number", "float_parsing": "a number",
    }
    if kind in simple:
        return f"expected {simple[kind]}, got {show_value(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {op} {bound}, got {show_value(value)}"
    if kind == "too_short":
        if ctx.get("min_length") == 1 and isinstance(value, list | dict):
            return "expected at least one item, got none"
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return err["msg"]
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def walk(root: yaml.Node, loc: tuple[str | int, ...], *, key: bool = False
          ) -> tuple[yaml.Node, list[str | int]]:
    """The YAML node for ``loc`` (or its nearest existing parent) and the matched path.

    ``key`` prefers the key node of the last mapping entry (for unknown fields).
    """
    node, anchor, path = root, root, []
    last_key: yaml.Node | None = None
    for part in loc:
        if part in STEP_TAGS:
            continue
        if part == "[key]":
            anchor = last_key or anchor
            continue
        found = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    found = (k, v)
            if found:
                last_key, node = found
                anchor = node if isinstance(node, yaml.ScalarNode) else last_key
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            found = (None, node.value[part])
            node = anchor = node.value[part]
        if found:
            path.append(part)
    if key and last_key is not None and path and path[-1] == loc[-1]:
        anchor = last_key
    return anchor, path


def locate(path: Path | str, loc: tuple[str | int, ...]) -> tuple[int | None, int | None]:
    """1-based (line, column) of field ``loc`` in a YAML file, or its nearest parent."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None, None
    if root is None:
        return None, None
    node, _ = walk(root, loc)
    return node.start_mark.line + 1, node.start_mark.column + 1


def duplicate_keys(node: yaml.Node, loc: tuple[str | int, ...], file: str,
                seen: set[int]) -> Iterator[Problem]:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in first:
                    line = first[k.value].start_mark.line + 1
                    yield Problem(file, k.start_mark.line + 1, k.start_mark.column + 1,
                                  format_path((*loc, k.value)),
                                  f"duplicate key {k.value!r} (first at line {line}); "
                                  "YAML would silently keep only the last one")
                first.setdefault(k.value, k)
            yield from duplicate_keys(v, (*loc, k.value if isinstance(k, yaml.ScalarNode) else "?"), file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from duplicate_keys(item, (*loc, i), file, seen)


def validation_problems(exc: ValidationError, model: type[BaseModel], root: yaml.Node,
                         file: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        cross = (err.get("ctx") or {}).get("error")
        items = ([((*err["loc"], *loc), msg) for loc, msg in cross.items]
                 if isinstance(cross, FieldProblems) else [(err["loc"], _humanize(err, model))])
        for loc, message in items:
            node, path = walk(root, loc, key=err["type"] == "extra_forbidden")
            clean = [p for p in loc if p not in STEP_TAGS and p != "[key]"]
            if err["type"] == "missing" or path == clean[:-1]:
                path = clean
            problems.append(Problem(file, node.start_mark.line + 1, node.start_mark.column + 1,
                                    format_path(tuple(path)), message))
    return problems

