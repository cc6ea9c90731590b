#!/usr/bin/env python3
"""systemctl and journalctl for practice nodes: the kubelet, containerd and cron services.

Standalone on purpose: the embedded driver copies this file into each node twice, as
/usr/local/bin/systemctl and /usr/local/bin/journalctl (the name it is run under picks the
program), where only the host's Python standard library is available. Output follows
Debian 12's systemd 252, byte for byte where it is stable.

The node's PID 1 plays systemd (:mod:`services` in the package); this program talks to
it through files under ``$SYSTEMCTL_STATE_DIR`` (default ``/run/cka-sim``):

- it reads ``systemd/units.json``, the units' states that PID 1 publishes;
- ``start``, ``stop`` and ``restart`` write a job ``systemd/jobs/<id>.json`` and wait
  until PID 1 lists ``<id>`` under ``"done"`` in ``units.json``. Stopping
  ``kubelet.service`` stops the node agent's work (no manifest watching, no restarts, no
  Node status, no port 10250) while the containers keep running; starting it re-reads
  the manifests and adopts the running containers. containerd and cron cannot be stopped;
- ``enable`` and ``disable`` change the ``multi-user.target.wants`` link as systemctl does
  (the node never boots again, so they change nothing else);
- the node's own unit files under ``/etc/systemd/system`` (an ``etcd.service``) are real
  units: PID 1 loads one on its first job, ``daemon-reload`` (a job too) reads them all
  again, and until then a changed file keeps its old command line: ``status``, ``start``
  and ``restart`` print systemd's "changed on disk" warning, ``show`` has
  ``NeedDaemonReload``. The kubelet's, containerd's and cron's unit files are not read;
- journalctl reads the journal PID 1 writes, ``journal/journal.jsonl`` (and the older
  ``journal.jsonl.1``): one JSON object a line with ``t`` (µs since the epoch), ``u``
  (unit), ``id`` (identifier), ``pid``, ``p`` (priority) and ``m`` (message).

Supported: systemctl status|is-active|is-enabled|is-failed|start|stop|restart|try-restart|
reload-or-restart|enable [--now]|disable [--now]|daemon-reload|cat|show [-p P] [--value]|
list-units [--type T] [--state S] [--all]|--version; journalctl [-u UNIT]... [-f] [-n N]
[-e] [-r] [--since T] [--until T] [-p PRIORITY] [-t ID] [-o short|short-iso|short-precise|
cat|json] [--no-pager] [-x] [-b] [-q] [--no-hostname] [--utc]. Anything else says that the
practice node does not support it and exits non-zero.

Why one module of ~1000 lines: it is copied into every node as one program and runs there
with the host's Python and nothing else, so it cannot import helpers from the package;
``systemctl status`` shows the unit's last journal lines, so both programs share the
journal reader and formatter, and each subcommand is a small function over the same
unit records.
"""

from __future__ import annotations

import calendar
import fnmatch
import json
import os
import re
import socket
import sys
import time

STATE_DIR = os.environ.get("SYSTEMCTL_STATE_DIR", "/run/cka-sim")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system")
WANTS = "/etc/systemd/system/multi-user.target.wants"
VERSION = """systemd 252 (252.39-1~deb12u2)
+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 -PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK -XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified
"""
NO_SYSTEMD = ("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
              "Failed to connect to bus: Host is down\n")
JOB_TIMEOUT = 30.0
SYSTEMCTL_SUPPORTED = ("status, is-active, is-enabled, is-failed, start, stop, restart, try-restart, "
                       "reload-or-restart, enable, disable, daemon-reload, cat, show, list-units")
NOT_HERE = {"kill", "mask", "unmask", "edit", "set-property", "isolate", "reboot",
            "poweroff", "halt", "suspend", "hibernate", "list-unit-files", "list-timers",
            "list-sockets", "list-dependencies", "list-jobs", "reenable", "preset", "revert",
            "link", "set-default", "get-default", "default", "rescue", "emergency",
            "daemon-reexec", "switch-root", "set-environment", "unset-environment",
            "show-environment", "import-environment", "freeze", "thaw", "clean", "bind",
            "mount-image", "log-level", "log-target", "service-watchdogs", "help",
            "is-system-running", "reset-failed", "condreload", "condrestart", "force-reload",
            "try-reload-or-restart", "add-wants", "add-requires", "list-machines"}
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class Failure(Exception):
    """A message for stderr and an exit code, as systemctl/journalctl print them."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


# time formats ---------------------------------------------------------------------------


def format_timestamp(seconds: float) -> str:
    """systemd's format_timestamp: ``Thu 2026-12-03 13:08:54 UTC``."""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def format_relative(seconds: float, now: float | None = None) -> str:
    """systemd's format_timestamp_relative: ``7s ago``, ``1min 40s ago``, ``2h 5min ago``."""
    d = int(((now if now is not None else time.time()) - seconds) * 1_000_000)
    if d <= 0:
        return "now"
    sec, minute, hour, day = 10**6, 60 * 10**6, 3600 * 10**6, 86400 * 10**6
    week, month, year = 7 * day, 2629800 * 10**6, 31557600 * 10**6
    if d >= year:
        text = f"{d // year}y {(d % year) // month}month"
    elif d >= month:
        text = f"{d // month}month {(d % month) // day}d"
    elif d >= week:
        text = f"{d // week}w {(d % week) // day}d"
    elif d >= 2 * day:
        text = f"{d // day} days"
    elif d >= 25 * hour:
        text = f"1 day {(d - day) // hour}h"
    elif d >= 6 * hour:
        text = f"{d // hour}h"
    elif d >= hour:
        text = f"{d // hour}h {(d % hour) // minute}min"
    elif d >= 5 * minute:
        text = f"{d // minute}min"
    elif d >= minute:
        text = f"{d // minute}min {(d % minute) // sec}s"
    elif d >= sec:
        text = f"{d // sec}s"
    elif d >= 1000:
        text = f"{d // 1000}ms"
    else:
        text = f"{d}us"
    return text + " ago"


def format_timespan(seconds: float) -> str:
    """systemd's format_timespan with millisecond accuracy: ``2ms``, ``1min 5.123s``, ``2h 3min``."""
    ms = int(round(seconds * 1000))
    if ms <= 0:
        return "0"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms >= 1000:
        whole, frac = divmod(ms, 1000)
        parts.append(f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s")
    elif ms:
        parts.append(f"{ms}ms")
    return " ".join(parts)


def format_bytes(size: int) -> str:
    """systemd's format_bytes: ``256.0K``, ``36.2M``."""
    value = float(size)
    for suffix in ("B", "K", "M", "G", "T"):
        if value < 1024 or suffix == "T":
            return f"{int(value)}{suffix}" if suffix == "B" else f"{value:.1f}{suffix}"
        value /= 1024
    return f"{size}B"


_UNITS = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1,
          "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
          "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800, "M": 2629800, "month": 2629800,
          "months": 2629800, "y": 31557600, "year": 31557600, "years": 31557600}


def _span(text: str) -> float | None:
    total, found = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text):
        factor = _UNITS.get(unit or "s")
        if factor is None:
            return None
        total += float(number) * factor
        found = True
    if not found or re.sub(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", "", text).strip():
        return None
    return total


def parse_time(text: str, now: float | None = None) -> float:
    """A timestamp as systemd's parse_timestamp reads it: ``2026-12-03 13:00[:00]``,
    ``13:00[:00]`` (today), ``today``, ``yesterday``, ``tomorrow``, ``now``, ``@EPOCH``,
    ``-5min``, ``+1h``, ``10 min ago``."""
    now = time.time() if now is None else now
    value = text.strip()
    midnight = time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))
    words = {"now": now, "today": midnight, "yesterday": midnight - 86400,
             "tomorrow": midnight + 86400}
    if value in words:
        return words[value]
    if value.startswith("@") and re.fullmatch(r"@\d+(\.\d+)?", value):
        return float(value[1:])
    if value.startswith(("-", "+")):
        span = _span(value[1:])
        if span is not None:
            return now - span if value[0] == "-" else now + span
    if value.endswith(" ago"):
        span = _span(value[:-4])
        if span is not None:
            return now - span
    if value.endswith(" left"):
        span = _span(value[:-5])
        if span is not None:
            return now + span
    body = value[:-4] if value.endswith((" UTC", " GMT")) else value
    utc = body is not value
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S",
                "%y-%m-%d %H:%M:%S", "%H:%M:%S", "%H:%M"):
        try:
            parsed = time.strptime(body, fmt)
        except ValueError:
            continue
        if fmt.startswith("%H"):
            today = time.localtime(now)
            parsed = time.struct_time(today[:3] + parsed[3:6] + (0, 0, -1))
        fields = parsed[:8] + (-1,)
        return float(calendar.timegm(fields)) if utc else float(time.mktime(fields))
    raise Failure(f"Failed to parse timestamp: {text}")


# the journal ---------------------------------------------------------------------------


def journal_paths() -> list[str]:
    base = os.path.join(STATE_DIR, "journal", "journal.jsonl")
    return [base + ".1", base]


def read_journal() -> list[dict]:
    entries = []
    for path in journal_paths():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    entry = _entry(line)
                    if entry is not None:
                        entries.append(entry)
        except OSError:
            continue
    entries.sort(key=lambda e: e["t"])
    return entries


def _entry(line: str) -> dict | None:
    try:
        entry = json.loads(line)
        entry["t"] = int(entry["t"])
        entry["m"] = str(entry.get("m", ""))
        return entry
    except (ValueError, KeyError, TypeError):
        return None


_HOSTNAME: list[str] = []


def hostname() -> str:
    if not _HOSTNAME:
        _HOSTNAME.append(socket.gethostname())
    return _HOSTNAME[0]


def format_entry(entry: dict, output: str = "short", utc: bool = False,
                 no_hostname: bool = False) -> str:
    """One entry as journalctl prints it; continuation lines of a multi-line message are
    indented under the message, as in journalctl's short format."""
    seconds, micros = divmod(entry["t"], 1_000_000)
    moment = time.gmtime(seconds) if utc else time.localtime(seconds)
    message = entry["m"]
    if output == "cat":
        return message
    if output == "json":
        return json.dumps({"__REALTIME_TIMESTAMP": str(entry["t"]), "_HOSTNAME": hostname(),
                           "PRIORITY": str(entry.get("p", 6)), "SYSLOG_IDENTIFIER": entry.get("id", ""),
                           "_PID": str(entry.get("pid", "")), "_SYSTEMD_UNIT": entry.get("u", ""),
                           "MESSAGE": message}, separators=(",", ":"))
    if output == "short-iso":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", moment)
    elif output == "short-precise":
        stamp = time.strftime("%b %d %H:%M:%S", moment) + f".{micros:06d}"
    else:
        stamp = time.strftime("%b %d %H:%M:%S", moment)
    host = "" if no_hostname else f" {hostname()}"
    prefix = f"{stamp}{host} {entry.get('id', '')}[{entry.get('pid', 0)}]: "
    lines = message.split("\n")
    return prefix + ("\n" + " " * len(prefix)).join(lines)


# units ----------------------------------------------------------------------------------


def load_units() -> dict:
    try:
        with open(os.path.join(STATE_DIR, "systemd", "units.json")) as f:
            data = json.load(f)
        data["units"]
        return data
    except (OSError, ValueError, KeyError, TypeError):
        raise Failure(NO_SYSTEMD.rstrip("\n")) from None


def unit_name(arg: str) -> str:
    """``kubelet`` is ``kubelet.service``, as systemctl completes a name without a type."""
    if re.search(r"\.(service|socket|target|timer|mount|path|slice|scope|device|swap|automount)$", arg):
        return arg
    return arg + ".service"


def fragment(name: str, state: dict) -> str:
    for d in UNIT_DIRS:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    return state.get("FragmentPath", f"/lib/systemd/system/{name}")


def dropins(name: str) -> list[tuple[str, list[str]]]:
    found = []
    for d in UNIT_DIRS:
        directory = os.path.join(d, name + ".d")
        try:
            confs = sorted(e for e in os.listdir(directory) if e.endswith(".conf"))
        except OSError:
            continue
        if confs:
            found.append((directory, confs))
    return found


def unit_file_fields(path: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith(("#", ";")):
                    fields.setdefault(key.strip(), []).append(value.strip())
    except OSError:
        pass
    return fields


def enabled(name: str) -> bool:
    return os.path.lexists(os.path.join(WANTS, name))


OWN_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system")


def own_unit_file(name: str) -> str | None:
    """The node's own unit file for ``name`` (one PID 1 loads on demand), if any."""
    for d in OWN_UNIT_DIRS:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    return None


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def need_daemon_reload(name: str, state: dict) -> bool:
    """The unit's files changed on disk since PID 1 loaded them (systemd's NeedDaemonReload)."""
    loaded = state.get("LoadedFiles")
    if not isinstance(loaded, dict):
        return False
    now = {}
    fragment_path = own_unit_file(name)
    if fragment_path:
        now[fragment_path] = _stamp(fragment_path)
    for directory, confs in dropins(name):
        for conf in confs:
            path = os.path.join(directory, conf)
            now[path] = _stamp(path)
    return {k: list(v) for k, v in loaded.items()} != {k: v for k, v in now.items() if v is not None}


def reload_warning(name: str) -> str:
    return (f"Warning: The unit file, source configuration file or drop-ins of {name} changed on "
            "disk. Run 'systemctl daemon-reload' to reload units.")


def _proc(pid: int) -> dict:
    info: dict = {}
    try:
        with open(f"/proc/{pid}/comm") as f:
            info["comm"] = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Threads":
                    info["tasks"] = int(value)
                elif key == "VmRSS":
                    info["memory"] = int(value.split()[0]) * 1024
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        info["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return info


def status_text(name: str, state: dict, lines: int, entries: list[dict]) -> str:
    now = time.time()
    active = state.get("ActiveState") == "active"
    path = fragment(name, state)
    fields = unit_file_fields(path)
    description = (fields.get("Description") or [state.get("Description", name)])[-1]
    out = [f"{'●' if active else '○'} {name} - {description}",
           f"     Loaded: loaded ({path}; {'enabled' if enabled(name) else 'disabled'}; preset: enabled)"]
    for i, (directory, confs) in enumerate(dropins(name)):
        out.append(f"    {'Drop-In:' if i == 0 else '        '} {directory}")
        out.append(f"             └─{', '.join(confs)}")
    since = float(state.get("StateChangeTimestamp") or now)
    active_state = state.get("ActiveState")
    result = state.get("Result", "success")
    if active:
        out.append(f"     Active: active (running) since {format_timestamp(since)}; {format_relative(since, now)}")
    elif active_state in ("failed", "activating", "deactivating"):
        sub = state.get("SubState", "dead")
        shown = f"{active_state} ({sub})" if active_state != "failed" else "failed"
        why = f" (Result: {result})" if result != "success" else ""
        out.append(f"     Active: {shown}{why} since {format_timestamp(since)}; {format_relative(since, now)}")
    else:
        out.append(f"     Active: inactive (dead) since {format_timestamp(since)}; {format_relative(since, now)}")
        entered = float(state.get("ActiveEnterTimestamp") or since)
        out.append(f"   Duration: {format_timespan(max(0.0, since - entered))}")
    docs = " ".join(fields.get("Documentation", []))
    if docs:
        out.append(f"       Docs: {docs}")
    pid = int(state.get("MainPID") or 0)
    if active and pid:
        info = _proc(pid)
        out.append(f"   Main PID: {pid} ({info.get('comm', name.split('.')[0])})")
        if "tasks" in info:
            out.append(f"      Tasks: {info['tasks']}")
        if "memory" in info:
            out.append(f"     Memory: {format_bytes(info['memory'])}")
        if "cpu" in info:
            out.append(f"        CPU: {format_timespan(info['cpu'])}")
    elif not active and state.get("ExecMainPID") and "ExecMainStatus" in state:
        code = int(state.get("ExecMainStatus") or 0)
        how = "code=exited, status=0/SUCCESS" if code == 0 else (
            f"code=killed, signal={code}" if result == "signal" else f"code=exited, status={code}/FAILURE")
        out.append(f"   Main PID: {state['ExecMainPID']} ({how})")
    elif not active and state.get("ExecMainPID"):
        out.append(f"   Main PID: {state['ExecMainPID']} (code=killed, signal=TERM)")
    text = "\n".join(out) + "\n"
    if lines > 0:
        tail = [e for e in entries if e.get("u") == name][-lines:]
        if tail:
            text += "\n" + "\n".join(format_entry(e) for e in tail) + "\n"
    if need_daemon_reload(name, state):
        text += reload_warning(name) + "\n"
    return text


# systemctl ------------------------------------------------------------------------------


def _options(args: list[str], with_value: dict[str, str], flags: dict[str, str]) -> tuple[dict, list[str]]:
    """Options anywhere on the line, as getopt_long permutes them; ``-n5``, ``--lines=5``."""
    opts: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1:]
            break
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and name in with_value:
            if not eq:
                i += 1
                if i >= len(args):
                    raise Failure(f"{prog()}: option '{name}' requires an argument")
                value = args[i]
            opts.setdefault(with_value[name], []).append(value)
        elif arg.startswith("--") and arg in flags:
            opts[flags[arg]] = True
        elif arg.startswith("--"):
            raise Failure(f"{prog()}: unrecognized option '{arg}'")
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                short = "-" + arg[j]
                if short in with_value:
                    value = arg[j + 1:]
                    if not value:
                        i += 1
                        if i >= len(args):
                            raise Failure(f"{prog()}: option requires an argument -- '{arg[j]}'")
                        value = args[i]
                    opts.setdefault(with_value[short], []).append(value)
                    break
                if short not in flags:
                    raise Failure(f"{prog()}: invalid option -- '{arg[j]}'")
                opts[flags[short]] = True
                j += 1
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def prog() -> str:
    return "journalctl" if os.path.basename(sys.argv[0]).startswith("journalctl") else "systemctl"


SYSTEMCTL_VALUES = {"-n": "lines", "--lines": "lines", "-t": "type", "--type": "type",
                    "--state": "state", "-p": "property", "--property": "property",
                    "-o": "output", "--output": "output", "-H": "host", "--host": "host",
                    "-M": "machine", "--machine": "machine", "--job-mode": "job_mode",
                    "--signal": "signal", "-s": "signal", "--kill-whom": "kill_whom"}
SYSTEMCTL_FLAGS = {"-l": "full", "--full": "full", "--no-pager": "no_pager", "-a": "all",
                   "--all": "all", "-q": "quiet", "--quiet": "quiet", "--now": "now",
                   "--no-legend": "no_legend", "--value": "value", "--failed": "failed",
                   "--no-block": "no_block", "--no-ask-password": "no_ask", "--system": "system",
                   "--plain": "plain", "-h": "help", "--help": "help", "--version": "version",
                   "-f": "force", "--force": "force", "-r": "recursive", "--user": "user",
                   "--global": "global", "--runtime": "runtime", "--no-reload": "no_reload"}


def _units_or_fail(verb: str, rest: list[str]) -> list[str]:
    if not rest:
        raise Failure("Too few arguments.")
    return [unit_name(a) for a in rest]


def cmd_status(opts: dict, rest: list[str]) -> int:
    data = load_units()
    lines = 10
    if "lines" in opts:
        try:
            lines = int(opts["lines"][-1])
        except ValueError:
            raise Failure(f"Failed to parse lines '{opts['lines'][-1]}'") from None
    if not rest:
        return system_status(data)
    entries = read_journal() if lines > 0 else []
    code, first = 0, True
    for arg in rest:
        name = unit_name(arg)
        state = data["units"].get(name)
        if state is None:
            sys.stdout.flush()
            print(f"Unit {name} could not be found.", file=sys.stderr)
            code = max(code, 4)
            continue
        if not first:
            sys.stdout.write("\n")
        first = False
        sys.stdout.write(status_text(name, state, lines, entries))
        if state.get("ActiveState") != "active":
            code = max(code, 3)
    return code


def system_status(data: dict) -> int:
    now = time.time()
    try:
        with open("/proc/1/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        since = now - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        since = now
    units = data["units"]
    sys.stdout.write(f"● {hostname()}\n    State: running\n    Units: {len(units)} loaded\n"
                     f"     Jobs: 0 queued\n   Failed: 0 units\n"
                     f"    Since: {format_timestamp(since)}; {format_relative(since, now)}\n"
                     f"  systemd: 252.39-1~deb12u2\n")
    return 0


def cmd_is_active(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    code = 3
    for name in _units_or_fail("is-active", rest):
        state = units.get(name, {}).get("ActiveState", "inactive")
        if not opts.get("quiet"):
            print(state)
        if state == "active":
            code = 0
    return code


def cmd_is_failed(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    code = 1
    for name in _units_or_fail("is-failed", rest):
        state = units.get(name, {}).get("ActiveState", "inactive")
        if not opts.get("quiet"):
            print(state)
        if state == "failed":
            code = 0
    return code


def cmd_is_enabled(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    code = 1
    for name in _units_or_fail("is-enabled", rest):
        if name not in units and not own_unit_file(name):
            raise Failure(f"Failed to get unit file state for {name}: No such file or directory")
        state = "enabled" if enabled(name) else "disabled"
        if not opts.get("quiet"):
            print(state)
        if state == "enabled":
            code = 0
    return code


def run_job(verb: str, name: str) -> str:
    """Hand ``verb`` for ``name`` to PID 1 and wait for its result."""
    job_id = f"{time.time_ns():020d}-{os.getpid()}"
    jobs = os.path.join(STATE_DIR, "systemd", "jobs")
    tmp = os.path.join(jobs, f".{job_id}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump({"verb": verb, "unit": name}, f)
        os.replace(tmp, os.path.join(jobs, f"{job_id}.json"))
    except OSError as exc:
        raise Failure(f"Failed to {verb} {name}: {exc.strerror}") from None
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        for done in load_units().get("done", []):
            if done.get("id") == job_id:
                return str(done.get("result", "done"))
        time.sleep(0.05)
    raise Failure(f"Job for {name} timed out: the practice node's service manager did not answer.")


def cmd_job(verb: str, opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    action = {"try-restart": "restart", "reload-or-restart": "restart"}.get(verb, verb)
    code = 0
    for name in _units_or_fail(verb, rest):
        state = units.get(name)
        if state is None and own_unit_file(name):
            state = {"ActiveState": "inactive", "CanStop": True}  # PID 1 loads it for the job
        if state is None:
            missing = "not loaded" if verb == "stop" else "not found"
            print(f"Failed to {verb} {name}: Unit {name} {missing}.", file=sys.stderr)
            code = 5
            continue
        active = state.get("ActiveState") == "active"
        if need_daemon_reload(name, state):
            print(reload_warning(name), file=sys.stderr)
        if (action == "start" and active) or (action == "stop" and not active) or \
                (verb == "try-restart" and not active):
            continue
        if not state.get("CanStop"):
            print(f"Failed to {verb} {name}: the practice node runs {name.split('.')[0]} as part of "
                  "its init and cannot stop or restart it (only kubelet.service can be).",
                  file=sys.stderr)
            code = 1
            continue
        result = run_job(action, name)
        if result != "done":
            print(f"Job for {name} failed because the control process exited with error code.\n"
                  f'See "systemctl status {name}" and "journalctl -xeu {name}" for details.',
                  file=sys.stderr)
            code = 1
    return code


def cmd_enable(verb: str, opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    names = _units_or_fail(verb, rest)
    for name in names:
        if name not in units and not own_unit_file(name):
            raise Failure(f"Failed to {verb} unit: Unit file {name} does not exist.")
    for name in names:
        link = os.path.join(WANTS, name)
        if verb == "enable" and not os.path.lexists(link):
            os.makedirs(WANTS, exist_ok=True)
            target = fragment(name, units.get(name, {}))
            os.symlink(target, link)
            print(f"Created symlink {link} → {target}.", file=sys.stderr)
        elif verb == "disable" and os.path.lexists(link):
            os.unlink(link)
            print(f'Removed "{link}".', file=sys.stderr)
    if opts.get("now"):
        return cmd_job("start" if verb == "enable" else "stop", {}, rest)
    return 0


def cmd_cat(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    code, first = 0, True
    for name in _units_or_fail("cat", rest):
        files = []
        if name in units or own_unit_file(name):
            files.append(fragment(name, units.get(name, {})))
            files += [os.path.join(d, c) for d, confs in dropins(name) for c in confs]
        texts = []
        for path in files:
            try:
                with open(path, errors="replace") as f:
                    texts.append((path, f.read()))
            except OSError:
                continue
        if not texts:
            print(f"No files found for {name}.", file=sys.stderr)
            code = 1
            continue
        for path, text in texts:
            if not first:
                sys.stdout.write("\n")
            first = False
            sys.stdout.write(f"# {path}\n{text}" + ("" if text.endswith("\n") or not text else "\n"))
    return code


def properties(name: str, state: dict | None) -> dict[str, str]:
    if state is None:
        return {"Id": name, "Names": name, "LoadState": "not-found", "ActiveState": "inactive",
                "SubState": "dead", "MainPID": "0", "UnitFileState": ""}
    path = fragment(name, state)
    fields = unit_file_fields(path)

    def stamp(key: str) -> str:
        value = state.get(key)
        return format_timestamp(float(value)) if value else ""

    return {"Id": name, "Names": name,
            "Description": (fields.get("Description") or [state.get("Description", "")])[-1],
            "LoadState": "loaded", "ActiveState": state.get("ActiveState", "inactive"),
            "SubState": state.get("SubState", "dead"), "MainPID": str(state.get("MainPID", 0)),
            "ExecMainPID": str(state.get("ExecMainPID", 0)),
            "UnitFileState": "enabled" if enabled(name) else "disabled",
            "UnitFilePreset": "enabled", "FragmentPath": path,
            "DropInPaths": " ".join(os.path.join(d, c) for d, confs in dropins(name) for c in confs),
            "ActiveEnterTimestamp": stamp("ActiveEnterTimestamp") if state.get("ActiveState") == "active" else "",
            "StateChangeTimestamp": stamp("StateChangeTimestamp"),
            "Restart": (fields.get("Restart") or ["no"])[-1],
            "Result": str(state.get("Result", "success")),
            "ExecMainStatus": str(state.get("ExecMainStatus", 0)),
            "NRestarts": str(state.get("NRestarts", 0)),
            "NeedDaemonReload": "yes" if need_daemon_reload(name, state) else "no"}


def cmd_show(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    wanted = [p for value in opts.get("property", []) for p in value.split(",") if p]
    first = True
    for name in _units_or_fail("show", rest):
        props = properties(name, units.get(name))
        if not first:
            sys.stdout.write("\n")
        first = False
        for key in wanted or list(props):
            if key not in props:
                if wanted and not opts.get("value"):
                    print(f"{key}=")
                elif wanted:
                    print()
                continue
            print(props[key] if opts.get("value") else f"{key}={props[key]}")
    return 0


def cmd_list_units(opts: dict, rest: list[str]) -> int:
    units = load_units()["units"]
    types = {t for value in opts.get("type", []) for t in value.split(",") if t}
    states = {s for value in opts.get("state", []) for s in value.split(",") if s}
    if opts.get("failed"):
        states = {"failed"}
    rows = []
    for name in sorted(units):
        state = units[name]
        if types and name.rsplit(".", 1)[-1] not in types:
            continue
        if rest and not any(_glob(p, name) for p in rest):
            continue
        active, sub = state.get("ActiveState", "inactive"), state.get("SubState", "dead")
        if states and not ({active, sub, "loaded"} & states):
            continue
        if not states and not opts.get("all") and active != "active":
            continue
        description = (unit_file_fields(fragment(name, state)).get("Description")
                       or [state.get("Description", "")])[-1]
        rows.append([name, "loaded", active, sub, description])
    header = ["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"]
    if not opts.get("no_legend"):
        table = [header, *rows]
    else:
        table = rows
    widths = [max((len(r[i]) for r in [header, *rows]), default=0) for i in range(4)]
    for row in table:
        print(("  " + " ".join(c.ljust(widths[i]) for i, c in enumerate(row[:4])) + " " + row[4]).rstrip()
              if rows else "  " + " ".join(row))
    if not opts.get("no_legend"):
        if rows:
            print("\nLOAD   = Reflects whether the unit definition was properly loaded.\n"
                  "ACTIVE = The high-level unit activation state, i.e. generalization of SUB.\n"
                  "SUB    = The low-level unit activation state, values depend on unit type.")
        print(f"{len(rows)} loaded units listed.", end="")
        if states:
            print()
        elif opts.get("all"):
            print("\nTo show all installed unit files use 'systemctl list-unit-files'.")
        else:
            print(" Pass --all to see loaded but inactive units, too.\n"
                  "To show all installed unit files use 'systemctl list-unit-files'.")
    return 0


def _glob(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, unit_name(pattern))


def systemctl(argv: list[str]) -> int:
    opts, rest = _options(argv, SYSTEMCTL_VALUES, SYSTEMCTL_FLAGS)
    if opts.get("version"):
        sys.stdout.write(VERSION)
        return 0
    if opts.get("help"):
        print(f"systemctl [OPTIONS...] COMMAND ...\n\nOn this practice node: {SYSTEMCTL_SUPPORTED}.")
        return 0
    for unsupported in ("host", "machine", "user", "global"):
        if opts.get(unsupported):
            raise Failure(f"systemctl --{unsupported}: not supported on this practice node.")
    verb, rest = (rest[0], rest[1:]) if rest else ("list-units", [])
    if verb in ("start", "stop", "restart", "try-restart", "reload-or-restart"):
        return cmd_job(verb, opts, rest)
    if verb in ("enable", "disable"):
        return cmd_enable(verb, opts, rest)
    if verb == "daemon-reload":
        load_units()
        result = run_job("daemon-reload", "")
        if result != "done":
            raise Failure(f"Failed to reload daemon: {result}")
        return 0
    commands = {"status": cmd_status, "is-active": cmd_is_active, "is-enabled": cmd_is_enabled,
                "is-failed": cmd_is_failed, "cat": cmd_cat, "show": cmd_show,
                "list-units": cmd_list_units}
    if verb in commands:
        return commands[verb](opts, rest)
    if verb == "--failed":
        return cmd_list_units({**opts, "failed": True}, rest)
    if verb == "reload":
        names = _units_or_fail(verb, rest)
        raise Failure(f"Failed to reload {names[0]}: Job type reload is not applicable for unit {names[0]}.")
    if verb in NOT_HERE:
        raise Failure(f"systemctl {verb}: not supported on this practice node "
                      f"(supported: {SYSTEMCTL_SUPPORTED}).")
    raise Failure(f"Unknown command verb {verb}.")


# journalctl -----------------------------------------------------------------------------


JOURNAL_VALUES = {"-u": "unit", "--unit": "unit", "-n": "lines", "--lines": "lines",
                  "-S": "since", "--since": "since", "-U": "until", "--until": "until",
                  "-p": "priority", "--priority": "priority", "-o": "output", "--output": "output",
                  "-t": "identifier", "--identifier": "identifier", "-b": "boot", "--boot": "boot",
                  "-g": "grep", "--grep": "grep", "-D": "directory", "--directory": "directory",
                  "-M": "machine", "--machine": "machine", "--vacuum-size": "vacuum",
                  "--vacuum-time": "vacuum", "--vacuum-files": "vacuum", "--user-unit": "user_unit"}
JOURNAL_FLAGS = {"-f": "follow", "--follow": "follow", "-e": "end", "--pager-end": "end",
                 "--no-pager": "no_pager", "-x": "catalog", "--catalog": "catalog", "-r": "reverse",
                 "--reverse": "reverse", "-q": "quiet", "--quiet": "quiet", "-a": "all", "--all": "all",
                 "-l": "full", "--full": "full", "--no-full": "nofull", "--no-hostname": "no_hostname",
                 "--utc": "utc", "-k": "kernel", "--dmesg": "kernel", "-h": "help", "--help": "help",
                 "--version": "version", "--system": "system", "--merge": "merge", "-m": "merge",
                 "--list-boots": "list_boots", "--disk-usage": "disk_usage", "--flush": "flush",
                 "--rotate": "rotate", "--sync": "sync", "--user": "user", "--no-tail": "no_tail"}
OUTPUTS = ("short", "short-full", "short-iso", "short-precise", "cat", "json")


def _priority_range(text: str) -> tuple[int, int]:
    def one(value: str) -> int:
        if value.isdigit() and int(value) < 8:
            return int(value)
        if value in PRIORITIES:
            return PRIORITIES.index(value)
        raise Failure(f"Unknown log level {value}")

    low, sep, high = text.partition("..")
    return (one(low), one(high)) if sep else (0, one(low))


def _lines_option(argv: list[str]) -> list[str]:
    """``-n`` takes an optional number, as in journalctl: ``-n`` alone is 10 lines."""
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if arg in ("-n", "--lines") and not (i + 1 < len(argv) and re.fullmatch(r"\+?\d+|all", argv[i + 1])):
            out.append("10")
    return out


def journalctl(argv: list[str]) -> int:
    opts, rest = _options(_lines_option(argv), JOURNAL_VALUES, JOURNAL_FLAGS)
    if opts.get("version"):
        sys.stdout.write(VERSION)
        return 0
    if opts.get("help"):
        print("journalctl [OPTIONS...] [MATCHES...]\n\nOn this practice node: -u UNIT, -f, -n N, -e, -r, "
              "--since, --until, -p, -t, -o short|short-iso|short-precise|cat|json, --no-pager, -x, -b, "
              "-q, --no-hostname, --utc; matches _SYSTEMD_UNIT=, SYSLOG_IDENTIFIER=, _PID=.")
        return 0
    for unsupported in ("list_boots", "disk_usage", "flush", "rotate", "sync", "vacuum", "directory",
                        "machine", "user", "user_unit", "grep"):
        if opts.get(unsupported):
            flag = "--" + unsupported.replace("_", "-")
            raise Failure(f"journalctl {flag}: not supported on this practice node.")
    units = {unit_name(u) for u in opts.get("unit", [])}
    idents = set(opts.get("identifier", []))
    pids: set[int] = set()
    for match in rest:
        field, sep, value = match.partition("=")
        if sep and field in ("_SYSTEMD_UNIT", "UNIT"):
            units.add(unit_name(value))
        elif sep and field == "SYSLOG_IDENTIFIER":
            idents.add(value)
        elif sep and field == "_PID" and value.isdigit():
            pids.add(int(value))
        else:
            raise Failure(f"Failed to add match '{match}': Invalid argument")
    output = (opts.get("output") or ["short"])[-1]
    if output not in OUTPUTS:
        raise Failure(f"Unknown output format '{output}'." if output not in (
            "verbose", "export", "json-pretty", "json-sse", "json-seq", "short-monotonic",
            "short-unix", "with-unit") else f"journalctl -o {output}: not supported on this practice node.")
    since = parse_time(opts["since"][-1]) if "since" in opts else None
    until = parse_time(opts["until"][-1]) if "until" in opts else None
    low, high = _priority_range(opts["priority"][-1]) if "priority" in opts else (0, 7)
    lines: int | None = None
    if "lines" in opts:
        value = opts["lines"][-1]
        if value != "all":
            try:
                lines = int(value.lstrip("+"))
            except ValueError:
                raise Failure(f"Failed to parse lines '{value}'") from None
    elif opts.get("end"):
        lines = 1000
    elif opts.get("follow"):
        lines = 10

    def wanted(entry: dict) -> bool:
        if opts.get("kernel"):
            return False
        if units and entry.get("u") not in units:
            return False
        if idents and entry.get("id") not in idents:
            return False
        if pids and entry.get("pid") not in pids:
            return False
        if not low <= int(entry.get("p", 6)) <= high:
            return False
        t = entry["t"] / 1e6
        return (since is None or t >= since) and (until is None or t <= until)

    def show(entry: dict) -> None:
        print(format_entry(entry, output, bool(opts.get("utc")), bool(opts.get("no_hostname"))), flush=True)

    entries = [e for e in read_journal() if wanted(e)]
    if lines is not None:
        entries = entries[-lines:] if lines > 0 else []
    if opts.get("reverse"):
        entries.reverse()
    if not entries and not opts.get("quiet") and not opts.get("follow") and output not in ("cat", "json"):
        print("-- No entries --")
    for entry in entries:
        show(entry)
    if opts.get("follow"):
        follow(wanted, show)
    return 0


def follow(wanted, show) -> None:
    """Print the entries written from now on, until interrupted."""
    path = journal_paths()[1]
    try:
        position, inode = os.path.getsize(path), os.stat(path).st_ino
    except OSError:
        position, inode = 0, 0
    buffer = ""
    while True:
        time.sleep(0.2)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_ino != inode or st.st_size < position:
            position, inode, buffer = 0, st.st_ino, ""
        if st.st_size == position:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(position)
            chunk = f.read()
            position = f.tell()
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        for line in complete:
            entry = _entry(line)
            if entry is not None and wanted(entry):
                show(entry)


def main(argv: list[str]) -> int:
    """Run as systemctl or journalctl, after the name this program was started under."""
    name = prog()
    try:
        return journalctl(argv) if name == "journalctl" else systemctl(argv)
    except Failure as exc:
        sys.stdout.flush()
        print(exc.message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as exc:  # a file of the node that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{name}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # never a traceback
        print(f"{name}: the practice node could not do this: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
