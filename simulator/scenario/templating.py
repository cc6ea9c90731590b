"""``{{ var }}`` templating: plain placeholders substituted per attempt, nothing else.

Vars are drawn from a recorded seed, so an attempt can be replayed with the same values.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from simulator.errors import ScenarioError

if TYPE_CHECKING:
    from simulator.scenario.models import Scenario

# Words inside {{ }} that belong to Go templates (kubectl -o go-template=...) and are
# therefore never placeholders; a var cannot take these names.
RESERVED_NAMES = frozenset({"end", "else", "break", "continue", "nil"})
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
EXPRESSION = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*\|(?!\|)|\.[A-Za-z_]|\()")
SAFE_WORD = re.compile(r"^[A-Za-z0-9._/:@+=,-]+$")
NODE_MARK = re.compile(r"^#\s*on node\s+(\S+)\s*$", re.MULTILINE)
"""A line ``# on node NAME`` in a solution: the rest of the script runs on node NAME."""


TEMPLATED_FIELDS = ("task", "hints", "setup", "checks", "explanation", "solution", "alternatives",
                    "wrong_solutions")


def placeholders(text: str) -> list[str]:
    """Names of the ``{{ name }}`` placeholders in ``text`` (Go-template words excluded)."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1) not in RESERVED_NAMES]


def render(obj: Any, values: Mapping[str, Any]) -> Any:
    """``obj`` with ``{{ name }}`` replaced by ``values[name]`` in every string it holds.

    Lists, tuples and dict values are walked (dict keys are not). A string that is exactly one
    placeholder becomes the value itself (an int stays an int); otherwise the value is
    inserted as text. No expressions, filters or code: anything else in braces stays as is.
    Raises ScenarioError for a name missing from ``values``.
    """
    if isinstance(obj, str):
        whole = PLACEHOLDER.fullmatch(obj.strip())
        if whole and whole.group(1) not in RESERVED_NAMES:
            return _value(whole.group(1), values)

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) in RESERVED_NAMES:
                return match.group(0)
            return str(_value(match.group(1), values))

        return PLACEHOLDER.sub(substitute, obj)
    if isinstance(obj, list | tuple):
        return type(obj)(render(item, values) for item in obj)
    if isinstance(obj, dict):
        return {key: render(item, values) for key, item in obj.items()}
    return obj


def _value(name: str, values: Mapping[str, Any]) -> Any:
    try:
        return values[name]
    except KeyError:
        raise ScenarioError(f"template uses {{{{ {name} }}}} but no value was given for it",
                            hint=f"known values: {', '.join(sorted(values)) or 'none'}") from None


def draw_vars(scenario: Scenario, seed: int) -> dict[str, Any]:
    """One value per var, drawn deterministically from ``seed`` in sorted var-name order;
    vars read from the cluster (``node_ip``) are left out and take nothing from the draw."""
    rng = random.Random(seed)
    return {name: scenario.vars[name].draw(rng) for name in sorted(scenario.vars)
            if not scenario.vars[name].from_cluster}


def new_seed() -> int:
    """A fresh seed for an attempt (record it to replay the same values)."""
    return secrets.randbelow(2**31)


def strings_at(obj: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(obj, str):
        yield loc, obj
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from strings_at(item, (*loc, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from strings_at(item, (*loc, key))


def is_templated(loc: tuple[str | int, ...]) -> bool:
    if not loc or loc[0] not in TEMPLATED_FIELDS:
        return False
    if loc[0] == "checks":
        return len(loc) > 2 and loc[2] in ("name", "with", "requires")
    return True


def is_script(loc: tuple[str | int, ...]) -> bool:
    return (loc == ("solution",)
            or (loc[0] in ("alternatives", "wrong_solutions") and loc[2:] == ("script",)))

