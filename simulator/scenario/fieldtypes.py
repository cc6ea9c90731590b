"""Field types of the scenario format that YAML authors write loosely: durations
(``90s``, ``8m``, ``1h30m``) and file modes (``0644``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

from simulator.scenario.problems import show_value

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> int:
    """Seconds in ``value``: ``90s``, ``8m``, ``1h30m``, ``1h`` or a bare int of seconds.

    Raises ValueError with a message a human understands for anything else.
    """
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.match(text)
            if match and any(match.groups()):
                h, m, s = (int(g or 0) for g in match.groups())
                seconds = h * 3600 + m * 60 + s
    if seconds is None or seconds <= 0:
        raise ValueError(f"expected a duration like 90s, 8m or 1h30m, got {show_value(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """``480`` -> ``8m``, ``5400`` -> ``1h30m``, ``90`` -> ``1m30s``."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


def _duration(value: Any) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[
    int,
    BeforeValidator(_duration),
    WithJsonSchema({
        "oneOf": [
            {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+s)?$|^\d+$", "examples": ["90s", "8m", "1h30m"]},
            {"type": "integer", "minimum": 1},
        ],
    }),
]


def _file_mode(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip()):
        return int(value.strip().replace("o", ""), 8)
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o777:
            return value
        raise PydanticCustomError(
            "file_mode", "mode {value} is read as a decimal number; write it as 0644 or '0644'",
            {"value": value})
    raise PydanticCustomError("file_mode", "expected a file mode like 0644 or '0755', got {got}",
                              {"got": show_value(value)})


FileMode = Annotated[
    int,
    BeforeValidator(_file_mode),
    WithJsonSchema({"oneOf": [{"type": "string", "pattern": "^0?[0-7]{3,4}$"},
                              {"type": "integer", "minimum": 0, "maximum": 511}]}),
]

