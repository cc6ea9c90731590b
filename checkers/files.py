"""Checkers for files on a node and for cron entries."""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex

from simulator.cron import CRON_D_NAME, ENV_LINE, CronEntry, broken_line, insecure, parse_crontab, parse_schedule
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

_USER_CRONTABS = ("/var/spool/cron/crontabs/root", "/var/spool/cron/root")
_SHELLS = {"sh", "bash", "dash"}
_PRELUDE = {"cd", "export", "umask", "source", ".", "set"}


def _simple_commands(command: str) -> list[tuple[str, list[str]]]:
    """(operator before it, words) of each simple command in a cron command line, as
    ``sh -c`` would split it; comments are dropped. ``%`` ends the command, as in cron."""
    line = re.split(r"(?<!\\)%", command, maxsplit=1)[0]
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out: list[tuple[str, list[str]]] = [("", [])]
    try:
        for token in lexer:
            if token and set(token) <= set(";&|()"):
                out.append((token, []))
            else:
                out[-1][1].append(token)
    except ValueError:
        return []
    return [(op, words) for op, words in out if words]


def _runs(words: list[str], script: list[str], depth: int = 0) -> bool:
    """Whether the simple command ``words`` executes ``script`` (its path, then its args):
    directly, or through sh/bash (``bash SCRIPT``, ``bash -c 'SCRIPT'``)."""
    while words and ENV_LINE.match(words[0]) and not words[0].startswith("="):
        words = words[1:]  # VAR=value before the command
    if not words:
        return False
    if words[:len(script)] == script:
        return True
    if posixpath.basename(words[0]) in _SHELLS and depth == 0:
        rest = words[1:]
        while rest and rest[0].startswith("-"):
            if rest[0] == "-c" and len(rest) > 1:
                return any(_runs(w, script, depth + 1) for _, w in _leading(rest[1]))
            rest = rest[1:]
        return rest[:len(script)] == script
    return False


def _leading(command: str) -> list[tuple[str, list[str]]]:
    """The simple commands of ``command`` that surely run: the first, and the ones after
    ``;`` or ``&&`` that only follow harmless set-up (``cd``, ``export``, ...)."""
    out = []
    for op, words in _simple_commands(command):
        if out and op not in (";", "&&"):
            break
        out.append((op, words))
        if words[0] not in _PRELUDE and not ENV_LINE.match(words[0]):
            break
    return out


def executes(command: str, script: str) -> bool:
    """Whether a cron command line runs ``script`` (a path, maybe with arguments) as a
    program: mentioning it in a comment, an argument or after ``||`` does not count."""
    wanted = shlex.split(script)
    return bool(wanted) and any(_runs(words, wanted) for _, words in _leading(command))


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
        entries += _system_table(ctx, text, "/etc/crontab")
    found = ctx.node.run(["find", "/etc/cron.d", "-maxdepth", "1", "-type", "f", "-print0"])
    if found.ok:
        for path in sorted(p for p in found.out.split("\0") if p):
            text = _read(ctx, path)
            if text is None:
                continue
            name = path.rsplit("/", 1)[-1]
            ignored = "" if CRON_D_NAME.match(name) else (
                f"cron ignores {path}: names in /etc/cron.d may hold only letters, digits, '_' and '-'; "
                "move the entry to a file named without a dot")
            entries += [dataclasses.replace(e, ignored=e.ignored or ignored) for e in _system_table(ctx, text, path)]
    users = _users(ctx)
    return [_check_user(e, users) for e in entries]


def _system_table(ctx: Context, text: str, path: str) -> list[CronEntry]:
    """The lines of a system crontab, all of them ignored when cron skips the file: one line
    is :func:`broken_line`, or the file is :func:`insecure` (as the cron daemon judges)."""
    entries = parse_crontab(text, path, system=True)
    try:
        found = _stat(ctx, path)
    except _Uninspectable:
        found = None
    if found is not None and insecure(found[2]):
        why = (f"cron ignores {path}: it is writable by group or others (mode {found[2]:04o}), which cron "
               f"refuses as insecure; chmod go-w {path}")
        return [dataclasses.replace(e, ignored=why) for e in entries]
    broken = broken_line(entries)
    if broken is None:
        return entries
    why = (f"cron ignores all of {path}: the line running {broken.command!r} has no user field, and a line "
           f"cron cannot read makes it skip the file; write it as '{broken.schedule} root {broken.command}'")
    return [e if e is broken else dataclasses.replace(e, ignored=why) for e in entries]


@checker("cron.entry")
def entry(ctx: Context, schedule: str, command: str) -> CheckResult:
    """Pass when root's crontab or a system crontab runs ``command`` on ``schedule``.

    Schedules are parsed and compare by when they fire ("0 2 * * 0-6" is "0 2 * * *",
    "@daily" is "0 0 * * *"). The line must execute ``command``: as its program, or
    through sh/bash; a mention in a comment or an argument does not count. Lines in
    /etc/crontab and /etc/cron.d must name the user.
    """
    wanted = parse_schedule(schedule)
    if wanted is None:
        raise CheckError(f"cron.entry: {schedule!r} is not a cron schedule",
                         hint="five fields such as '0 2 * * *', or @daily/@hourly/...")
    needle = " ".join(command.split())
    entries = cron_entries(ctx)
    same_command = [e for e in entries if executes(e.command, needle)]
    for e in same_command:
        if parse_schedule(e.schedule) == wanted and not e.ignored:
            return CheckResult(True, f"{e.source} runs {e.command!r} at {e.schedule!r}")
    for e in same_command:
        if parse_schedule(e.schedule) == wanted:
            return CheckResult(False, e.ignored)
    if same_command:
        found = "; ".join(f"{e.source}: {e.schedule!r}"
                          + ("" if parse_schedule(e.schedule) else " (not a valid schedule)")
                          for e in same_command[:5])
        return CheckResult(False, f"{needle!r} is scheduled at {found}, expected {schedule!r}")
    mentions = [e for e in entries if needle in e.command]
    if mentions:
        e = mentions[0]
        return CheckResult(False, f"{e.source} mentions {needle} in {e.command!r}, but that line does "
                                  f"not run it: the command must start with {needle} (or bash {needle})")
    if not entries:
        return CheckResult(False, f"no cron jobs at all: expected {schedule} running {needle!r} "
                                  "in root's crontab (crontab -e) or /etc/cron.d")
    found = "; ".join(f"{e.source}: {e.schedule} {e.command}" for e in entries[:5])
    return CheckResult(False, f"no cron job runs {needle!r}; found {found}")
