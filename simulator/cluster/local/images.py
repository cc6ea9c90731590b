"""The embedded nodes' image store: how an image name becomes a root filesystem and a command.

A kubeadm node's containerd pulls an image from its registry, unpacks its layers and runs
its entrypoint. Practice machines often have no registry access, so embedded nodes read a
local store instead (``<cache>/images``, shared by every cluster), where each image is a
directory named after its normalized reference::

    <store>/<sha256 of the reference>/rootfs/       the unpacked root filesystem
    <store>/<sha256 of the reference>/image.json    {"ref", "entrypoint", "cmd", "env",
                                                     "workdir", "id", "size"}

A container of a workload pod gets that root read-only under a writable layer of its own
(an overlay), as containerd's snapshotter gives it. An image missing from the store is
reported as a kubelet reports an image it cannot pull: ``ErrImagePull``, then
``ImagePullBackOff``, with a message that says which images the store holds.

:func:`prepare_builtin` fills the store with the images built-in tasks use, made from what
the machine has: ``busybox`` from Debian's statically linked BusyBox (``busybox-static``),
laid out as the official image (one binary, a link per applet, ``sh`` as command), tagged
``latest``, ``stable`` (the tag built-in tasks use) and its version.

Only the standard library is used: the node's supervisor reads the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

DEFAULT_REGISTRY = "docker.io"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox")
BUSYBOX_HINT = ("install Debian's statically linked BusyBox (sudo apt-get install busybox-static); "
                "it becomes the busybox image of practice clusters")
IMAGE_FILE = "image.json"


def normalize(ref: str) -> str:
    """A reference as containerd names it: ``busybox`` is ``docker.io/library/busybox:latest``,
    ``nginx:1.27`` is ``docker.io/library/nginx:1.27``; a digest is kept, a tag defaults to
    ``latest``."""
    ref = ref.strip()
    name, at, digest = ref.partition("@")
    first, slash, rest = name.partition("/")
    if not slash:
        name = f"{DEFAULT_REGISTRY}/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"{DEFAULT_REGISTRY}/{name}"
    last = name.rsplit("/", 1)[1]
    if ":" not in last and not at:
        name += ":latest"
    return f"{name}@{digest}" if at else name


def _key(ref: str) -> str:
    return hashlib.sha256(normalize(ref).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Image:
    """One image of the store."""

    ref: str  # normalized
    rootfs: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    id: str  # sha256:<hex>, as ``crictl images`` shows
    size: int
    base: str = "rootfs"  # "node": the node's /usr with the image's /usr/local/bin on top

    def argv(self, command: list[str] | None, args: list[str] | None) -> list[str]:
        """The process a container runs, as the kubelet combines the pod's ``command`` and
        ``args`` with the image's entrypoint and cmd."""
        if command:
            return [*command, *(args or [])]
        if args:
            return [*self.entrypoint, *args]
        return [*self.entrypoint, *self.cmd]


class Store:
    """The images under one directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, ref: str) -> Image | None:
        """The image ``ref`` names (any spelling of it), or None when the store lacks it."""
        return self._load(self.path / _key(ref))

    def _load(self, where: Path) -> Image | None:
        try:
            meta = json.loads((where / IMAGE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not (where / "rootfs").is_dir():
            return None
        return Image(ref=str(meta["ref"]), rootfs=where / "rootfs",
                     entrypoint=tuple(meta.get("entrypoint") or ()),
                     cmd=tuple(meta.get("cmd") or ()), env=tuple(meta.get("env") or ()),
                     workdir=str(meta.get("workdir") or "/"), id=str(meta.get("id", "")),
                     size=int(meta.get("size", 0)), base=str(meta.get("base") or "rootfs"))

    def images(self) -> list[Image]:
        """Every image of the store, by reference."""
        try:
            entries = sorted(self.path.iterdir())
        except OSError:
            return []
        found = [image for e in entries if (image := self._load(e)) is not None]
        return sorted(found, key=lambda i: i.ref)

    def add(self, ref: str, rootfs: Path, *, entrypoint: list[str] | None = None,
            cmd: list[str] | None = None, env: list[str] | None = None,
            workdir: str = "/", base: str = "rootfs") -> Image:
        """Move the directory ``rootfs`` into the store as image ``ref``. An image already
        stored under that reference (made meanwhile by another cluster) is kept: running
        containers may use it."""
        ref = normalize(ref)
        where = self.path / _key(ref)
        size = sum(f.stat().st_size for f in rootfs.rglob("*") if f.is_file() and not f.is_symlink())
        meta = {"ref": ref, "entrypoint": entrypoint or [], "cmd": cmd or [],
                "env": env or [f"PATH={DEFAULT_PATH}"], "workdir": workdir, "size": size}
        if base != "rootfs":
            meta["base"] = base
        meta["id"] = "sha256:" + hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
        staging = Path(tempfile.mkdtemp(prefix=".add-", dir=self.path))
        os.rename(rootfs, staging / "rootfs")
        (staging / IMAGE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(staging, where)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        image = self._load(where)
        assert image is not None
        return image

    def pull_error(self, ref: str) -> str:
        """What a kubelet says when ``ref`` cannot be had, with the images the store holds."""
        held = ", ".join(i.ref for i in self.images()) or "none"
        return (f'failed to pull and unpack image "{normalize(ref)}": not in the local image '
                f"store of this practice cluster, and registries are not used (images here: {held})")


def _is_static(path: str) -> bool:
    """True for an ELF executable without an interpreter (PT_INTERP): it runs in any root."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return not any(int.from_bytes(table[i * phentsize:i * phentsize + 4], order) == 3
                   for i in range(phnum))


def find_busybox() -> str | None:
    """A statically linked BusyBox of this machine, or None."""
    for path in BUSYBOX_PATHS:
        if os.path.isfile(path) and _is_static(path):
            return path
    return None


_ETC_PASSWD = ("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
               "nobody:x:65534:65534:nobody:/home:/bin/false\n")
_ETC_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def build_busybox(store: Store, binary: str) -> list[Image]:
    """Make the busybox image from a static BusyBox: ``/bin/busybox``, one link per applet
    where the applet list puts it, ``/etc/passwd`` and ``group``, command ``sh``. It is
    stored as ``busybox:latest``, ``busybox:stable`` (what built-in tasks use: a tag other
    than ``latest`` is not pulled again when present, so it runs on offline kind nodes too)
    and under the binary's own version (``busybox:1.35.0``)."""
    listed = subprocess.run([binary, "--list-full"], capture_output=True, text=True,
                            check=True, timeout=10).stdout.split()
    banner = subprocess.run([binary], capture_output=True, text=True, timeout=10).stdout
    version = banner.split()[1].lstrip("v") if banner.startswith("BusyBox v") else ""
    made = []
    for tag in ["latest", "stable", *([version] if version else [])]:
        root = Path(tempfile.mkdtemp(prefix=".busybox-", dir=store.path))
        for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "var/tmp",
                    "home", "proc", "sys", "dev"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "tmp", 0o1777)
        os.chmod(root / "var/tmp", 0o1777)
        shutil.copy2(binary, root / "bin/busybox")
        for applet in listed:
            link = root / applet
            if applet == "bin/busybox" or link.exists() or link.is_symlink():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath("/bin/busybox", "/" + str(Path(applet).parent)))
        (root / "etc/passwd").write_text(_ETC_PASSWD)
        (root / "etc/group").write_text(_ETC_GROUP)
        made.append(store.add(f"busybox:{tag}", root, cmd=["sh"]))
    return made


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def add_program_image(store: Store, ref: str, program: Path, path: str, *,
                      base: str = "rootfs", args: list[str] | None = None) -> Image:
    """An image of one static program at ``path`` (its entrypoint), linked from ``program``:
    on an empty root (``base="rootfs"``, as CoreDNS's image is), or on the node's ``/usr``
    (``base="node"``: kube-proxy's image, whose iptables tools come from the node, as the
    control-plane images of embedded nodes do)."""
    root = Path(tempfile.mkdtemp(prefix=".program-", dir=store.path))
    for sub in ("etc", "tmp", "proc", "sys", "dev"):
        (root / sub).mkdir(exist_ok=True)
    _link_or_copy(program, root / path.lstrip("/"))
    os.chmod(root / path.lstrip("/"), 0o755)
    return store.add(ref, root, entrypoint=[path, *(args or [])], base=base)


def prepare_addons(store: Store, programs: dict[str, Path | None], kubernetes_version: str,
                   coredns_version: str) -> list[str]:
    """Add the images of kubeadm's add-ons (``registry.k8s.io/kube-proxy``,
    ``registry.k8s.io/coredns/coredns``) from the cluster's own builds of the programs
    (``programs``: name -> path or None); return what is missing, with how to get it."""
    store.path.mkdir(parents=True, exist_ok=True)
    wanted = {
        "kube-proxy": (f"registry.k8s.io/kube-proxy:{kubernetes_version}", "/usr/local/bin/kube-proxy", "node"),
        "coredns": (f"registry.k8s.io/coredns/coredns:{coredns_version}", "/coredns", "rootfs"),
    }
    missing = []
    for name, (ref, path, base) in wanted.items():
        if store.get(ref) is not None:
            continue
        program = programs.get(name)
        if program is None:
            missing.append(f"{ref}: no {name} binary; build it with `bash .ci/build-binaries.sh` "
                           "(from the Go module proxy) or put it on PATH")
            continue
        add_program_image(store, ref, Path(program), path, base=base)
    return missing


def prepare_builtin(store: Store) -> list[str]:
    """Add the built-in images the store lacks; return what could not be made, each with
    how to get it (empty when every built-in image is there)."""
    store.path.mkdir(parents=True, exist_ok=True)
    missing = []
    if store.get("busybox:stable") is None:
        binary = find_busybox()
        if binary is None:
            missing.append(f"busybox: no statically linked BusyBox on this machine; {BUSYBOX_HINT}")
        else:
            build_busybox(store, binary)
    return missing
