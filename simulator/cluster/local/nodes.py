"""Practice nodes made of Linux namespaces: rootfs, the cluster's network, LocalNode.

Each cluster has an *infra* process (``sleep``) holding a user namespace and a network
namespace with the bridge ``cka0`` (172.30.0.1/24). Each node is started inside those by
``unshare`` with a nested user, mount, pid, uts, ipc and network namespace whose PID 1 is
:mod:`simulator.cluster.local.nodeinit`. The caller becomes root in the node. Which other
ids exist there is :mod:`simulator.cluster.local.idmap`'s choice: as root (and for a user
with ``/etc/subuid`` ranges and ``newuidmap``) uids and gids 0-65535 are mapped at both
levels, so ``chown etcd:etcd``, ``useradd``, ``su - alice`` and ``sudo`` work as on a
kubeadm node; otherwise only 0 is, and files of other owners show up as ``nobody``. The
maps are written while the namespace's first process waits: the infra's by cka-sim
(the parent namespace), a node's from within the infra when the node is wired.

A node's ``/etc`` is a copy of the machine's files a Debian node has (users, PAM, sudoers,
login.defs, ...), made when the cluster is created, so later edits on the host do not
reach it; a missing ``/etc/shadow`` or ``/etc/gshadow`` (unreadable when not root) is
written from the node's passwd and group with locked passwords.

Every mount lives in the node's mount namespace: on the host, ``rootfs`` is a plain
directory whose ``usr``, ``proc``, ``dev`` and ``sys`` are empty, so removing it never
reaches the host's files.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import simulator
from simulator.cluster.local import idmap
from simulator.cluster.node import CANDIDATE, JUMP_HOST_ROLE, Completed, run_process
from simulator.cluster.shell import BASHRC, PROFILE
from simulator.errors import ClusterError, NamespacesUnavailable

BRIDGE = "cka0"
SUBNET_PREFIX = "172.30.0."
GATEWAY = SUBNET_PREFIX + "1"
PREFIX_LEN = 24
MARKER_ENV = "CKA_SIM_LOCAL_CLUSTER"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

NODE_SCRIPTS = {"crontab": Path(__file__).with_name("crontab.py"),
                "systemctl": Path(__file__).with_name("systemctl.py"),
                "journalctl": Path(__file__).with_name("systemctl.py")}
"""Standalone scripts every node gets in /usr/local/bin, besides the tools the driver passes."""

CRON_PLACEHOLDER = ("# DO NOT EDIT OR REMOVE\n"
                    "# This file is a simple placeholder to keep dpkg from removing this directory\n")
DEBIAN_CRONTAB = """# /etc/crontab: system-wide crontab
# Unlike any other crontab you don't have to run the `crontab'
# command to install the new version when you edit this file
# and files in /etc/cron.d. These files also have username fields,
# that none of the other crontabs do.

SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

# Example of job definition:
# .---------------- minute (0 - 59)
# |  .------------- hour (0 - 23)
# |  |  .---------- day of month (1 - 31)
# |  |  |  .------- month (1 - 12) OR jan,feb,mar,apr ...
# |  |  |  |  .---- day of week (0 - 6) (Sunday=0 or 7) OR sun,mon,tue,wed,thu,fri,sat
# |  |  |  |  |
# *  *  *  *  * user-name command to be executed
17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
#
"""
"""What Debian's cron package installs: a node has /etc/cron.d and the run-parts lines."""

_MOUNTED_TOP = frozenset({"usr", "proc", "sys", "dev"})
_PRIVATE_DIRS = ("etc", "var", "var/lib", "var/log", "var/tmp", "var/cache", "opt", "root",
                 "tmp", "home", "run", "run/cka-sim", "srv", "mnt", "media", "usr", "proc",
                 "sys", "dev", "boot")
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("passwd", "group", "shadow", "gshadow", "sudoers", "sudo.conf", "pam.conf",
              "securetty", "deluser.conf", "nsswitch.conf", "resolv.conf",
              "host.conf", "gai.conf", "profile", "bash.bashrc", "inputrc", "environment",
              "ld.so.cache", "ld.so.conf", "os-release", "debian_version", "lsb-release",
              "issue", "login.defs", "shells", "protocols", "services", "networks",
              "ethertypes", "localtime", "timezone", "ca-certificates.conf", "mime.types",
              "magic", "nanorc", "vimrc", "wgetrc", "locale.alias", "mke2fs.conf",
              "manpath.config", "adduser.conf", "redhat-release", "system-release",
              "alpine-release", "arch-release")
_ETC_DIRS = ("profile.d", "skel", "ssl", "ca-certificates", "pki", "alternatives",
             "ld.so.conf.d", "terminfo", "vim", "bash_completion.d", "default", "iproute2",
             "environment.d", "crypto-policies", "xdg", "pam.d", "security", "sudoers.d")

DEBIAN_SUDOERS = """\
Defaults\tenv_reset
Defaults\tmail_badpass
Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults\tuse_pty
root\tALL=(ALL:ALL) ALL
%sudo\tALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""
"""Debian's /etc/sudoers, for a node whose machine has sudo but no readable sudoers."""


JUMP_HOST_SCRIPTS = ("crontab",)
"""Of NODE_SCRIPTS, those a jump host gets: it runs no kubelet, so no systemctl for one."""


def node_ip(index: int, role: str) -> str:
    """Address of the ``index``-th node of a role: control planes from .10, workers from .20,
    the jump host .5."""
    if role == JUMP_HOST_ROLE:
        return f"{SUBNET_PREFIX}{5 + index}"
    return f"{SUBNET_PREFIX}{(10 if role == 'control-plane' else 20) + index}"


def proc_start(pid: int) -> int | None:
    """Start time (clock ticks since boot) of ``pid``, or None when no such process lives."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int | None, start: int | None) -> bool:
    """True when the process ``pid`` started at ``start`` is still running (no pid reuse)."""
    return bool(pid) and start is not None and proc_start(pid) == start


def _copy_etc(etc: Path) -> None:
    host = Path("/etc")
    root = os.geteuid() == 0
    for name in _ETC_FILES:
        src = host / name
        if not os.path.lexists(src):
            continue
        try:
            if src.is_symlink():
                os.symlink(os.readlink(src), etc / name)
                continue
            shutil.copy2(src, etc / name)
            st = src.stat()
            if root and (st.st_uid, st.st_gid) != (0, 0):  # shadow is root:shadow on Debian
                os.chown(etc / name, st.st_uid, st.st_gid)
        except OSError:
            continue
    _locked_shadow(etc / "shadow", etc / "passwd")
    _locked_shadow(etc / "gshadow", etc / "group")
    if not os.path.lexists(etc / "sudoers") and shutil.which("sudo", path=NODE_PATH):
        fd = os.open(etc / "sudoers", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o440)
        with os.fdopen(fd, "w") as fh:
            fh.write(DEBIAN_SUDOERS)
    for name in _ETC_DIRS:
        src = host / name
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, etc / name, symlinks=True, dirs_exist_ok=True,
                            ignore_dangling_symlinks=True, ignore=_unreadable_dirs,
                            copy_function=_copy_readable)


def _locked_shadow(shadow: Path, source: Path) -> None:
    """Write ``shadow`` (or ``gshadow``) from the node's ``passwd`` (``group``) with every
    password locked, where the machine's could not be copied: PAM (``su``, ``sudo``) and
    ``useradd`` read it."""
    if os.path.lexists(shadow):
        return
    try:
        names = [line.split(":", 1)[0] for line in source.read_text().splitlines()
                 if line and not line.startswith("#")]
    except OSError:
        return
    if shadow.name == "shadow":
        days = int(time.time() // 86400)
        lines = [f"{n}:*:{days}:0:99999:7:::" for n in names]
    else:
        lines = [f"{n}:*::" for n in names]
    fd = os.open(shadow, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(line + "\n" for line in lines))


def _unreadable_dirs(directory: str, names: list[str]) -> list[str]:
    """Directories an unprivileged user cannot list (``/etc/ssl/private``) are left out."""
    paths = ((n, os.path.join(directory, n)) for n in names)
    return [n for n, p in paths
            if os.path.isdir(p) and not os.path.islink(p) and not os.access(p, os.R_OK | os.X_OK)]


def _copy_readable(src: str, dst: str) -> None:
    try:
        shutil.copy2(src, dst)
    except PermissionError:
        pass


def prepare_rootfs(rootfs: Path, hostname: str, hosts: dict[str, str], *,
                   kube: bool = True) -> None:
    """Create a node's root directory: private /etc, /var, /root ... and links to /usr;
    with ``kube`` (all but a jump host) the directories kubeadm makes."""
    rootfs.mkdir(parents=True)
    for name in _PRIVATE_DIRS:
        (rootfs / name).mkdir(exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "var/tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)
    for name in _MERGED:
        host = Path("/") / name
        if host.is_symlink():
            os.symlink(os.readlink(host), rootfs / name)
        elif host.is_dir():
            (rootfs / name).mkdir()
    os.symlink("/run", rootfs / "var/run")
    os.symlink("/run/lock", rootfs / "var/lock")
    etc = rootfs / "etc"
    _copy_etc(etc)
    (etc / "hostname").write_text(hostname + "\n")
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{hostname}",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for name, ip in hosts.items()]
    (etc / "hosts").write_text("\n".join(lines) + "\n")
    (etc / "machine-id").write_text(os.urandom(16).hex() + "\n")
    if not os.path.lexists(etc / "mtab"):
        os.symlink("../proc/self/mounts", etc / "mtab")
    for sub in ("kubernetes/manifests", "kubernetes/pki") if kube else ():
        (etc / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("cron.d", "cron.hourly", "cron.daily", "cron.weekly", "cron.monthly"):
        (etc / sub).mkdir(mode=0o755, exist_ok=True)
        (etc / sub / ".placeholder").write_text(CRON_PLACEHOLDER)
    if not (etc / "crontab").exists():
        (etc / "crontab").write_text(DEBIAN_CRONTAB)
    (rootfs / "root/.bashrc").write_text(BASHRC)
    (rootfs / "root/.profile").write_text(PROFILE)
    for sub in ("var/lib/etcd",) if kube else ():
        (rootfs / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    (rootfs / "var/log/pods").mkdir(parents=True, exist_ok=True)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise NamespacesUnavailable(f"{name} is not installed",
                                    hint="Install util-linux (unshare, nsenter, chroot from "
                                         "coreutils) and iproute2 (ip).")
    return found


def _python_path() -> str:
    root = str(Path(simulator.__file__).resolve().parent.parent)
    extra = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + extra if extra else "")


def _read_line(fd: int, deadline: float, what: str, log: Path | None) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise ClusterError(f"{what} did not start in time", hint=_log_tail(log))
        chunk = os.read(fd, 4096)
        if not chunk:
            raise NamespacesUnavailable(f"{what} exited while starting", hint=_log_tail(log))
        buf += chunk
    return buf.decode().strip()


def _log_tail(log: Path | None, lines: int = 8) -> str:
    if log is None:
        return ""
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(tail) + "\nRun `cka-sim doctor` to check what this machine allows."


def start_infra(cluster_dir: Path, mapping: idmap.IdMapping, timeout: float = 10
                ) -> subprocess.Popen:
    """Start the cluster's infra process (user + network namespace, bridge) and return it.

    With a full ``mapping`` the shell says ``unshared`` and waits on its stdin until the
    maps are written: only then may the programs it runs (``ip``) be root with
    capabilities. The process runs in a session of its own with no terminal, so it
    outlives its creator.
    """
    read_fd, write_fd = os.pipe()
    log = cluster_dir / "infra.log"
    script = ('ip link add "$BRIDGE" type bridge && ip addr add "$ADDR" dev "$BRIDGE" && '
              'ip link set "$BRIDGE" up && ip link set lo up && echo ready && '
              'exec sleep infinity >/dev/null </dev/null')
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BRIDGE": BRIDGE,
           "ADDR": f"{GATEWAY}/{PREFIX_LEN}",
           MARKER_ENV: str(cluster_dir)}
    if mapping.full:
        argv = [_tool("unshare"), "--user", "--net", "--", "/bin/sh", "-c",
                "echo unshared && read -r go && " + script]
    else:
        argv = [_tool("unshare"), "--user", "--map-root-user", "--net", "--", "/bin/sh", "-c",
                script]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE if mapping.full else subprocess.DEVNULL,
            stdout=write_fd, stderr=out, start_new_session=True, cwd=cluster_dir)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    try:
        if mapping.full and proc.stdin is not None:
            _read_line(read_fd, deadline, "the cluster network", log)
            idmap.write_maps(proc.pid, mapping)
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        _read_line(read_fd, deadline, "the cluster network", log)
    except (ClusterError, OSError):
        _kill(proc.pid)
        proc.wait()
        raise
    finally:
        os.close(read_fd)
    return proc


class NodeProcess:
    """A node's init being started: spawned, then wired to the bridge, then ready."""

    def __init__(self, infra_pid: int, node_dir: Path, name: str, ip: str,
                 binaries: dict[str, Path], marker: Path, mapping: idmap.IdMapping, *,
                 jump_host: bool = False, images: Path | None = None) -> None:
        self.name, self.ip, self.node_dir = name, ip, node_dir
        self.rootfs = node_dir / "rootfs"
        self.log = node_dir / "supervisor.log"
        self.infra_pid = infra_pid
        self.mapping = mapping
        go_r, self._go_w = os.pipe()
        self._ready_r, ready_w = os.pipe()
        # with a full mapping the init keeps its capabilities (ambient) until `wire` has
        # written the node's maps; it mounts nothing before that
        userns = ["--keep-caps"] if mapping.full else ["--map-root-user"]
        argv = [_tool("nsenter"), "-t", str(infra_pid), "--user", "--preserve-credentials",
                "--net", "--",
                _tool("unshare"), "--user", *userns, "--mount", "--uts", "--ipc",
                "--net", "--pid", "--fork", "--kill-child", "--",
                sys.executable, "-m", "simulator.cluster.local.nodeinit",
                "--rootfs", str(self.rootfs), "--hostname", name,
                "--address", f"{ip}/{PREFIX_LEN}", "--gateway", GATEWAY,
                "--go-fd", str(go_r), "--ready-fd", str(ready_w),
                "--state-dir", str(self.rootfs / "run/cka-sim")]
        scripts = NODE_SCRIPTS
        if images is not None and not jump_host:
            argv += ["--images", str(images)]
        if jump_host:
            argv.append("--jump-host")
            scripts = {k: v for k, v in NODE_SCRIPTS.items() if k in JUMP_HOST_SCRIPTS}
        for tool, path in sorted({**scripts, **binaries}.items()):
            argv += ["--bin", f"{tool}={path}"]
        for name_ in _MERGED:
            if (self.rootfs / name_).is_dir() and not (self.rootfs / name_).is_symlink():
                argv += ["--ro-bind", f"/{name_}"]
        env = {"PATH": os.environ.get("PATH", NODE_PATH), "PYTHONPATH": _python_path(),
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", MARKER_ENV: str(marker)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, pass_fds=(go_r, ready_w),
                                         start_new_session=True, cwd=node_dir)
        os.close(go_r)
        os.close(ready_w)
        self.pid = 0
        self.start = 0

    def wire(self, deadline: float) -> None:
        """Wait for the init's pid, then (with a full mapping) write the node's uid and gid
        maps and plug its eth0 into the cluster bridge, from within the infra's namespaces
        in one process."""
        line = _read_line(self._ready_r, deadline, f"node {self.name}", self.log)
        if not line.startswith("pid "):
            raise NamespacesUnavailable(f"node {self.name} could not start: {line}",
                                        hint=_log_tail(self.log))
        self.pid = int(line.split()[1])
        self.start = proc_start(self.pid) or 0
        veth = f"veth-{self.ip.rsplit('.', 1)[1]}"
        batch = (f"link add {veth} type veth peer name eth0 netns {self.pid}\n"
                 f"link set {veth} master {BRIDGE}\nlink set {veth} up\n")
        run = [_tool("ip"), "-batch", "-"]
        if self.mapping.full:
            # each map in one write(2) (printf is a shell builtin), then exec ip
            run = ["/bin/sh", "-c", 'printf "%s\\n" "$1" >"/proc/$3/uid_map" && '
                   'printf "%s\\n" "$2" >"/proc/$3/gid_map" && shift 3 && exec "$@"',
                   "sh", *self.mapping.node_maps(), str(self.pid), *run]
        done = subprocess.run([_tool("nsenter"), "-t", str(self.infra_pid), "--user",
                               "--preserve-credentials", "--net", "--", *run],
                              input=batch.encode(), capture_output=True, timeout=10, check=False)
        if done.returncode != 0:
            what = "map the ids of node {} or connect it" if self.mapping.full else "connect node {}"
            raise ClusterError(f"could not {what.format(self.name)} to the cluster network",
                               hint=done.stderr.decode(errors="replace").strip())
        os.write(self._go_w, b"go\n")
        os.close(self._go_w)

    def ready(self, deadline: float) -> None:
        """Wait until the init has mounted everything and started the supervisor."""
        try:
            line = _read_line(self._ready_r, deadline, f"node {self.name}", self.log)
            if line != "ready":
                raise NamespacesUnavailable(f"node {self.name} could not start: {line}",
                                            hint=_log_tail(self.log))
        finally:
            os.close(self._ready_r)


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_process(pid: int, start: int | None, grace: float) -> None:
    """SIGTERM ``pid`` (if it is still the process started at ``start``), SIGKILL after ``grace``."""
    if not alive(pid, start):
        return
    if grace > 0:
        _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(pid, start):
                return
            time.sleep(0.02)
    if alive(pid, start):
        _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.01)


class LocalNode:
    """A running node of the embedded driver (implements the Node protocol)."""

    def __init__(self, name: str, ip: str, role: str, node_dir: Path, pid: int,
                 start: int) -> None:
        self.name, self.ip, self.role = name, ip, role
        self.node_dir = node_dir
        self.rootfs = node_dir / "rootfs"
        self.pid, self.start = pid, start

    def __repr__(self) -> str:
        return f"LocalNode({self.name!r}, ip={self.ip!r}, pid={self.pid})"

    def alive(self) -> bool:
        """True while the node's init (and so the node) runs."""
        return alive(self.pid, self.start)

    def _enter(self) -> list[str]:
        if not self.alive():
            raise ClusterError(f"node {self.name} is not running",
                               hint="Its processes were stopped or killed. Run `cka-sim stop` "
                                    "then start the task again.")
        return [_tool("nsenter"), "-t", str(self.pid), "--user", "--preserve-credentials",
                "--mount", "--uts", "--ipc",
                "--net", "--pid", "--", _tool("chroot"), str(self.rootfs)]

    def login_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a root login on the node, plus ``extra``."""
        env = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
               "PATH": NODE_PATH, "LANG": "C.UTF-8",
               "TERM": os.environ.get("TERM", "xterm-256color"), "HOSTNAME": self.name}
        env.update(extra or {})
        return env

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 30,
            env: dict[str, str] | None = None) -> Completed:
        """Run ``argv`` as root inside the node (login environment, cwd ``/root``)."""
        argv = [str(a) for a in argv]
        full = self._enter() + ["/usr/bin/env", "-C", "/root", "--"] + argv
        return run_process(full, argv, self.name, input=input, timeout=timeout,
                           env=self.login_env(env))

    def shell_argv(self, *, tty: bool | None = None) -> list[str]:
        """argv of an interactive root login shell on the node (ends with ``bash -l``); on
        a jump host ``candidate``'s login shell (``setpriv`` takes the user's ids and
        groups: no capabilities are left). ``tty`` changes nothing here: the shell inherits
        the caller's stdin, terminal or not."""
        if self.role == JUMP_HOST_ROLE:
            home = f"/home/{CANDIDATE}"
            env = self.login_env({"HOME": home, "USER": CANDIDATE, "LOGNAME": CANDIDATE,
                                  "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/games"})
            return self._enter() + [
                "/usr/bin/env", "-i", "-C", home, *[f"{k}={v}" for k, v in env.items()],
                _tool("setpriv"), "--reuid", CANDIDATE, "--regid", CANDIDATE, "--init-groups",
                "--", "bash", "-l"]
        env = [f"{k}={v}" for k, v in self.login_env().items()]
        return self._enter() + ["/usr/bin/env", "-i", "-C", "/root", *env, "bash", "-l"]

    def host_path(self, path: str, *, create_parents: bool = False) -> Path | None:
        """Where ``path`` of the node lives on the host, resolving symlinks inside the rootfs.

        None when the path lies on a mount of the node (``/usr``, ``/proc``, ``/dev``,
        ``/sys``), which the host cannot see.
        """
        if not path.startswith("/"):
            path = "/root/" + path
        pending = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = resolved + [part]
            if candidate[0] in _MOUNTED_TOP:
                return None
            host = self.rootfs.joinpath(*candidate)
            if host.is_symlink():
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(host)
                if target.startswith("/"):
                    resolved = []
                pending[:0] = [p for p in target.split("/") if p and p != "."]
                continue
            if create_parents and pending and not host.exists():
                host.mkdir()
            resolved = candidate
        return self.rootfs.joinpath(*resolved)

    def read_file(self, path: str) -> bytes:
        """Bytes of ``path`` as seen inside the node; FileNotFoundError if absent."""
        host = self.host_path(path)
        if host is None:
            done = self.run(["cat", "--", path])
            if not done.ok:
                raise FileNotFoundError(errno.ENOENT, done.err.strip() or "not found", path)
            return done.stdout
        if host == self.rootfs:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace ``path`` inside the node (parents created)."""
        host = self.host_path(path, create_parents=True)
        if host is None:
            script = ('mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"')
            self.run(["sh", "-c", script, "sh", path, f"{mode:o}"], input=data).check()
            return
        if host.is_symlink():
            host.unlink()
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(host, mode)
