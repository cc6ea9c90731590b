"""Services a node's own unit files define: what PID 1 runs for ``etcd.service`` (an etcd
run by systemd instead of a static pod) and any other ``.service`` file an administrator
writes under ``/etc/systemd/system``.

A unit is read as systemd 252 reads it, from the files as they were at the last
``systemctl daemon-reload`` (or when the unit was first loaded): editing the file alone
changes nothing until the next reload, and ``systemctl`` warns that the file changed on
disk (:data:`files` and their stamps are published for that). What is read:

- ``[Unit] Description``; ``[Service] ExecStart`` (the last one; an empty ``ExecStart=``
  in a drop-in resets the list), ``Environment``, ``EnvironmentFile`` (read at every
  start, as systemd does, ``-`` for optional), ``WorkingDirectory``, ``User``, ``Group``,
  ``Restart`` (``no``, ``always``, ``on-failure``, ``on-abnormal``), ``RestartSec``; drop-ins
  ``<unit>.d/*.conf`` in name order; lines continued with a trailing backslash;
- ``ExecStart`` is split as systemd splits it: quotes, ``$NAME`` as a word of its own
  becomes the variable's words, ``${NAME}`` is replaced in place, ``$$`` and ``%%`` are
  ``$`` and ``%``; the prefixes ``-@:+!`` are accepted and ignored.

:class:`ServiceProcess` runs the command chrooted into the node's root (PID 1 has the
host's view of the filesystem), with systemd's environment, its output to the journal
under the unit's name, and restarts it as ``Restart=`` says. As PID 1 the node's
supervisor reaps every child; it hands the exit statuses of processes it does not know
to :func:`child_exited`, where the unit's waiter finds them.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system")
"""Where administrators' unit files are read (the host's ``/lib/systemd/system`` is not)."""
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STOP_TIMEOUT = 10.0
RESTART_SEC_CAP = 5.0
"""systemd's default RestartSec is 100 ms; a unit's own value is capped here so that a
fixed unit comes back within seconds."""

_EXITS: dict[int, int] = {}
_EXITS_LOCK = threading.Lock()


def child_exited(pid: int, status: int) -> None:
    """Keep the wait status of a child reaped by PID 1's reaper for the unit waiting on it."""
    with _EXITS_LOCK:
        _EXITS[pid] = status
        while len(_EXITS) > 256:
            _EXITS.pop(next(iter(_EXITS)))


def _take_exit(pid: int) -> int | None:
    with _EXITS_LOCK:
        return _EXITS.pop(pid, None)


# reading unit files ----------------------------------------------------------------------


def parse_sections(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file in order; continuation lines joined."""
    out: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep:
            out.append((section, key.strip(), value.strip()))
    if pending.strip():
        key, sep, value = pending.strip().partition("=")
        if sep:
            out.append((section, key.strip(), value.strip()))
    return out


@dataclass
class UnitConfig:
    """A service unit as systemd loaded it."""

    name: str
    description: str = ""
    exec_start: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[str] = field(default_factory=list)
    working_directory: str = ""
    user: str = ""
    group: str = ""
    restart: str = "no"
    restart_sec: float = 0.1
    files: dict[str, list[int]] = field(default_factory=dict)  # path in the node -> [mtime_ns, size]
    fragment: str = ""


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def unit_files(rootfs: Path, name: str) -> list[str]:
    """The unit's fragment and drop-ins (paths in the node), as systemd picks them."""
    found: list[str] = []
    for directory in UNIT_DIRS:
        if (rootfs / directory.lstrip("/") / name).is_file():
            found.append(f"{directory}/{name}")
            break
    if not found:
        return []
    for directory in UNIT_DIRS:
        conf_dir = rootfs / directory.lstrip("/") / f"{name}.d"
        try:
            confs = sorted(p.name for p in conf_dir.iterdir() if p.name.endswith(".conf"))
        except OSError:
            continue
        found += [f"{directory}/{name}.d/{c}" for c in confs]
    return found


def _span(value: str) -> float:
    total = 0.0
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "msec": 0.001, "min": 60.0, "m": 60.0}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units.get(unit, 1.0)
    return total


def load_unit(rootfs: Path, name: str) -> UnitConfig | None:
    """The unit ``name`` as systemd would load it from the node's files now; None when no
    file defines it."""
    files = unit_files(rootfs, name)
    if not files:
        return None
    config = UnitConfig(name=name, fragment=files[0])
    for path in files:
        host = rootfs / path.lstrip("/")
        stamp = _stamp(host)
        if stamp is None:
            continue
        config.files[path] = stamp
        try:
            text = host.read_text(errors="replace")
        except OSError:
            continue
        for section, key, value in parse_sections(text):
            if section == "Unit" and key == "Description":
                config.description = value
            elif section != "Service":
                continue
            elif key == "ExecStart":
                config.exec_start = value
            elif key == "Environment":
                if not value:
                    config.environment.clear()
                for item in _split_words(value):
                    k, sep, v = item.partition("=")
                    if sep:
                        config.environment[k] = v
            elif key == "EnvironmentFile":
                if not value:
                    config.environment_files.clear()
                else:
                    config.environment_files.append(value)
            elif key == "WorkingDirectory":
                config.working_directory = value
            elif key == "User":
                config.user = value
            elif key == "Group":
                config.group = value
            elif key == "Restart":
                config.restart = value or "no"
            elif key == "RestartSec":
                config.restart_sec = _span(value)
    return config


def _split_words(value: str) -> list[str]:
    try:
        return shlex.split(value, posix=True)
    except ValueError:
        return value.split()


def read_environment_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd reads an EnvironmentFile (comments, quotes, ``export``)."""
    env: dict[str, str] = {}
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            continue
        value = value.strip()
        words = _split_words(value) if value[:1] in ("'", '"') else [value]
        env[key.strip()] = words[0] if len(words) == 1 else value
    return env


def exec_argv(command: str, env: dict[str, str]) -> list[str]:
    """``ExecStart``'s value as the argv systemd runs: prefixes dropped, quotes removed,
    ``$NAME`` words split, ``${NAME}`` replaced. ValueError when there is no command."""
    command = command.strip()
    while command[:1] in ("-", "@", ":", "+", "!"):
        command = command[1:]
    command = command.replace("%%", "\0PCT\0")
    words: list[str] = []
    for word in _split_words(command):
        word = word.replace("\0PCT\0", "%")
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            words += env.get(whole.group(1), "").split()
            continue
        word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word)
        words.append(word.replace("$$", "$"))
    if not words:
        raise ValueError("ExecStart= is empty")
    return words


# running a service -----------------------------------------------------------------------


Journal = Any  # services.Journal: write(unit, ident, pid, message, priority=6)


class ServiceProcess:
    """One service unit of the node: its loaded configuration, its process and its state.

    ``changed`` is called (from any thread) whenever the state changes, so the manager
    publishes it."""

    def __init__(self, rootfs: Path, config: UnitConfig, journal: Journal,
                 changed: Callable[[], None]) -> None:
        self.rootfs = Path(rootfs)
        self.config = config
        self.journal = journal
        self.changed = changed
        self.state = "inactive"  # active, activating, failed, inactive
        self.sub = "dead"  # running, auto-restart, failed, dead
        self.result = "success"
        self.main_pid = 0
        self.exec_main_pid = 0
        self.exec_main_status = 0
        self.restarts = 0
        self.since = time.time()
        self.active_since = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._wanted = False  # the administrator asked for it to run
        self._generation = 0
        self._waiter: threading.Thread | None = None

    # -- state -------------------------------------------------------------------------

    def _set(self, state: str, sub: str) -> None:
        self.state, self.sub, self.since = state, sub, time.time()
        if state == "active":
            self.active_since = self.since
        self.changed()

    def log(self, message: str, priority: int = 6) -> None:
        self.journal.write(self.config.name, "systemd", 1, message, priority)

    @property
    def title(self) -> str:
        return f"{self.config.name} - {self.config.description}" if self.config.description \
            else self.config.name

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> str:
        """Start the service with its loaded configuration; ``"done"`` or why not."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return "done"
            self._wanted = True
            self._generation += 1
            self.restarts = 0
            return self._spawn(self._generation)

    def _environment(self) -> dict[str, str]:
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": os.urandom(16).hex()}
        env.update(self.config.environment)
        for entry in self.config.environment_files:
            optional = entry.startswith("-")
            path = entry.lstrip("-")
            try:
                env.update(read_environment_file(self.rootfs / path.lstrip("/")))
            except OSError as exc:
                if not optional:
                    raise RuntimeError(f"Failed to load environment files: {path}: "
                                       f"{exc.strerror}") from None
        return env

    def _spawn(self, generation: int) -> str:
        name = self.config.name
        self.log(f"Starting {self.title}...")
        try:
            env = self._environment()
            argv = exec_argv(self.config.exec_start, env)
        except (RuntimeError, ValueError) as exc:
            self.log(f"{name}: {exc}", 3)
            self.log(f"{name}: Failed with result 'resources'.", 4)
            self.log(f"Failed to start {self.title}.", 3)
            self.result = "resources"
            self._wanted = False
            self._set("failed", "failed")
            return f"failed: {exc}"
        if self.config.user and self.config.user != "root":
            env.update(USER=self.config.user, LOGNAME=self.config.user)
        root = str(self.rootfs)
        workdir = self.config.working_directory.lstrip("-") or "/"
        ids = self._ids()
        if isinstance(ids, str):
            return self._failed_to_exec(ids)

        def enter() -> None:
            os.chroot(root)
            os.chdir(workdir)
            if ids is not None:
                uid, gid, user = ids
                os.initgroups(user, gid)
                os.setgid(gid)
                os.setuid(uid)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)

        try:
            proc = subprocess.Popen(argv, env=env, preexec_fn=enter, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return self._failed_to_exec(f"Failed to execute {argv[0]}: {reason}")
        self._proc = proc
        self.main_pid = self.exec_main_pid = proc.pid
        self.result = "success"
        self._set("active", "running")
        self.log(f"Started {self.title}.")
        ident = os.path.basename(argv[0])
        self._waiter = threading.Thread(target=self._wait, args=(proc, generation, ident),
                                        name=f"unit-{name}", daemon=True)
        self._waiter.start()
        return "done"

    def _ids(self) -> tuple[int, int, str] | None | str:
        """(uid, gid, user) to run as, None for root, or why the user is unknown."""
        user = self.config.user
        if not user or user in ("root", "0"):
            return None
        passwd = self.rootfs / "etc/passwd"
        try:
            for line in passwd.read_text().splitlines():
                fields = line.split(":")
                if len(fields) >= 7 and (fields[0] == user or fields[2] == user):
                    uid, gid = int(fields[2]), int(fields[3])
                    if self.config.group:
                        gid = self._gid(self.config.group, gid)
                    return uid, gid, fields[0]
        except (OSError, ValueError):
            pass
        return f"Failed to determine user credentials: No such process (User={user})"

    def _gid(self, group: str, default: int) -> int:
        try:
            for line in (self.rootfs / "etc/group").read_text().splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and group in (fields[0], fields[2]):
                    return int(fields[2])
        except (OSError, ValueError):
            pass
        return default

    def _failed_to_exec(self, why: str) -> str:
        name = self.config.name
        self.log(f"{name}: {why}", 3)
        self.log(f"{name}: Main process exited, code=exited, status=203/EXEC", 5)
        self.log(f"{name}: Failed with result 'exit-code'.", 4)
        self.log(f"Failed to start {self.title}.", 3)
        self.result, self.exec_main_status = "exit-code", 203
        self._wanted = False
        self._set("failed", "failed")
        return f"failed: {why}"

    def _wait(self, proc: subprocess.Popen[bytes], generation: int, ident: str) -> None:
        """Copy the process's output to the journal, then act on its exit."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line:
                self.journal.write(self.config.name, ident, proc.pid, line)
        proc.stdout.close()
        proc.wait()
        status = _take_exit(proc.pid)
        if status is None and proc.returncode == 0:
            time.sleep(0.05)  # PID 1's reaper may have just taken it
            status = _take_exit(proc.pid)
        code = os.waitstatus_to_exitcode(status) if status is not None else proc.returncode
        with self._lock:
            if generation != self._generation:
                return  # stopped on purpose: stop() wrote the lines
            self._exited(code, generation)

    def _exited(self, code: int, generation: int) -> None:
        name = self.config.name
        self._proc = None
        self.main_pid = 0
        self.exec_main_status = code if code >= 0 else -code
        if code == 0:
            self.log(f"{name}: Deactivated successfully.")
            failed = False
        else:
            how = f"code=killed, status={-code}/{signal.Signals(-code).name[3:]}" if code < 0 \
                else f"code=exited, status={code}/FAILURE"
            self.log(f"{name}: Main process exited, {how}", 5)
            self.result = "signal" if code < 0 else "exit-code"
            self.log(f"{name}: Failed with result '{self.result}'.", 4)
            failed = True
        policy = self.config.restart
        again = self._wanted and (policy == "always" or (failed and policy in ("on-failure", "on-abnormal")
                                                          and (code < 0 or policy == "on-failure")))
        if not again:
            self._wanted = False
            self._set("failed" if failed else "inactive", "failed" if failed else "dead")
            return
        self._set("activating", "auto-restart")
        delay = min(max(self.config.restart_sec, 0.1), RESTART_SEC_CAP)

        def restart() -> None:
            with self._lock:
                if generation != self._generation or not self._wanted:
                    return
                self.restarts += 1
                self.log(f"{name}: Scheduled restart job, restart counter is at {self.restarts}.")
                self.log(f"Stopped {self.title}.")
                self._spawn(generation)

        timer = threading.Timer(delay, restart)
        timer.daemon = True
        timer.start()

    def stop(self) -> str:
        """Stop the service: SIGTERM to its processes, SIGKILL after ``STOP_TIMEOUT``."""
        with self._lock:
            self._wanted = False
            self._generation += 1
            proc = self._proc
            if proc is None or proc.poll() is not None:
                self._proc = None
                self.main_pid = 0
                if self.state != "inactive":
                    self._set("inactive", "dead")
                return "done"
            self.log(f"Stopping {self.title}...")
            self._set("deactivating", "stop-sigterm")
        self._signal(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.log(f"{self.config.name}: State 'stop-sigterm' timed out. Killing.", 4)
            self._signal(proc, signal.SIGKILL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            self._proc = None
            self.main_pid = 0
            _take_exit(proc.pid)
            self.log(f"{self.config.name}: Deactivated successfully.")
            self.log(f"Stopped {self.title}.")
            self._set("inactive", "dead")
        return "done"

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            try:
                proc.send_signal(sig)
            except OSError:
                pass

    def reload(self, config: UnitConfig) -> None:
        """Take the configuration ``daemon-reload`` read; the running process keeps running."""
        with self._lock:
            self.config = config

    def published(self) -> dict[str, Any]:
        """The unit's state as ``systemctl`` reads it from ``units.json``."""
        return {"Description": self.config.description or self.config.name,
                "FragmentPath": self.config.fragment, "ActiveState": self.state,
                "SubState": self.sub, "MainPID": self.main_pid, "ExecMainPID": self.exec_main_pid,
                "ExecMainStatus": self.exec_main_status, "Result": self.result,
                "NRestarts": self.restarts, "StateChangeTimestamp": self.since,
                "ActiveEnterTimestamp": self.active_since, "CanStop": True,
                "LoadedFiles": self.config.files, "Restart": self.config.restart}


__all__ = ["UnitConfig", "ServiceProcess", "load_unit", "exec_argv", "child_exited", "UNIT_DIRS",
           "parse_sections", "read_environment_file", "unit_files"]
