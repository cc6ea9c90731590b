"""Problems found in scenario files, and the small wording helpers every part of the
format uses to report them."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem in a file: where (1-based line and column, if known), which field, what."""

    file: str
    line: int | None
    column: int | None
    field_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f" {self.field_path}:" if self.field_path else ""
        return f"{where}:{field} {self.message}"


def format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show_value(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: Any, options: Any) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``options``, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""



class FieldProblems(ValueError):
    """Several problems found by a cross-field check, each with its own location."""

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{format_path(loc) or '(file)'}: {msg}" for loc, msg in items))
