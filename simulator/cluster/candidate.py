"""The learner's user ``candidate`` in a cluster with a jump host, the same on every driver.

As on the exam, the learner's shell starts on the jump host ``student`` as ``candidate``,
who has kubectl with the cluster's admin kubeconfig there and reaches every node with
``ssh NODE`` (the key in ``~/.ssh``, every node in ``known_hosts``: no password, no
host-key question). On every Kubernetes node ``candidate`` exists too, with that key in
``authorized_keys`` and passwordless sudo (``/etc/sudoers.d/candidate``), so ``sudo -i``
makes the learner root there. The account's password is ``*`` (no password, but not
locked: an sshd without PAM refuses key logins to locked accounts).

:func:`add` runs one constant script as root in the node through the Node API, the
files arriving as a tar on its standard input, so it works on every driver.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence

from simulator.cluster import kubeadm
from simulator.cluster.node import CANDIDATE, JUMP_HOST, Node
from simulator.cluster.shell import BASHRC, PROFILE
from simulator.cluster.sshkeys import ClusterKeys
from simulator.errors import ClusterError

SUDOERS = f"{CANDIDATE} ALL=(ALL:ALL) NOPASSWD: ALL\n"

_ADD = r"""
set -e
if ! id -u "$CANDIDATE" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --user-group "$CANDIDATE"
fi
usermod -p '*' "$CANDIDATE"
home=$(getent passwd "$CANDIDATE" | cut -d: -f6)
mkdir -p "$home"
tar -x --no-same-owner -f - -C "$home"
chmod 700 "$home/.ssh"
[ ! -d "$home/.kube" ] || chmod 700 "$home/.kube"
chown -R "$CANDIDATE:$CANDIDATE" "$home"
chmod 755 "$home"
if [ -n "$SUDOERS" ]; then
    mkdir -p /etc/sudoers.d
    printf '%s' "$SUDOERS" > "/etc/sudoers.d/$CANDIDATE"
    chmod 440 "/etc/sudoers.d/$CANDIDATE"
fi
"""


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for directory in sorted({p.rsplit("/", 1)[0] for p in files if "/" in p}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(info)
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def home_files(node: str, keys: ClusterKeys, kubeconfig: bytes | None) -> dict[str, tuple[bytes, int]]:
    """``candidate``'s files on ``node`` by path under the home directory: the shell's
    profile, ``~/.ssh``, and on the jump host ``~/.kube/config`` (``kubeconfig``)."""
    files = {".bashrc": (BASHRC.encode(), 0o644), ".profile": (PROFILE.encode(), 0o644)}
    files.update({f".ssh/{name}": item for name, item in keys.candidate_files(node).items()})
    if node == JUMP_HOST and kubeconfig is not None:
        files[".kube/config"] = (kubeconfig, 0o600)
    return files


def add(node: Node, keys: ClusterKeys, kubeconfig: bytes | None = None) -> None:
    """Create ``candidate`` on ``node`` with its files; on every node but the jump host
    with passwordless sudo. ClusterError (with the script's output) when that fails."""
    sudo = "" if node.name == JUMP_HOST else SUDOERS
    done = node.run(["bash", "-c", _ADD], input=_tar(home_files(node.name, keys, kubeconfig)),
                    env={"CANDIDATE": CANDIDATE, "SUDOERS": sudo}, timeout=60)
    if not done.ok:
        raise ClusterError(f"could not create user {CANDIDATE} on {node.name}",
                           hint=(done.err or done.out).strip()[-600:])


def add_everywhere(nodes: Sequence[Node], keys: ClusterKeys, first_control_plane: Node) -> None:
    """``candidate`` on every node of ``nodes``, with the admin kubeconfig of
    ``first_control_plane`` on the jump host (where it has one: etcd-only clusters have none)."""
    try:
        kubeconfig = first_control_plane.read_file(kubeadm.ADMIN_CONF)
    except FileNotFoundError:
        kubeconfig = None
    for node in nodes:
        add(node, keys, kubeconfig)


__all__ = ["SUDOERS", "add", "add_everywhere", "home_files"]
