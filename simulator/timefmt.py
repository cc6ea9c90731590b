"""Times as every face of cka-sim shows them: the CLI, the TUI and the learner's prompt.

One rule for a clock, wherever it appears: whole seconds, rounded toward zero, so the time
left is never shown as more than there is (``7:42.9`` left reads ``7:42``) and overtime is
never shown as more than has passed. Below an hour it reads ``M:SS``, from one hour
``H:MM:SS``; overtime counts up with a leading ``+``. The prompt's bash copy of this rule
(``simulator.cluster.shell.BASH_CLOCK``) is tested against :func:`clock`.
"""

from __future__ import annotations


def clock(seconds: float) -> str:
    """``462.9`` -> ``7:42``, ``4000`` -> ``1:06:40``, ``0.5`` -> ``0:00``, ``-65`` -> ``+1:05``."""
    sign = "+" if seconds < 0 else ""
    total = int(abs(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if h else f"{sign}{m}:{s:02d}"


def duration(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``5400`` -> ``1h30m``; negative values get a leading minus."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s and not h else ""]
    return sign + ("".join(parts) or "0s")
