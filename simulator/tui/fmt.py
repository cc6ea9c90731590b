"""Text formatting shared by the screens (durations, clocks, scores)."""

from __future__ import annotations

import math
import re

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def duration(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``5400`` -> ``1h30m``; negative values get a leading minus."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s and not h else ""]
    return sign + ("".join(parts) or "0s")


def clock(seconds: float) -> str:
    """``462`` -> ``07:42``, ``4000`` -> ``1:06:40``; overtime (negative) as ``+01:05``."""
    sign = "+" if seconds < 0 else ""
    total = int(abs(seconds)) if seconds < 0 else math.ceil(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m:02d}:{s:02d}"


def percent(score: int, max_score: int) -> float:
    """Score as a percentage (0 when nothing can be scored)."""
    return 100.0 * score / max_score if max_score else 0.0


def unrendered(text: str) -> str:
    """Task text before values are drawn: ``{{ ns }}`` reads as ``<ns>``."""
    return PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", text)
