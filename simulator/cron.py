"""Cron tables as Debian's cron (Vixie cron 3.0pl1) reads them: one reading for the
checkers that grade a schedule and for the cron daemon of embedded nodes that runs it.

- :func:`parse_schedule` turns five fields or a macro into a :class:`Schedule` (croniter
  expands the fields), where equivalent schedules are equal;
- :func:`parse_crontab` lists the job lines of a user crontab or of a system one
  (``/etc/crontab``, ``/etc/cron.d``), which names the user after the schedule;
- :func:`broken_line` and :func:`insecure`: a line, or permission bits, that make cron
  ignore a whole system crontab;
- :func:`environment` the ``NAME=value`` lines, which cron applies to every job of the file;
- ``CRON_D_NAME``: the only file names cron reads in ``/etc/cron.d``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass

ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")
CRON_D_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class Schedule:
    """When a cron line fires, in a form where equivalent schedules are equal.

    Days follow Vixie cron (Debian's cron): when the day-of-month or the day-of-week field
    starts with ``*``, a day must match both; otherwise it matches either.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    days: frozenset[tuple[int, int]]  # (day of month, day of week) pairs that fire
    dom: frozenset[int] = dataclasses.field(compare=False, default=frozenset())
    dow: frozenset[int] = dataclasses.field(compare=False, default=frozenset())

    def fires(self, when: time.struct_time) -> bool:
        """Whether cron runs the line in the minute ``when`` (local time)."""
        dow = (when.tm_wday + 1) % 7  # struct_time counts from Monday, cron from Sunday
        return (when.tm_min in self.minutes and when.tm_hour in self.hours and when.tm_mon in self.months
                and (when.tm_mday, dow) in self.days)


def parse_schedule(text: str) -> Schedule | None:
    """The :class:`Schedule` of five cron fields or a macro (``@daily``); None if it is not
    one (wrong field count, a value out of range, ``@reboot``)."""
    from croniter import croniter
    from croniter.croniter import CroniterError

    fields = " ".join(text.split()).lower()
    fields = MACROS.get(fields, fields)
    raw = fields.split(" ")
    if len(raw) != 5:
        return None
    try:
        expanded = croniter.expand(fields)[0]
    except (CroniterError, ValueError, KeyError, IndexError):
        return None
    full = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))

    def values(i: int) -> frozenset[int]:
        low, high = full[i]
        if expanded[i] == ["*"]:
            return frozenset(range(low, high + 1))
        return frozenset(0 if (i == 4 and v == 7) else int(v) for v in expanded[i])

    dom, dow = values(2), values(4)
    either_star = raw[2].startswith("*") or raw[4].startswith("*")
    days = frozenset((d, w) for d in range(1, 32) for w in range(7)
                     if ((d in dom) and (w in dow) if either_star else (d in dom) or (w in dow)))
    return Schedule(values(0), values(1), values(3), days, dom, dow)


def normalize_schedule(schedule: str) -> str | None:
    """A canonical text of a cron schedule, equal for equivalent schedules; None if not one."""
    parsed = parse_schedule(schedule)
    if parsed is None:
        return None

    def text(values: frozenset[int], low: int, high: int) -> str:
        return "*" if values == frozenset(range(low, high + 1)) else ",".join(map(str, sorted(values)))

    doms = frozenset(d for d, _ in parsed.days)
    dows = frozenset(w for _, w in parsed.days)
    if parsed.days != frozenset((d, w) for d in doms for w in dows):
        doms, dows = parsed.dom, parsed.dow  # either day field fires, as cron reads two restricted fields
    return " ".join([text(parsed.minutes, 0, 59), text(parsed.hours, 0, 23), text(doms, 1, 31),
                     text(parsed.months, 1, 12), text(dows, 0, 6)])


@dataclass(frozen=True)
class CronEntry:
    """One job line: where it came from, its schedule as written, and its command."""

    source: str
    schedule: str
    command: str
    ignored: str = ""
    user: str | None = None


def parse_crontab(text: str, source: str, system: bool) -> list[CronEntry]:
    """Job lines of a crontab; ``system`` crontabs (/etc/crontab, /etc/cron.d) name a user."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ENV_LINE.match(line):
            continue
        parts = line.split()
        width = 1 if parts[0].startswith("@") else 5
        if system:
            width += 1
        schedule = " ".join(parts[:1] if parts[0].startswith("@") else parts[:5])
        if system and len(parts) == width:
            entries.append(CronEntry(source, schedule, parts[-1], user=""))
            continue
        if len(parts) <= width:
            continue
        entries.append(CronEntry(source, schedule, " ".join(parts[width:]),
                                 user=parts[width - 1] if system else None))
    return entries


def insecure(mode: int) -> bool:
    """Whether cron refuses a system crontab with these permission bits: Debian's cron skips
    one that group or others may write ("INSECURE MODE (group/other writable)")."""
    return bool(mode & 0o022)


def broken_line(entries: list[CronEntry]) -> CronEntry | None:
    """The line of a system crontab that has a user field but no command after it, if any:
    a syntax error for Debian's cron, which then ignores the whole file."""
    return next((e for e in entries if e.user == ""), None)


def environment(text: str) -> dict[str, str]:
    """The ``NAME=value`` lines of a crontab, as cron passes them to its jobs (a value may
    be quoted with ' or ", which cron removes)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or not ENV_LINE.match(line):
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env
