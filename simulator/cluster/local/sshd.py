"""The OpenSSH server of an embedded node: ``ssh node01`` and ``scp`` between nodes as root.

Every node runs the machine's own ``/usr/sbin/sshd`` (Debian's ``openssh-server``; the
node's ``/usr`` is the host's), started by the node's init (:mod:`nodeinit`) as the node's
root, chrooted into the node's root directory, in the node's network namespace: it
listens on port 22 of the node's address. Its configuration, host key and root's keys
are the node's own files, written by the driver while the node starts (:func:`write_node`,
keys from :mod:`simulator.cluster.sshkeys`; ``sshd_config`` comes last), so the init
starts sshd from a thread once that file is there (:class:`Server`) and neither waits for
the other:

- ``/etc/ssh/sshd_config``: root logs in with a key only and without PAM (the key alone
  decides; the machine's session modules are no part of the exam), Debian's sftp server
  (``scp`` speaks SFTP); ``sshd_config.d/*.conf`` is read first, as on Debian;
- ``/etc/ssh/ssh_config`` (and ``ssh_config.d``): copies of the machine's client settings;
- the node's host key, root's client key, ``authorized_keys`` and ``known_hosts``.

sshd logs to ``/var/log/auth.log``, where Debian's syslog puts its lines.

Without ``sshd`` on the machine the node runs no server and ``ssh NODE`` is refused, as on
a node without one; ``cka-sim doctor`` says what to install. sshd's privilege separation
runs its network child as the ``sshd`` user: where a node maps only uid 0
(:mod:`idmap`'s single case) that user does not exist in the node, so no server is started
either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.cluster.sshkeys import ClusterKeys

SSHD = "/usr/sbin/sshd"
LOG = "/var/log/auth.log"
PRIVSEP_DIR = "/run/sshd"
PRIVSEP_USER = "sshd"
INSTALL_HINT = "sudo apt-get install openssh-server"
CONFIG = "/etc/ssh/sshd_config"
CONFIG_WAIT = 60.0

SSHD_CONFIG = """\
# The node's OpenSSH server, started by the node's init. As on the exam's nodes, root logs
# in to any node of the cluster with the key in /root/.ssh (ssh node01, scp FILE node01:).
Include /etc/ssh/sshd_config.d/*.conf

HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""
_CLIENT_CONFIG = ("ssh_config", "ssh_config.d")
_LOGIN_RECORDS = ("run/utmp", "var/log/wtmp", "var/log/lastlog")


def installed() -> bool:
    """True when the machine has OpenSSH's server, which every node then runs."""
    return os.access(SSHD, os.X_OK)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def write_node(rootfs: Path, name: str, keys: ClusterKeys) -> None:
    """Write node ``name``'s SSH files into its root directory ``rootfs``: the client and
    server configuration, its host key, root's key pair, authorized_keys and known_hosts."""
    from simulator.cluster.sshkeys import SSH_DIRS

    etc_ssh = rootfs / "etc/ssh"
    etc_ssh.mkdir(mode=0o755, exist_ok=True)
    for entry in _CLIENT_CONFIG:
        src = Path("/etc/ssh") / entry
        try:
            if src.is_dir():
                shutil.copytree(src, etc_ssh / entry, symlinks=True, dirs_exist_ok=True)
            elif src.is_file():
                shutil.copy2(src, etc_ssh / entry)
        except OSError:
            continue
    (etc_ssh / "sshd_config.d").mkdir(mode=0o755, exist_ok=True)
    for directory, mode in SSH_DIRS.items():
        path = rootfs / directory.lstrip("/")
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chmod(path, mode)
    for path, (data, mode) in keys.node_files(name).items():
        _write(rootfs / path.lstrip("/"), data, mode)
    for path in _LOGIN_RECORDS:  # where sshd records logins (who, last), as on Debian
        _write(rootfs / path, b"", 0o664)
    # last, and whole at once: the node's init starts sshd when this file appears
    _write(etc_ssh / "sshd_config.tmp", SSHD_CONFIG.encode(), 0o644)
    os.replace(etc_ssh / "sshd_config.tmp", etc_ssh / "sshd_config")


def _passwd_ids(rootfs: str, user: str) -> tuple[int, int] | None:
    try:
        with open(f"{rootfs}/etc/passwd", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 4 and fields[0] == user:
                    return int(fields[2]), int(fields[3])
    except (OSError, ValueError):
        return None
    return None


def _mapped(map_file: str, ident: int) -> bool:
    try:
        with open(map_file, encoding="ascii") as fh:
            ranges = [tuple(int(v) for v in line.split()) for line in fh if line.strip()]
    except (OSError, ValueError):
        return False
    return any(inside <= ident < inside + count for inside, _, count in ranges)


def why_not(rootfs: str) -> str | None:
    """Why the node at ``rootfs`` cannot run sshd (None: it can). Called in the node."""
    if not installed():
        return f"{SSHD} is not installed on this machine ({INSTALL_HINT})"
    if not os.path.isfile(f"{rootfs}{CONFIG}"):
        return f"the node has no {CONFIG}"
    ids = _passwd_ids(rootfs, PRIVSEP_USER)
    if ids is None:
        return f"the node's /etc/passwd has no {PRIVSEP_USER} user"
    if not (_mapped("/proc/self/uid_map", ids[0]) and _mapped("/proc/self/gid_map", ids[1])):
        return (f"the {PRIVSEP_USER} user ({ids[0]}:{ids[1]}) is not mapped into the node "
                "(only root is, as when cka-sim does not run as root)")
    return None


def start(rootfs: str) -> subprocess.Popen | None:
    """Start sshd in the node (called by the node's init, as the node's root); None, and a
    line on the init's log, when it cannot run here."""
    reason = why_not(rootfs)
    chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
    if reason is None and chroot is None:
        reason = "chroot is not installed"
    if reason is not None:
        print(f"sshd not started: {reason}", file=sys.stderr, flush=True)
        return None
    os.makedirs(f"{rootfs}{PRIVSEP_DIR}", mode=0o755, exist_ok=True)
    os.chmod(f"{rootfs}{PRIVSEP_DIR}", 0o755)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    return subprocess.Popen([chroot, rootfs, SSHD, "-D", "-E", LOG], env=env, cwd="/",
                            stdin=subprocess.DEVNULL, start_new_session=True)


class Server:
    """The node's sshd, started by a thread of the node's init as soon as the driver has
    written the node's ``sshd_config`` (at most CONFIG_WAIT seconds after the init starts),
    so the init goes on to run the node's pods without waiting."""

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sshd", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + CONFIG_WAIT
        while installed() and not os.path.isfile(f"{self.rootfs}{CONFIG}"):
            if self._stopping.wait(0.02) or time.monotonic() > deadline:
                break
        if not self._stopping.is_set():
            self.proc = start(self.rootfs)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        if self.proc is not None:
            self.proc.terminate()


def doctor_line() -> tuple[str, bool, str]:
    """(check, ok, detail) for ``cka-sim doctor``: whether nodes get an SSH server."""
    if not installed():
        return ("sshd", False, f"not installed; `ssh NODE` and `scp` between nodes need "
                               f"OpenSSH's server: {INSTALL_HINT}")
    from simulator.cluster.local import idmap

    if not idmap.choose().full:
        return ("sshd", False, f"{SSHD} is here, but nodes map only root, so it cannot run "
                               "there (its privilege separation user is missing): see "
                               "uid/gid mapping")
    return ("sshd", True, f"{SSHD}: every node runs it (`ssh NODE`, `scp` between nodes)")


__all__ = ["INSTALL_HINT", "SSHD", "SSHD_CONFIG", "Server", "doctor_line", "installed", "start",
           "why_not", "write_node"]
