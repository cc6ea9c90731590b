"""PID 1 of a practice node: mounts the node's filesystem, joins the network, runs the kubelet.

Started by :class:`simulator.cluster.local.nodes.NodeProcess` inside fresh user, mount,
uts, ipc, net and pid namespaces, with the host's view of the filesystem. It

1. writes ``pid <host pid>`` on the ready fd and waits for ``go``: its user namespace's
   uid and gid maps have been written (where more than root is mapped, it runs until then
   with no mapped uid and the capabilities ``unshare --keep-caps`` left it, which it drops
   afterwards) and its ``eth0`` plugged into the bridge;
2. binds the host's ``/usr`` read-only at ``rootfs/usr``, a tmpfs at ``rootfs/usr/local/bin``
   holding the cluster's programs, mounts proc (of the node's pid namespace), sysfs, a
   minimal ``/dev`` (no disks) sharing the host's devpts, so the terminal a learner's
   shell runs on is a ``/dev/pts/N`` of the node too (``tty``, ``script``, ``tmux`` work);
   sets the hostname, configures ``lo`` and ``eth0``;
3. writes ``ready``, starts the node's cron daemon (:mod:`crond`) and OpenSSH server
   (:mod:`sshd`) and becomes the static-pod supervisor, which as PID 1 also reaps
   orphans. SIGTERM stops every container gracefully, then PID 1 and the node end. A
   jump host (``--jump-host``) runs no kubelet: PID 1 only reaps (:func:`run_jump_host`).

It also plays systemd for ``systemctl`` and ``journalctl`` (:mod:`services`): the kubelet's
unit files are laid where kubeadm's packages put them (those under ``/usr`` through a
read-only overlay, :func:`provide_usr_files`), the agent's log goes to the node's journal,
and a service manager thread stops and starts the agent (``kubelet.service``).

The mount and network set-up uses the standard library only.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_STATVFS_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                  (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, 1024),
                  (os.ST_NODIRATIME, 2048), (os.ST_RELATIME, 1 << 21))
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p)


def mount(source: str, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); OSError naming the target on failure."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                   flags, data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def bind(source: str, target: str, readonly: bool = False, recursive: bool = False) -> None:
    """Bind ``source`` at ``target``, read-only keeping the flags the kernel locks."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        locked = 0
        flags = os.statvfs(target).f_flag
        for st_flag, ms_flag in _STATVFS_TO_MS:
            if flags & st_flag:
                locked |= ms_flag
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def _touch(path: str) -> None:
    with open(path, "a"):
        pass


def setup_mounts(rootfs: str, binaries: dict[str, str], ro_binds: list[str]) -> None:
    """Build the node's filesystem under ``rootfs`` (in this mount namespace only)."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    bind("/usr", f"{rootfs}/usr", readonly=True, recursive=True)
    for path in ro_binds:
        bind(path, f"{rootfs}{path}", readonly=True, recursive=True)
    local_bin = f"{rootfs}/usr/local/bin"
    mount("tmpfs", local_bin, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for name, src in binaries.items():
        dst = f"{local_bin}/{name}"
        if src.endswith(".py"):
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755)
        else:
            _touch(dst)
            bind(src, dst, readonly=True)
    mount("proc", f"{rootfs}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        mount("sysfs", f"{rootfs}/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except OSError:
        bind("/sys", f"{rootfs}/sys", readonly=True, recursive=True)
    dev = f"{rootfs}/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _touch(f"{dev}/{name}")
            bind(f"/dev/{name}", f"{dev}/{name}")
    for sub in ("pts", "shm", "mqueue"):
        os.mkdir(f"{dev}/{sub}")
    try:
        bind("/dev/pts", f"{dev}/pts")
    except OSError:
        mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620")
    # New terminals (sshd's, tmux's, script's) come from the devpts beside /dev/ptmx, as in
    # a container: a bind of the host's ptmx device node makes the kernel look for pts next
    # to the bound file, outside the bind, and every openpty() fails with ENOENT.
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("core", "/proc/kcore")):
        os.symlink(target, f"{dev}/{name}")
    os.makedirs(f"{rootfs}/run/lock", exist_ok=True)


KUBELET_DIRS = ("/usr/libexec/kubernetes/kubelet-plugins/volume/exec",)
"""Directories under ``/usr`` a kubeadm node has (hostPath volumes of the control plane)."""


def provide_usr_dirs(rootfs: str, paths: tuple[str, ...] = KUBELET_DIRS) -> None:
    """Make each of ``paths`` (under ``/usr``) exist in the node although ``/usr`` is the
    host's, read-only: the deepest existing ancestor below ``/usr`` is covered with a
    read-only tmpfs holding binds of all its host entries plus the missing directories."""
    for path in paths:
        if os.path.isdir(path):
            continue
        parts = path.strip("/").split("/")
        base = "/" + "/".join(parts[:2])
        for depth in range(2, len(parts)):
            candidate = "/" + "/".join(parts[:depth])
            if not os.path.isdir(candidate):
                break
            base = candidate
        target = f"{rootfs}{base}"
        if not os.path.isdir(base) or os.path.ismount(target):
            continue
        entries = sorted(os.scandir(base), key=lambda e: e.name)
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for entry in entries:
            inside = f"{target}/{entry.name}"
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), inside)
            elif entry.is_dir():
                os.mkdir(inside)
                bind(entry.path, inside, readonly=True, recursive=True)
            else:
                _touch(inside)
                bind(entry.path, inside, readonly=True)
        os.makedirs(f"{rootfs}{path}", exist_ok=True)
        mount("none", target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def provide_usr_files(rootfs: str, files: dict[str, str], spare: str) -> None:
    """Make each of ``files`` (paths under ``/usr`` to their text) exist in the node where
    the host lacks it: a read-only overlay on the deepest existing directory above it puts
    a directory under ``spare`` (outside the node's root) over the host's, whose entries
    stay visible. A file the host has is left alone."""
    by_base: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        if os.path.lexists(path):
            continue
        base = os.path.dirname(path)
        while not os.path.isdir(base):
            base = os.path.dirname(base)
        if base in ("/", "/usr"):
            continue
        by_base.setdefault(base, {})[os.path.relpath(path, base)] = text
    for index, (base, entries) in enumerate(sorted(by_base.items())):
        upper = os.path.join(spare, str(index))
        for rel, text in entries.items():
            os.makedirs(os.path.dirname(os.path.join(upper, rel)), exist_ok=True)
            with open(os.path.join(upper, rel), "w") as out:
                out.write(text)
        mount("overlay", f"{rootfs}{base}", "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV,
              f"lowerdir={upper}:{base}")


def _provide_unit_files(rootfs: str, node_ip: str) -> None:
    """The kubelet's unit and configuration files (:mod:`services`); a node without them
    still runs, so a failure is only logged."""
    from pathlib import Path

    from simulator.cluster.local import services

    try:
        services.write_unit_files(Path(rootfs), node_ip)
        provide_usr_files(rootfs, services.USR_FILES, str(Path(rootfs).parent / "usr-extra"))
    except OSError as exc:
        print(f"nodeinit: unit files: {exc}", file=sys.stderr, flush=True)


def setup_network(address: str, gateway: str) -> None:
    """Bring up ``lo`` and ``eth0`` with ``address`` and a default route via ``gateway``."""
    batch = (f"link set lo up\naddr add {address} dev eth0\nlink set eth0 up\n"
             f"route add default via {gateway}\n")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "-batch", "-"], input=batch.encode(), check=True)


def _host_pid() -> int:
    return int(os.readlink("/proc/self"))


PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522


def drop_kept_caps() -> None:
    """Clear the ambient and inheritable capabilities ``unshare --keep-caps`` raised, as a
    node's root has them (none): root has every capability anyway, and no process that
    changes to another user may keep them."""
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two of {effective, permitted, inheritable}
    if _libc.capget(header, data) == 0:
        data[2] = data[5] = 0
        _libc.capset(header, data)


def run_supervisor(rootfs: str, name: str, state_dir: str, address: str = "",
                   images: str = "") -> None:
    """Run the static-pod supervisor in this process (PID 1) until SIGTERM, with the
    kubelet's API duties (:mod:`simulator.cluster.local.kubelet`) in a thread beside it."""
    import logging
    from pathlib import Path

    from simulator.cluster.local import sshd
    from simulator.cluster.local.kubelet import Kubelet
    from simulator.cluster.local.services import Journal, JournalHandler, node_services
    from simulator.cluster.local.supervisor import Supervisor

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    journal = Journal(Path(state_dir))
    logging.getLogger().addHandler(JournalHandler(journal))
    node_ip = address.split("/", 1)[0]
    kubelet = Kubelet(Path(rootfs), name, node_ip, Path(state_dir))
    supervisor = Supervisor(Path(rootfs), name, Path(state_dir), pod_hooks=kubelet.pods_changed,
                            images=Path(images) if images else None, node_ip=node_ip)
    kubelet.runtime = supervisor
    # the node's cron service: a process of its own, so that it waits for its jobs itself
    cron = subprocess.Popen([sys.executable, "-m", "simulator.cluster.local.crond", "--rootfs", rootfs,
                             "--hostname", name], stdin=subprocess.DEVNULL, start_new_session=True)
    ssh = sshd.Server(rootfs)  # the node's OpenSSH server (ssh node01), when it can run here
    manager = node_services(Path(state_dir), journal, supervisor, kubelet, cron.pid, Path(rootfs))
    kubelet.start()
    try:
        supervisor.run()
    finally:
        manager.stop()
        kubelet.stop()
        cron.terminate()
        ssh.stop()


def run_jump_host(rootfs: str, name: str) -> None:
    """PID 1 of a jump host (no Kubernetes node): the node's cron daemon and OpenSSH server,
    and the reaping of orphans, until SIGTERM."""
    import threading

    from simulator.cluster.local import sshd

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    cron = subprocess.Popen([sys.executable, "-m", "simulator.cluster.local.crond", "--rootfs",
                             rootfs, "--hostname", name], stdin=subprocess.DEVNULL,
                            start_new_session=True)
    ssh = sshd.Server(rootfs)
    try:
        while not stopping.wait(0.5):
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
    finally:
        cron.terminate()
        ssh.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeinit")
    parser.add_argument("--rootfs", required=True)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--go-fd", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--bin", action="append", default=[])
    parser.add_argument("--ro-bind", action="append", default=[])
    parser.add_argument("--jump-host", action="store_true")
    parser.add_argument("--images", default="", help="the image store of workload pods")
    args = parser.parse_args(argv)
    ready = os.fdopen(args.ready_fd, "w", buffering=1)
    started = time.monotonic()
    try:
        binaries = dict(item.split("=", 1) for item in args.bin)
        ready.write(f"pid {_host_pid()}\n")
        with os.fdopen(args.go_fd, "r") as go:
            if go.readline().strip() != "go":
                return 1
        drop_kept_caps()
        setup_mounts(args.rootfs, binaries, args.ro_bind)
        if not args.jump_host:
            provide_usr_dirs(args.rootfs)
            _provide_unit_files(args.rootfs, args.address.split("/", 1)[0])
        socket.sethostname(args.hostname)
        setup_network(args.address, args.gateway)
        os.makedirs(args.state_dir, exist_ok=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        ready.write(f"error {exc}\n")
        return 1
    print(f"node {args.hostname} up in {time.monotonic() - started:.3f}s", file=sys.stderr,
          flush=True)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ready.write("ready\n")
    ready.close()
    if args.jump_host:
        run_jump_host(args.rootfs, args.hostname)
    else:
        run_supervisor(args.rootfs, args.hostname, args.state_dir, args.address, args.images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
