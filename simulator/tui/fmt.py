"""Text formatting shared by the screens (durations, clocks, scores)."""

from __future__ import annotations

import re

from simulator.timefmt import clock, duration

__all__ = ["PLACEHOLDER", "clock", "duration", "percent", "unrendered"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def percent(score: int, max_score: int) -> float:
    """Score as a percentage (0 when nothing can be scored)."""
    return 100.0 * score / max_score if max_score else 0.0


def unrendered(text: str) -> str:
    """Task text before values are drawn: ``{{ ns }}`` reads as ``<ns>``."""
    return PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", text)
