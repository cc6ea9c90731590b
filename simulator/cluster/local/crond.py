"""The cron daemon of an embedded node: runs crontab lines on their schedule as Debian's cron
(Vixie cron 3.0pl1) does on a kubeadm node.

Started by the node's init (PID 1, :mod:`nodeinit`) as a child process in the node's
namespaces, with the host's view of the filesystem; each job runs chrooted into the
node's root. Every minute, at its first second, it reads again

- ``/etc/crontab`` and the files of ``/etc/cron.d`` (names of letters, digits, ``_`` and
  ``-`` only; not writable by group or others), whose lines name the user after the
  schedule;
- the user crontabs in ``/var/spool/cron/crontabs/<user>`` that ``crontab`` writes;

and starts the jobs whose schedule matches the minute (:mod:`simulator.cron` reads the
lines, as the checkers do). ``@reboot`` jobs run once when the node starts. A job runs
``$SHELL -c COMMAND`` with cron's environment: ``SHELL=/bin/sh``, ``PATH=/usr/bin:/bin``,
``HOME`` and ``LOGNAME`` of the user, then the ``NAME=value`` lines of its file; a ``%``
in the command starts its standard input, as in crontab(5).

As on a Debian node without a mail transfer agent, a job's output is discarded, and
every start is logged to ``/var/log/syslog``:
``Dec  3 10:15:01 controlplane CRON[412]: (root) CMD (/usr/local/bin/etcd-backup.sh)``.
A job of another user runs with that user's ids and groups; where the node maps only
uid 0 (:mod:`idmap`) it cannot start and is logged as an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from simulator.cron import CRON_D_NAME, broken_line, environment, insecure, parse_crontab, parse_schedule

SPOOL = "var/spool/cron/crontabs"
SYSLOG = "var/log/syslog"
CRON_PATH = "/usr/bin:/bin"


@dataclass(frozen=True)
class Job:
    """One line to run: whose it is, where it came from, and with what environment."""

    user: str
    schedule: str
    command: str
    env: tuple[tuple[str, str], ...]
    source: str


def split_percent(command: str) -> tuple[str, str | None]:
    """crontab(5): an unescaped ``%`` ends the command; the rest, with ``%`` as newlines, is
    its standard input. ``\\%`` is a literal ``%``."""
    out, i = [], 0
    while i < len(command):
        ch = command[i]
        if ch == "\\" and command[i + 1:i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if ch == "%":
            return "".join(out), command[i + 1:].replace("%", "\n") + "\n"
        out.append(ch)
        i += 1
    return "".join(out), None


class Crond:
    def __init__(self, rootfs: Path, hostname: str) -> None:
        self.rootfs = rootfs
        self.hostname = hostname
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.out_dir = rootfs / "run/cka-sim/cron"
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # the tables -----------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        jobs: list[Job] = []
        system = [self.rootfs / "etc/crontab"]
        cron_d = self.rootfs / "etc/cron.d"
        if cron_d.is_dir():
            system += sorted(p for p in cron_d.iterdir() if CRON_D_NAME.match(p.name))
        for path in system:
            text = self._read(path, system=True)
            if text is None:
                continue
            env = tuple(environment(text).items())
            entries = parse_crontab(text, "/" + str(path.relative_to(self.rootfs)), system=True)
            if broken_line(entries) is not None:
                self.log(self._table_name(path), "ERROR (Syntax error, this crontab file will be ignored)")
                continue
            jobs += [Job(e.user or "", e.schedule, e.command, env, e.source) for e in entries]
        spool = self.rootfs / SPOOL
        if spool.is_dir():
            for path in sorted(spool.iterdir()):
                text = self._read(path, system=False)
                if text is None:
                    continue
                env = tuple(environment(text).items())
                jobs += [Job(path.name, e.schedule, e.command, env, e.source)
                         for e in parse_crontab(text, path.name, system=False)]
        return jobs

    def _read(self, path: Path, system: bool) -> str | None:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                return None
            if system and insecure(st.st_mode):
                self.log(self._table_name(path), f"INSECURE MODE (group/other writable) (/{path.relative_to(self.rootfs)})")
                return None
            return path.read_text(errors="replace")
        except OSError:
            return None

    def _table_name(self, path: Path) -> str:
        return "*system*" + (path.name if path.parent.name == "cron.d" else "")

    # running --------------------------------------------------------------------------

    def _user(self, name: str) -> tuple[int, int, str] | None:
        try:
            lines = (self.rootfs / "etc/passwd").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            parts = line.split(":")
            if len(parts) >= 7 and parts[0] == name:
                return int(parts[2]), int(parts[3]), parts[5] or "/"
        return None

    def start(self, job: Job) -> None:
        found = self._user(job.user)
        if found is None:
            self.log(job.user, "ERROR (getpwnam() failed)")
            return
        uid, gid, home = found
        command, stdin = split_percent(job.command)
        # the file's NAME=value lines may change any of these but LOGNAME
        env = {"HOME": home, "PATH": CRON_PATH, "SHELL": "/bin/sh", **dict(job.env), "LOGNAME": job.user}
        shell = env["SHELL"]
        root = str(self.rootfs)

        def enter() -> None:
            os.chroot(root)
            try:
                os.chdir(home)
            except OSError:
                os.chdir("/")
            if uid != 0:
                os.initgroups(job.user, gid)  # the node's /etc/group, as cron's initgroups
                os.setgid(gid)
                os.setuid(uid)

        out = self.out_dir / f"{time.monotonic_ns()}.out"
        with open(out, "wb") as sink:
            try:
                proc = subprocess.Popen([shell, "-c", command], env=env, preexec_fn=enter, start_new_session=True,
                                        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                        stdout=sink, stderr=subprocess.STDOUT)
            except (OSError, subprocess.SubprocessError) as exc:
                self.log(job.user, f"CAN'T START ({exc})")
                out.unlink(missing_ok=True)
                return
        self.log(job.user, f"CMD ({command})", pid=proc.pid)
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except OSError:
                pass
        self.running.append((proc, out))

    def collect(self) -> None:
        """Forget finished jobs; note discarded output as cron does without a mailer."""
        still = []
        for proc, out in self.running:
            if proc.poll() is None:
                still.append((proc, out))
                continue
            try:
                wrote = out.stat().st_size > 0
            except OSError:
                wrote = False
            out.unlink(missing_ok=True)
            if wrote:
                self.log("CRON", "info (No MTA installed, discarding output)", pid=proc.pid)
        self.running = still

    def log(self, who: str, message: str, pid: int | None = None) -> None:
        stamp = time.strftime("%b %e %H:%M:%S")
        line = f"{stamp} {self.hostname} CRON[{pid or os.getpid()}]: ({who}) {message}\n"
        try:
            path = self.rootfs / SYSLOG
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(line)
        except OSError:
            pass

    def run_minute(self, when: time.struct_time) -> None:
        for job in self.jobs():
            schedule = parse_schedule(job.schedule)
            if schedule is not None and schedule.fires(when):
                self.start(job)

    def loop(self) -> None:
        try:
            (self.rootfs / "run/crond.pid").write_text(f"{os.getpid()}\n")
        except OSError:
            pass
        self.log("CRON", "INFO (pidfile fd = 3)")
        self.log("CRON", "INFO (Running @reboot jobs)")
        for job in self.jobs():
            if job.schedule.lower() == "@reboot":
                self.start(job)
        minute = int(time.time()) // 60 + 1
        while True:
            while time.time() < minute * 60:
                self.collect()
                time.sleep(min(1.0, max(0.01, minute * 60 - time.time())))
            self.run_minute(time.localtime(minute * 60))
            minute = max(minute + 1, int(time.time()) // 60 + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cron")
    parser.add_argument("--rootfs", required=True)
    parser.add_argument("--hostname", required=True)
    args = parser.parse_args(argv)
    try:
        Path("/proc/self/comm").write_text("cron")
    except OSError:
        pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        Crond(Path(args.rootfs), args.hostname).loop()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
