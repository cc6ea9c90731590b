"""Checkers for files on a node and for cron entries."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from simulator.errors import CheckError
from simulator.registry import CheckResult, Context, checker

_KINDS = ("file", "dir", "any")


class _Uninspectable(Exception):
    """stat failed for another reason than a missing path."""


def _stat(ctx: Context, path: str) -> tuple[str, int, int] | None:
    """(type, size, permission bits) of ``path`` on the node, following links; None if absent."""
    done = ctx.node.run(["stat", "-L", "-c", "%F|%s|%a", "--", path])
    if not done.ok:
        if "No such file" in done.err or "Not a directory" in done.err:
            return None
        raise _Uninspectable(f"cannot inspect {path}: {done.err.strip() or f'stat exited {done.returncode}'}")
    kind, size, mode = done.out.strip().rsplit("|", 2)
    return kind, int(size), int(mode, 8)


@checker("files.exists")
def exists(ctx: Context, path: str, kind: str = "file", min_size: int = 0) -> CheckResult:
    """Pass when ``path`` exists on the node as ``kind`` ("file", "dir" or "any").

    A file must also hold at least ``min_size`` bytes.
    """
    if kind not in _KINDS:
        raise CheckError(f"files.exists: kind {kind!r} is not one of {', '.join(_KINDS)}",
                         hint="use kind: file, dir or any")
    try:
        found = _stat(ctx, path)
    except _Uninspectable as exc:
        return CheckResult(False, str(exc))
    wanted = {"file": "a file", "dir": "a directory", "any": "something"}[kind]
    if found is None:
        return CheckResult(False, f"{path} does not exist, expected {wanted} there")
    ftype, size, _ = found
    is_dir = ftype == "directory"
    is_file = ftype.startswith("regular")
    if kind == "file" and not is_file:
        return CheckResult(False, f"{path} is a {ftype}, expected a regular file")
    if kind == "dir" and not is_dir:
        return CheckResult(False, f"{path} is a {ftype}, expected a directory")
    if is_file and size < min_size:
        return CheckResult(False, f"{path} holds {size} bytes, expected at least {min_size}")
    if is_dir:
        return CheckResult(True, f"{path} is a directory")
    return CheckResult(True, f"{path} is a {ftype} of {size} bytes")


def _parse_mode(mode: str | int) -> int:
    if isinstance(mode, bool):
        raise CheckError(f"files.mode: mode {mode!r} is not a file mode", hint='write the mode as a string: "0600"')
    if isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip()
        if not re.fullmatch(r"(0o)?[0-7]{1,5}", text):
            raise CheckError(f"files.mode: mode {mode!r} is not an octal file mode",
                             hint='write the mode as an octal string: "0600"')
        value = int(text.removeprefix("0o"), 8)
    if not 0 <= value <= 0o7777:
        raise CheckError(f"files.mode: mode {mode!r} is out of range", hint='write the mode as a string: "0600"')
    return value


@checker("files.mode")
def mode(ctx: Context, path: str, mode: str | int) -> CheckResult:
    """Pass when the permission bits of ``path`` are exactly ``mode`` (octal string "0600" or an int)."""
    wanted = _parse_mode(mode)
    try:
        found = _stat(ctx, path)
    except _Uninspectable as exc:
        return CheckResult(False, str(exc))
    if found is None:
        return CheckResult(False, f"{path} does not exist, expected it with mode {wanted:04o}")
    actual = found[2]
    if actual != wanted:
        return CheckResult(False, f"{path} has mode {actual:04o}, expected {wanted:04o} "
                                  f"(chmod {wanted:04o} {path})")
    return CheckResult(True, f"{path} has mode {actual:04o}")


@checker("files.contains")
def contains(ctx: Context, path: str, pattern: str, regex: bool = False) -> CheckResult:
    """Pass when the text of ``path`` contains ``pattern`` (a Python regex if ``regex``, per line anchors)."""
    if regex:
        try:
            compiled = re.compile(pattern, re.MULTILINE)
        except re.error as exc:
            raise CheckError(f"files.contains: {pattern!r} is not a valid regular expression: {exc}",
                             hint="fix the pattern or set regex: false") from None
    try:
        text = ctx.node.read_file(path).decode(errors="replace")
    except FileNotFoundError:
        return CheckResult(False, f"{path} does not exist, expected it to contain {pattern!r}")
    except IsADirectoryError:
        return CheckResult(False, f"{path} is a directory, expected a file containing {pattern!r}")
    except OSError as exc:
        return CheckResult(False, f"cannot read {path}: {exc.strerror or exc}")
    if regex:
        match = compiled.search(text)
        if match:
            return CheckResult(True, f"{path} matches {pattern!r}: {match.group(0)[:80]!r}")
    elif pattern in text:
        return CheckResult(True, f"{path} contains {pattern!r}")
    if not text:
        return CheckResult(False, f"{path} is empty, expected it to contain {pattern!r}")
    lines = len(text.splitlines())
    verb = "matches" if regex else "contains"
    return CheckResult(False, f"none of the {lines} line(s) of {path} {verb} {pattern!r}")


# ---------------------------------------------------------------- cron

_SHORTCUTS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")
_CRON_D_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_USER_CRONTABS = ("/var/spool/cron/crontabs/root", "/var/spool/cron/root")


def normalize_schedule(schedule: str) -> str | None:
    """A canonical form of a cron schedule ("00 02 * * *" -> "0 2 * * *"); None if not one."""
    text = " ".join(schedule.split()).lower()
    if text in _SHORTCUTS:
        text = _SHORTCUTS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        return None
    out = []
    for i, field in enumerate(fields):
        field = re.sub(r"\d+", lambda m: str(int(m.group())), field)
        if field == "*/1":
            field = "*"
        if i == 4 and field == "7":
            field = "0"
        if not re.fullmatch(r"[0-9a-z*/,\-]+", field):
            return None
        out.append(field)
    return " ".join(out)


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
        if not line or line.startswith("#") or _ENV_LINE.match(line):
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


def _users(ctx: Context) -> set[str] | None:
    text = _read(ctx, "/etc/passwd")
    if text is None:
        return None
    return {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def _check_user(entry: CronEntry, users: set[str] | None) -> CronEntry:
    """``entry`` marked ignored when its system-crontab user field names no user."""
    if entry.user is None or entry.ignored:
        return entry
    if entry.user and (users is None or entry.user in users):
        return entry
    fix = f"write the line as '{entry.schedule} root {entry.command}'"
    if entry.user == "":
        why = f"the line in {entry.source} running {entry.command!r} has no user field"
    else:
        why = (f"cron would run {entry.command!r} from {entry.source} as user {entry.user!r}, "
               "which does not exist: lines there name the user between the schedule and the command")
    return dataclasses.replace(entry, ignored=f"{why}; {fix}")


def _read(ctx: Context, path: str) -> str | None:
    try:
        return ctx.node.read_file(path).decode(errors="replace")
    except OSError:
        return None


def cron_entries(ctx: Context) -> list[CronEntry]:
    """Every job of root's crontab, /etc/crontab and /etc/cron.d on the node."""
    entries: list[CronEntry] = []
    listed = ctx.node.run(["crontab", "-l"])
    if listed.ok:
        entries += parse_crontab(listed.out, "root's crontab", system=False)
    else:
        for path in _USER_CRONTABS:
            text = _read(ctx, path)
            if text is not None:
                entries += parse_crontab(text, "root's crontab", system=False)
                break
    text = _read(ctx, "/etc/crontab")
    if text is not None:
        entries += parse_crontab(text, "/etc/crontab", system=True)
    found = ctx.node.run(["find", "/etc/cron.d", "-maxdepth", "1", "-type", "f", "-print0"])
    if found.ok:
        for path in sorted(p for p in found.out.split("\0") if p):
            text = _read(ctx, path)
            if text is None:
                continue
            name = path.rsplit("/", 1)[-1]
            ignored = "" if _CRON_D_NAME.match(name) else (
                f"cron ignores {path}: names in /etc/cron.d may hold only letters, digits, '_' and '-'; "
                "move the entry to a file named without a dot")
            entries += [dataclasses.replace(e, ignored=ignored)
                        for e in parse_crontab(text, path, system=True)]
    users = _users(ctx)
    return [_check_user(e, users) for e in entries]


@checker("cron.entry")
def entry(ctx: Context, schedule: str, command: str) -> CheckResult:
    """Pass when root's crontab or a system crontab runs ``command`` (a substring) on ``schedule``.

    Schedules compare after normalization ("00 02 * * *" equals "0 2 * * *"; "@daily"
    equals "0 0 * * *").
    """
    wanted = normalize_schedule(schedule)
    if wanted is None:
        raise CheckError(f"cron.entry: {schedule!r} is not a cron schedule",
                         hint="five fields such as '0 2 * * *', or @daily/@hourly/...")
    needle = " ".join(command.split())
    entries = cron_entries(ctx)
    same_command = [e for e in entries if needle in e.command]
    for e in same_command:
        if normalize_schedule(e.schedule) == wanted and not e.ignored:
            return CheckResult(True, f"{e.source} runs {e.command!r} at {e.schedule!r}")
    for e in same_command:
        if normalize_schedule(e.schedule) == wanted:
            return CheckResult(False, e.ignored)
    if same_command:
        found = "; ".join(f"{e.source}: {e.schedule!r}" for e in same_command[:5])
        return CheckResult(False, f"{needle!r} is scheduled at {found}, expected {schedule!r}")
    if not entries:
        return CheckResult(False, f"no cron jobs at all: expected {schedule} running {needle!r} "
                                  "in root's crontab (crontab -e) or /etc/cron.d")
    found = "; ".join(f"{e.source}: {e.schedule} {e.command}" for e in entries[:5])
    return CheckResult(False, f"no cron job runs {needle!r}; found {found}")
