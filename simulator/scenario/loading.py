"""Reading scenario and exam files: YAML safe-load semantics, every problem reported as
``FILE:LINE:COLUMN: field.path: message``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.errors import ScenarioError
from simulator.scenario.diagnostics import duplicate_keys, validation_problems, walk
from simulator.scenario.models import Exam, Scenario
from simulator.scenario.problems import Problem, did_you_mean, show_value

# libyaml parses several times faster than pure Python (it is most of loading the catalog).
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _fast(text: str) -> bool:
    """Whether libyaml may read ``text``: it is there, and the text holds no character the
    pure-Python reader refuses (so both accept the same files)."""
    return _FAST_LOADER is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text)


def _compose(text: str) -> yaml.Node | None:
    """The node tree of ``text``. Errors always come from the pure-Python parser, so their
    messages are the same with or without libyaml."""
    if _fast(text):
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _safe_load(text: str) -> Any:
    """``yaml.safe_load``, through libyaml when it can; errors as from ``_compose``."""
    if _fast(text):
        try:
            return yaml.load(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def _parse(text: str, file: str) -> tuple[Scenario | Exam | None, list[Problem]]:
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = exc.problem or exc.context or "unreadable YAML"
        if exc.context and exc.problem and exc.context_mark:
            detail += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return None, [Problem(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                              "", f"YAML syntax error: {detail}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, None, "", f"YAML syntax error: {exc}")]
    if root is None:
        return None, [Problem(file, 1, 1, "", "the file is empty; expected a scenario "
                                              "(`cka-sim scenario new ID` writes a skeleton)")]
    if not isinstance(root, yaml.MappingNode):
        what = "a list" if isinstance(root, yaml.SequenceNode) else repr(root.value)
        return None, [Problem(file, root.start_mark.line + 1, root.start_mark.column + 1, "",
                              f"expected a mapping of fields (id: ..., title: ...) at the top level, got {what}")]
    problems = list(duplicate_keys(root, (), file, set()))
    try:
        data = _safe_load(text)
    except yaml.YAMLError as exc:  # composed fine but cannot be constructed (e.g. bad !!tag)
        mark = getattr(exc, "problem_mark", None)
        return None, problems + [Problem(file, mark.line + 1 if mark else None,
                                         mark.column + 1 if mark else None, "", f"YAML error: {exc}")]
    kind = data.get("kind", "scenario")
    if kind not in ("scenario", "exam"):
        node, _ = walk(root, ("kind",))
        return None, problems + [Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, "kind",
                                         f"expected scenario or exam, got {show_value(kind)}"
                                         + did_you_mean(kind, ("scenario", "exam")))]
    model: type[Scenario | Exam] = Exam if kind == "exam" else Scenario
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(exc, model, root, file)
        obj = None
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if problems:
        return None, problems
    return obj, []


def _read(path: Path) -> tuple[str | None, list[Problem]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [Problem(str(path), None, None, "", "no such file")]
    except IsADirectoryError:
        return None, [Problem(str(path), None, None, "", "is a directory, expected a .yaml file")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), None, None, "", f"cannot read: {exc}")]


def validate_file(path: Path | str) -> list[Problem]:
    """Every problem in a scenario or exam file; an empty list means it is valid."""
    text, problems = _read(Path(path))
    if text is None:
        return problems
    return _parse(text, str(path))[1]


def loads(text: str, file: str = "<string>") -> Scenario | Exam:
    """A scenario or exam from YAML ``text``; ScenarioError listing every problem otherwise."""
    obj, problems = _parse(text, file)
    if obj is None:
        raise _error(file, problems)
    return obj


def load_file(path: Path | str) -> Scenario | Exam:
    """The scenario or exam in ``path`` (its ``source`` set); ScenarioError listing every problem."""
    path = Path(path)
    text, problems = _read(path)
    if text is None:
        raise _error(str(path), problems)
    obj = loads(text, str(path))
    obj._source = path
    return obj


def _error(file: str, problems: list[Problem]) -> ScenarioError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return ScenarioError(f"{file} is not a valid scenario file ({count})",
                         hint="fix the lines listed; `cka-sim scenario schema` prints the format",
                         problems=[str(p) for p in problems])

