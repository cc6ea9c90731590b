"""Which user and group ids the practice nodes map, and writing those maps.

A node's users are real only where its user namespace maps their ids: ``chown etcd:etcd``,
``useradd`` then ``chown``, ``su - alice`` and ``sudo`` (which switches to uid 1 and calls
setgroups) need more than uid 0. Three cases, chosen by :func:`choose`:

- ``root``: cka-sim runs as root. The infra's user namespace maps ids 0-65535 to the
  host's 0-65535 (written by cka-sim, the namespace's parent) and setgroups stays allowed.
- ``subid``: an unprivileged user with ``newuidmap``/``newgidmap`` (Debian's ``uidmap``)
  and ranges in ``/etc/subuid`` and ``/etc/subgid``: 0 is the user, 1-N the first range.
- ``single``: neither; only 0 is mapped (``unshare --map-root-user``), as before. Files
  of other owners show up as ``nobody`` and changing to another user fails (EINVAL).

In the first two cases every node's own user namespace, nested in the infra's, maps the
same ids onto the infra's (``0 0 65536`` as root), written from the infra's namespace when the node
is wired (:class:`simulator.cluster.local.nodes.NodeProcess`): the kernel accepts a map
only from a process of the namespace's parent with CAP_SETUID there.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from simulator.errors import ClusterError, NamespacesUnavailable

NODE_IDS = 65536
"""Ids 0 .. NODE_IDS-1 are mapped in a node where more than root can be (Debian's nobody,
65534, included)."""
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
TOOL_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
UIDMAP_HINT = "install uidmap (`sudo apt-get install uidmap`)"
SUDO_HINT = "install it on this machine (`sudo apt-get install sudo`)"


@dataclasses.dataclass(frozen=True)
class IdMapping:
    """How a cluster's infra maps ids: ``uid_map``/``gid_map`` are (inner, outer, count)
    lines; ``count`` ids from 0 are mapped in each node."""

    kind: str
    uid_map: tuple[tuple[int, int, int], ...]
    gid_map: tuple[tuple[int, int, int], ...]
    missing: str = ""
    """In the single case: what would give the nodes more ids on this machine."""

    @property
    def count(self) -> int:
        return min(sum(c for _, _, c in self.uid_map), sum(c for _, _, c in self.gid_map),
                   NODE_IDS)

    @property
    def full(self) -> bool:
        return self.kind != "single"

    def node_maps(self) -> tuple[str, str]:
        """The uid_map and gid_map of a node nested in the infra: ids 0 .. count-1 onto the
        same ids of the infra, one line per line of the infra's map (the kernel maps each
        line of a child's map within one line of its parent's)."""
        return _nested(self.uid_map, self.count), _nested(self.gid_map, self.count)


def _nested(lines: tuple[tuple[int, int, int], ...], count: int) -> str:
    out = []
    for inner, _, length in sorted(lines):
        length = min(length, count - inner)
        if length > 0:
            out.append(f"{inner} {inner} {length}")
    return "\n".join(out)


def _user() -> tuple[str, int, int]:
    uid, gid = os.geteuid(), os.getegid()
    try:
        return pwd.getpwuid(uid).pw_name, uid, gid
    except KeyError:
        return str(uid), uid, gid


def _subid_range(path: Path, name: str, number: int) -> tuple[int, int] | None:
    """The first ``start, count`` of ``name`` (or its number) in /etc/subuid or /etc/subgid."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(number)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            return start, count
    return None


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=TOOL_PATH)


def choose() -> IdMapping:
    """The mapping nodes get on this machine, for this user."""
    if os.geteuid() == 0:
        full = ((0, 0, NODE_IDS),)
        return IdMapping("root", full, full)
    name, uid, gid = _user()
    single = ((0, uid, 1),), ((0, gid, 1),)
    tools = [t for t in ("newuidmap", "newgidmap") if _tool(t) is None]
    subuid, subgid = _subid_range(SUBUID, name, uid), _subid_range(SUBGID, name, uid)
    missing = []
    if tools:
        missing.append(f"{' and '.join(tools)} not found: {UIDMAP_HINT}")
    if subuid is None or subgid is None:
        files = " and ".join(str(p) for p, r in ((SUBUID, subuid), (SUBGID, subgid)) if r is None)
        missing.append(f"no range for {name} in {files}: `sudo usermod --add-subuids "
                       f"100000-165535 --add-subgids 100000-165535 {name}`")
    if missing or subuid is None or subgid is None:
        return IdMapping("single", *single, missing="; ".join(missing))
    return IdMapping("subid", ((0, uid, 1), (1, subuid[0], min(subuid[1], NODE_IDS - 1))),
                     ((0, gid, 1), (1, subgid[0], min(subgid[1], NODE_IDS - 1))))


def write_maps(pid: int, mapping: IdMapping) -> None:
    """Map the ids of the user namespace ``pid`` (just unshared, waiting) from the host:
    written directly as root, through newuidmap/newgidmap otherwise. In the single case
    ``unshare --map-root-user`` has done it already."""
    if mapping.kind == "root":
        for name, lines in (("uid_map", mapping.uid_map), ("gid_map", mapping.gid_map)):
            text = "".join(f"{i} {o} {c}\n" for i, o, c in lines)
            # one write(2) per map file, as the kernel requires
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            except OSError as exc:
                raise NamespacesUnavailable(f"could not write the {name} of the cluster's user "
                                            f"namespace: {exc.strerror}",
                                            hint="Run `cka-sim doctor` to check what this "
                                                 "machine allows.") from exc
            finally:
                os.close(fd)
        return
    if mapping.kind != "subid":
        return
    for tool, lines in (("newuidmap", mapping.uid_map), ("newgidmap", mapping.gid_map)):
        argv = [_tool(tool) or tool, str(pid)] + [str(v) for line in lines for v in line]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NamespacesUnavailable(f"{tool} failed: {exc}", hint=UIDMAP_HINT) from exc
        if done.returncode != 0:
            raise NamespacesUnavailable(
                f"{tool} refused the ranges of {SUBUID} / {SUBGID}: "
                f"{done.stderr.strip() or f'exit status {done.returncode}'}",
                hint=f"check the ranges for your user in {SUBUID} and {SUBGID} (`cka-sim "
                     "doctor` shows which it uses), or run cka-sim as root")


def remove_tree(path: Path, mapping: IdMapping, unshare: str) -> None:
    """Remove ``path`` from inside a user namespace mapping ``mapping``: where the host user
    may not remove files a node's user created (their owner is a subordinate id)."""
    proc = subprocess.Popen(
        [unshare, "--user", "--", "/bin/sh", "-c",
         'echo unshared && read -r go && exec rm -rf -- "$1"', "sh", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != b"unshared":
            raise OSError("unshare --user failed")
        write_maps(proc.pid, mapping)
        _, err = proc.communicate(b"go\n", timeout=120)
    except (OSError, ValueError, subprocess.TimeoutExpired, ClusterError) as exc:
        proc.kill()
        proc.wait()
        raise ClusterError(f"could not remove {path}: {exc}",
                           hint=f"remove it as root: `sudo rm -rf {path}`") from exc
    if proc.returncode != 0:
        raise ClusterError(f"could not remove {path}: {err.decode(errors='replace').strip()}",
                           hint=f"remove it as root: `sudo rm -rf {path}`")


def doctor_line(mapping: IdMapping | None = None) -> tuple[str, bool, str]:
    """``cka-sim doctor``'s line: which ids nodes map and, with only root, what that breaks."""
    mapping = mapping or choose()
    last = mapping.count - 1
    if mapping.kind == "root":
        return ("uid/gid mapping", True,
                f"nodes map uids and gids 0-{last} (cka-sim runs as root): chown to other "
                "users, useradd, su and sudo work as on a node")
    if mapping.kind == "subid":
        return ("uid/gid mapping", True,
                f"nodes map uids and gids 0-{last}: 0 is you, 1-{last} your ranges in "
                f"{SUBUID} and {SUBGID} (newuidmap, newgidmap)")
    return ("uid/gid mapping", False,
            "nodes map only uid 0 (you): chown to another user, sudo and useradd fail in the "
            f"nodes; to fix it, {mapping.missing}; or run cka-sim as root")


def sudo_line() -> tuple[str, bool, str]:
    """``cka-sim doctor``'s line about ``sudo`` in the nodes (their /usr is the machine's)."""
    found = _tool("sudo")
    if found:
        return ("sudo", True, f"{found} (the nodes' sudo)")
    return ("sudo", False, f"not installed, so the nodes have none either (`sudo: command not "
                           f"found`); {SUDO_HINT}")
