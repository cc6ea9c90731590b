"""Start one static-pod container: its own root, hostPath binds, chroot, exec.

Usage (run by the supervisor with the node's host view of the filesystem)::

    python -m simulator.cluster.local.container --rootfs R --id ID \\
        [--bind SRC:DST[:OPTS]]... [--workdir D] [--env K=V]... \\
        [--image DIR] [--join /proc/PID/ns/NS]... -- argv...
    python container.py --pause HOSTNAME

(the supervisor runs this file directly with ``python -I -S``: it needs nothing beyond
the standard library, and skipping ``site`` and the package imports makes starts faster).

Like a container on a kubeadm node, the container gets a root filesystem of its own (the
"image") and sees the node's directories only through its hostPath volumes. The root is
a fresh directory of the node, ``/run/containerd/io.containerd.runtime.v2.task/k8s.io/ID/rootfs``
(where containerd keeps it), holding the node's ``/usr`` (with ``/usr/local/bin``)
read-only, ``bin``/``lib``/``lib64``/``sbin`` as on the node, a few files of ``/etc``
(passwd, group, hosts, resolv.conf, nsswitch.conf) copied from the node, empty writable
``var``, ``tmp``, ``run`` and ``root``, and the node's ``dev``, ``proc`` and ``sys``.
What the container writes outside its volumes lands in that directory, never in the
node's own files, and a restarted container (a new ID) starts from a fresh root.

``SRC`` (the volume's hostPath) and ``DST`` (its mountPath) are paths inside the node and
inside the container. ``OPTS`` is a comma list: ``ro`` for a read-only mount and
``type=<hostPath type>`` (``DirectoryOrCreate``, ``Directory``, ``FileOrCreate``, ``File``,
``Socket``, ``CharDevice``, ``BlockDevice``); without a type a missing source is created as
a directory, as container runtimes do.

The launcher first enters a mount namespace of its own (so no mount is ever seen by the
node or the host) and chroots into the node: every hostPath, and every symlink in it,
resolves inside the node. Mount points resolve inside the container's root. Then it
chroots into the container's root and execs the command.

Exit codes follow container runtimes: 127 when the command is not found, 126 when it
cannot be executed, 128 when the container could not be set up (a mount failed).
A workload pod's container (``--image``) gets the image's root filesystem instead, read-only
under a writable layer of its own (an overlay in its bundle directory), with the node's
``dev``, ``proc`` and ``sys``, and joins its pod sandbox's network, uts and ipc namespaces
(``--join``). The sandbox is held by ``--pause HOSTNAME``: a process in new network, uts
and ipc namespaces that sleeps until killed, as the pause container does.

This module uses the standard library only: it runs once per container start.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import stat
import sys
from collections.abc import Sequence

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
PR_SET_PDEATHSIG = 1

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

TASKS_DIR = "run/containerd/io.containerd.runtime.v2.task/k8s.io"
"""Where container bundles live, relative to the node's root (as on a containerd node)."""

_ROOT_DIRS = ("usr", "etc", "var", "tmp", "run", "root", "dev", "proc", "sys")
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("passwd", "group", "hosts", "resolv.conf", "nsswitch.conf")
_NODE_MOUNTS = ("dev", "proc", "sys")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

HOSTPATH_TYPES = (
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)

EXIT_SETUP = 128
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

_STATVFS_TO_MS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


class SetupError(Exception):
    """The container could not be set up; the message is what a runtime would report."""


@dataclasses.dataclass(frozen=True)
class Bind:
    """One hostPath volume: ``source`` (hostPath) bound at ``target`` (mountPath)."""

    source: str
    target: str
    read_only: bool = False
    type: str = ""

    @classmethod
    def parse(cls, spec: str) -> Bind:
        """Parse ``SRC:DST[:OPTS]``; raise ValueError on a malformed spec."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"bad --bind {spec!r}: expected SRC:DST[:ro]")
        read_only, type_ = False, ""
        for opt in (parts[2].split(",") if len(parts) == 3 else []):
            if opt == "ro":
                read_only = True
            elif opt in ("rw", ""):
                read_only = False
            elif opt.startswith("type="):
                type_ = opt[len("type=") :]
                if type_ not in HOSTPATH_TYPES:
                    raise ValueError(f"bad --bind {spec!r}: unknown hostPath type {type_!r}")
            else:
                raise ValueError(f"bad --bind {spec!r}: unknown option {opt!r}")
        for path in parts[:2]:
            if not path.startswith("/"):
                raise ValueError(f"bad --bind {spec!r}: paths must be absolute")
        return cls(parts[0], parts[1], read_only, type_)

    def to_arg(self) -> str:
        """The ``--bind`` value that :meth:`parse` reads back into this Bind."""
        opts = [o for o in ("ro" if self.read_only else "", f"type={self.type}" if self.type else "") if o]
        return f"{self.source}:{self.target}" + (":" + ",".join(opts) if opts else "")


@dataclasses.dataclass
class Spec:
    """Everything needed to start one container."""

    rootfs: str
    container_id: str
    argv: list[str]
    binds: list[Bind] = dataclasses.field(default_factory=list)
    workdir: str = "/"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    image: str = ""  # host path of an image's root filesystem (workload pods)
    node_image: str = ""  # host path of an image laid over the node's /usr (its usr/local/bin)
    join: list[str] = dataclasses.field(default_factory=list)  # namespaces (host paths)


def parse_args(args: Sequence[str]) -> Spec:
    """Read the command line described in the module docstring; raise ValueError if bad."""
    args = list(args)
    if "--" not in args:
        raise ValueError("missing '--' before the container command")
    split = args.index("--")
    opts, argv = args[:split], args[split + 1 :]
    rootfs, container_id, workdir = "", "", "/"
    binds: list[Bind] = []
    env: dict[str, str] = {}
    image = ""
    node_image = ""
    join: list[str] = []
    i = 0
    while i < len(opts):
        name = opts[i]
        if "=" in name and name.startswith("--"):
            name, value = name.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(opts):
                raise ValueError(f"option {name} needs a value")
            value = opts[i + 1]
            i += 2
        if name == "--rootfs":
            rootfs = value
        elif name == "--id":
            if not value or value[0] in "._-" or not _ID_CHARS.issuperset(value):
                raise ValueError(f"bad --id {value!r}: letters, digits, '_', '.' and '-' only")
            container_id = value
        elif name == "--bind":
            binds.append(Bind.parse(value))
        elif name == "--workdir":
            workdir = value or "/"
        elif name == "--image":
            image = value
        elif name == "--node-image":
            node_image = value
        elif name == "--join":
            join.append(value)
        elif name == "--env":
            key, sep, val = value.partition("=")
            if not sep or not key:
                raise ValueError(f"bad --env {value!r}: expected K=V")
            env[key] = val
        else:
            raise ValueError(f"unknown option {name}")
    if not rootfs:
        raise ValueError("--rootfs is required")
    if not container_id:
        raise ValueError("--id is required")
    return Spec(rootfs=rootfs, container_id=container_id, argv=argv, binds=binds, workdir=workdir, env=env,
                image=image, node_image=node_image, join=join)


def bundle_dir(rootfs: str | os.PathLike[str], container_id: str) -> str:
    """The container's bundle directory, ``<rootfs>/run/containerd/.../k8s.io/<id>``."""
    return os.path.join(rootfs, TASKS_DIR, container_id)


def container_root(rootfs: str | os.PathLike[str], container_id: str) -> str:
    """The container's own root directory: ``rootfs`` under its bundle directory."""
    return os.path.join(bundle_dir(rootfs, container_id), "rootfs")


def resolve_in(root: str, path: str) -> str:
    """``path`` as seen by a process chrooted into ``root``: every symlink is followed
    inside ``root`` and ``..`` never climbs above it. Missing components are kept as they
    are, so the result can be created with ``os.makedirs``."""
    pending = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = os.path.join(root, *resolved, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(here)
            if target.startswith("/"):
                resolved = []
            pending[:0] = [p for p in target.split("/") if p and p != "."]
            continue
        resolved.append(part)
        if not os.path.isdir(here):
            resolved += pending
            break
    return os.path.join(root, *resolved)


def _mount_points(prefix: str) -> list[str]:
    """Mount points of this mount namespace at or below ``prefix``, outermost first."""
    found = []
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            point = _unescape(line.split(b" ")[4])
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                found.append(point)
    return found


def _unescape(field: bytes) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as ``\\ooo``."""
    parts = field.split(b"\\")
    out = bytearray(parts[0])
    for part in parts[1:]:
        if len(part) >= 3 and all(48 <= c <= 55 for c in part[:3]):
            out.append(int(part[:3], 8))
            out += part[3:]
        else:
            out += b"\\" + part
    return out.decode(errors="surrogateescape")


def remove_bundle(rootfs: str | os.PathLike[str], container_id: str) -> bool:
    """Delete a container's bundle directory (its root included) without ever crossing a
    mount: if anything is mounted inside it in this mount namespace, nothing is deleted
    and False is returned; directories on another device are left alone too.
    Returns True when the directory is gone."""
    top = bundle_dir(rootfs, container_id)
    try:
        top_dev = os.lstat(top).st_dev
    except FileNotFoundError:
        return True
    try:
        if _mount_points(os.path.realpath(top)):
            return False
    except OSError:
        return False
    return _remove_tree(top, top_dev)


def _remove_tree(path: str, dev: int) -> bool:
    clean = True
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            clean = False
            continue
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev or not _remove_tree(entry.path, dev):
                clean = False
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError:
            clean = False
    if clean:
        try:
            os.rmdir(path)
        except OSError:
            return False
    return clean


def _libc() -> ctypes.CDLL:
    # The interpreter links the C library, so its own symbols hold mount() and friends;
    # this avoids ctypes.util, whose imports cost more than the rest of a container start.
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "mount"):
        import ctypes.util as ctypes_util

        libc = ctypes.CDLL(ctypes_util.find_library("c") or "libc.so.6", use_errno=True)
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, flags: int, what: str) -> None:
    src = source.encode() if source is not None else None
    _check(libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None), what)


def _prepare_source(bind: Bind) -> bool:
    """Check or create the hostPath as its type demands; return True if it is a directory."""
    src = bind.source
    try:
        st = os.stat(src)
    except FileNotFoundError:
        st = None
    if st is None:
        if bind.type in ("", "DirectoryOrCreate"):
            try:
                os.makedirs(src, mode=0o755, exist_ok=True)
            except OSError as exc:
                raise SetupError(f"mkdir {src}: {exc.strerror}") from None
            return True
        if bind.type == "FileOrCreate":
            try:
                os.makedirs(os.path.dirname(src) or "/", exist_ok=True)
                os.close(os.open(src, os.O_CREAT | os.O_WRONLY, 0o644))
            except OSError as exc:
                raise SetupError(f"create {src}: {exc.strerror}") from None
            return False
        raise SetupError(f"hostPath type check failed: {src} does not exist")
    checks = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if bind.type in checks:
        test, what = checks[bind.type]
        if not test(st.st_mode):
            raise SetupError(f"hostPath type check failed: {src} is not {what}")
    return stat.S_ISDIR(st.st_mode)


def _prepare_target(target: str, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    try:
        if is_dir:
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    except OSError as exc:
        raise SetupError(f"create mount point {target}: {exc.strerror}") from None


def _make_read_only(libc: ctypes.CDLL, target: str, what: str) -> None:
    # A remount must keep the flags the kernel locked on the source mount.
    current = os.statvfs(target).f_flag
    if current & os.ST_RDONLY:
        return
    kept = sum(ms for st, ms in _STATVFS_TO_MS if current & st)
    _mount(libc, None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, what + " (read-only)")


def _bind(libc: ctypes.CDLL, bind: Bind, root: str) -> None:
    is_dir = _prepare_source(bind)
    try:
        target = resolve_in(root, bind.target)
    except OSError as exc:
        raise SetupError(f"mount point {bind.target}: {exc.strerror}") from None
    _prepare_target(target, is_dir)
    what = f"mount {bind.source} on {bind.target}"
    _mount(libc, bind.source, target, MS_BIND | MS_REC, what)
    if bind.read_only:
        _make_read_only(libc, target, what)


def _copy_file(source: str, target: str) -> None:
    try:
        with open(source, "rb") as src:
            data = src.read()
    except OSError:
        return
    with open(target, "wb") as dst:
        dst.write(data)


def build_root(libc: ctypes.CDLL, root: str, read_only_mounts: Sequence[str]) -> None:
    """Create the container's root at ``root`` from the node's ``/`` (the current root):
    directories, links and ``/etc`` copies, then bind the node's ``/usr`` read-only (with
    every mount below it, listed in ``read_only_mounts`` as paths inside the node) and its
    ``dev``, ``proc`` and ``sys``. Only for use in a private mount namespace."""
    try:
        os.makedirs(root, mode=0o755)
        for name in _ROOT_DIRS:
            os.mkdir(os.path.join(root, name), 0o755)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        os.chmod(os.path.join(root, "root"), 0o700)
        merged_dirs = []
        for name in _MERGED:
            node_path = "/" + name
            if os.path.islink(node_path):
                os.symlink(os.readlink(node_path), os.path.join(root, name))
            elif os.path.isdir(node_path):
                os.mkdir(os.path.join(root, name), 0o755)
                merged_dirs.append(name)
        for name in _ETC_FILES:
            _copy_file(f"/etc/{name}", os.path.join(root, "etc", name))
    except OSError as exc:
        raise SetupError(f"create container root {root}: {exc.strerror}") from None
    for name in ("usr", *merged_dirs):
        target = os.path.join(root, name)
        _mount(libc, "/" + name, target, MS_BIND | MS_REC, f"mount /{name} on {target}")
        _make_read_only(libc, target, f"mount /{name}")
    for inside in read_only_mounts:
        target = root + inside
        if os.path.exists(target):
            _make_read_only(libc, target, f"mount {inside}")
    for name in _NODE_MOUNTS:
        if os.path.isdir("/" + name):
            target = os.path.join(root, name)
            _mount(libc, "/" + name, target, MS_BIND | MS_REC, f"mount /{name} on {target}")


def image_root(libc: ctypes.CDLL, image: str, bundle: str) -> str:
    """Mount the image's root filesystem read-only under a writable layer of the container's
    own (``upper`` and ``work`` in its bundle), as containerd's overlay snapshotter does;
    return the container's root. Paths are as this process sees them (before the chroot)."""
    root = os.path.join(bundle, "rootfs")
    try:
        for sub in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(bundle, sub), mode=0o755)
    except OSError as exc:
        raise SetupError(f"create container root {root}: {exc.strerror}") from None
    options = f"lowerdir={image},upperdir={bundle}/upper,workdir={bundle}/work".encode()
    _check(libc.mount(b"overlay", root.encode(), b"overlay", ctypes.c_ulong(0), options),
           f"mount image {image} on {root}")
    return root


def _image_programs(libc: ctypes.CDLL, image: str, root: str) -> None:
    """Lay an image's ``/usr/local/bin`` over the node's: a fresh tmpfs (the node's cluster
    programs are not in the image) holding the image's programs, read-only."""
    source = os.path.join(image, "usr/local/bin")
    target = os.path.join(root, "usr/local/bin")
    _check(libc.mount(b"tmpfs", target.encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                      b"mode=755,size=64k"), f"mount tmpfs on {target}")
    for name in sorted(os.listdir(source)):
        path = os.path.join(target, name)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o755))
        _mount(libc, os.path.join(source, name), path, MS_BIND, f"mount {name} on {path}")
    if os.path.isdir("/etc/alternatives"):  # the node's iptables is a link through it
        alternatives = os.path.join(root, "etc/alternatives")
        os.makedirs(alternatives, exist_ok=True)
        _mount(libc, "/etc/alternatives", alternatives, MS_BIND | MS_REC, "mount /etc/alternatives")


def join_namespaces(libc: ctypes.CDLL, paths: Sequence[str]) -> None:
    """Enter the pod sandbox's namespaces (network, uts, ipc) given as ``/proc/PID/ns/*``."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SetupError(f"open namespace {path}: {exc.strerror}") from None
        try:
            _check(libc.setns(fd, 0), f"join namespace {path}")
        finally:
            os.close(fd)


def setup(spec: Spec) -> None:
    """Enter a private mount namespace, build the container's root inside the node (from the
    node's ``/usr``, or from an image), bind every volume from the node into it, then chroot
    into it."""
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    join_namespaces(libc, spec.join)
    _check(libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount(libc, None, "/", MS_REC | MS_PRIVATE, "make / private")
    node_root = os.path.realpath(spec.rootfs)
    if spec.image:
        image_root(libc, spec.image, bundle_dir(node_root, spec.container_id))
    elif spec.node_image:  # seen from inside the node, below, at <bundle>/image
        staging = os.path.join(bundle_dir(node_root, spec.container_id), "image")
        os.makedirs(staging, exist_ok=True)
        _mount(libc, spec.node_image, staging, MS_BIND | MS_REC, f"mount image {spec.node_image}")
    try:
        below_usr = [p[len(node_root):] for p in _mount_points(os.path.join(node_root, "usr"))]
    except OSError:
        below_usr = []
    try:
        os.chroot(node_root)
        os.chdir("/")
    except OSError as exc:
        raise SetupError(f"chroot {spec.rootfs}: {exc.strerror}") from None
    root = container_root("/", spec.container_id)
    if spec.image:
        for name in _NODE_MOUNTS:
            target = os.path.join(root, name)
            os.makedirs(target, exist_ok=True)
            _mount(libc, "/" + name, target, MS_BIND | MS_REC, f"mount /{name} on {target}")
    else:
        build_root(libc, root, [p for p in below_usr if p != "/usr"])
    if spec.node_image:
        _image_programs(libc, os.path.join(bundle_dir("/", spec.container_id), "image"), root)
    for bind in spec.binds:
        _bind(libc, bind, root)
    try:
        os.chroot(root)
        os.chdir("/")
    except OSError as exc:
        raise SetupError(f"chroot {root}: {exc.strerror}") from None
    try:
        os.makedirs(spec.workdir, exist_ok=True)
        os.chdir(spec.workdir)
    except OSError as exc:
        raise SetupError(f"chdir to cwd ({spec.workdir!r}) set in config.json failed: {exc.strerror}") from None


def exec_command(spec: Spec) -> int:
    """Replace this process with the container command; return an exit code if that fails."""
    env = {"PATH": DEFAULT_PATH, **spec.env}
    if not spec.argv:
        print("no command specified", file=sys.stderr)
        return EXIT_SETUP
    name = spec.argv[0]
    try:
        os.execvpe(name, spec.argv, env)
    except FileNotFoundError:
        if "/" in name:
            print(f'exec: "{name}": stat {name}: no such file or directory', file=sys.stderr)
        else:
            print(f'exec: "{name}": executable file not found in $PATH', file=sys.stderr)
        return EXIT_NOT_FOUND
    except PermissionError:
        print(f'exec: "{name}": permission denied', file=sys.stderr)
        return EXIT_NOT_EXECUTABLE
    except OSError as exc:
        print(f'exec: "{name}": {exc.strerror}', file=sys.stderr)
        return EXIT_NOT_EXECUTABLE
    return EXIT_NOT_EXECUTABLE  # unreachable: execvpe only returns by raising


def pause(hostname: str) -> int:
    """A pod sandbox: new network, uts and ipc namespaces with the pod's hostname, held by a
    process that sleeps until killed (the pause container). Says ``ready`` on stdout."""
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if libc.unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC) != 0:
        print(f"unshare: {os.strerror(ctypes.get_errno())}", flush=True)
        return EXIT_SETUP
    name = hostname.encode()[:64]
    libc.sethostname(name, len(name))
    print("ready", flush=True)
    os.close(1)
    os.execv("/bin/sleep", ["sleep", "infinity"])
    return EXIT_NOT_EXECUTABLE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: set the container up and exec its command; return an exit code on failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--pause"] and len(args) == 2:
        return pause(args[1])
    try:
        spec = parse_args(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"container: {exc}", file=sys.stderr)
        return EXIT_SETUP
    try:
        setup(spec)
    except SetupError as exc:
        print(f"error setting up container: {exc}", file=sys.stderr)
        return EXIT_SETUP
    sys.stderr.flush()
    return exec_command(spec)


if __name__ == "__main__":
    sys.exit(main())
