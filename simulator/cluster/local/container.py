"""Start one static-pod container: a private mount namespace, hostPath binds, chroot, exec.

Usage (run by the supervisor with the node's host view of the filesystem)::

    python -m simulator.cluster.local.container --rootfs R \\
        [--bind SRC:DST[:OPTS]]... [--workdir D] [--env K=V]... -- argv...

``SRC`` (the volume's hostPath) and ``DST`` (its mountPath) are paths inside the node.
``OPTS`` is a comma list: ``ro`` for a read-only mount and ``type=<hostPath type>``
(``DirectoryOrCreate``, ``Directory``, ``FileOrCreate``, ``File``, ``Socket``,
``CharDevice``, ``BlockDevice``); without a type a missing source is created as a
directory, as container runtimes do.

The launcher chroots first and binds afterwards, so every path (and every symlink in it,
such as ``/var/run -> /run``) resolves inside the node and never on the host.

Exit codes follow container runtimes: 127 when the command is not found, 126 when it
cannot be executed, 128 when the container could not be set up (a mount failed).
This module uses the standard library only: it runs once per container start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import stat
import sys
from collections.abc import Sequence

CLONE_NEWNS = 0x00020000
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
    argv: list[str]
    binds: list[Bind] = dataclasses.field(default_factory=list)
    workdir: str = "/"
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def parse_args(args: Sequence[str]) -> Spec:
    """Read the command line described in the module docstring; raise ValueError if bad."""
    args = list(args)
    if "--" not in args:
        raise ValueError("missing '--' before the container command")
    split = args.index("--")
    opts, argv = args[:split], args[split + 1 :]
    rootfs, workdir = "", "/"
    binds: list[Bind] = []
    env: dict[str, str] = {}
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
        elif name == "--bind":
            binds.append(Bind.parse(value))
        elif name == "--workdir":
            workdir = value or "/"
        elif name == "--env":
            key, sep, val = value.partition("=")
            if not sep or not key:
                raise ValueError(f"bad --env {value!r}: expected K=V")
            env[key] = val
        else:
            raise ValueError(f"unknown option {name}")
    if not rootfs:
        raise ValueError("--rootfs is required")
    return Spec(rootfs=rootfs, argv=argv, binds=binds, workdir=workdir, env=env)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


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


def _bind(libc: ctypes.CDLL, bind: Bind) -> None:
    is_dir = _prepare_source(bind)
    _prepare_target(bind.target, is_dir)
    what = f"mount {bind.source} on {bind.target}"
    _mount(libc, bind.source, bind.target, MS_BIND | MS_REC, what)
    if bind.read_only:
        # A remount must keep the flags the kernel locked on the source mount.
        current = os.statvfs(bind.target).f_flag
        kept = sum(ms for st, ms in _STATVFS_TO_MS if current & st)
        _mount(libc, None, bind.target, MS_BIND | MS_REMOUNT | MS_RDONLY | kept, what + " (read-only)")


def setup(spec: Spec) -> None:
    """Enter a private mount namespace, chroot into the rootfs and bind every volume."""
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    _check(libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount(libc, None, "/", MS_REC | MS_PRIVATE, "make / private")
    try:
        os.chroot(spec.rootfs)
        os.chdir("/")
    except OSError as exc:
        raise SetupError(f"chroot {spec.rootfs}: {exc.strerror}") from None
    for bind in spec.binds:
        _bind(libc, bind)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: set the container up and exec its command; return an exit code on failure."""
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
