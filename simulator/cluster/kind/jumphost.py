"""The jump host of a kind cluster: the exam's base node ``student``, no Kubernetes node.

It is one more container of the node image, on the Docker network of the cluster's nodes,
carrying kind's cluster label: ``kind delete cluster`` removes it with the nodes, and
the driver lists it with them (its role label is ``jump-host``, which kind ignores).
It runs no systemd, so no containerd and no kubelet: its PID 1 is a bash loop that only
waits (and reaps), and Docker gives it the hostname ``student``. The image's OpenSSH
client, kubectl and sudo are what the learner uses there; the driver adds the exam names
to its ``/etc/hosts`` and the user ``candidate`` (:mod:`simulator.cluster.candidate`).
"""

from __future__ import annotations

from simulator.cluster.kind.nodes import KindNode, docker
from simulator.cluster.node import JUMP_HOST, JUMP_HOST_ROLE
from simulator.errors import ClusterError

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
SUFFIX = JUMP_HOST
"""The container is ``<cluster>-student``."""

# the image's empty /etc/kubernetes goes: the jump host is no node
_PID1 = ("rm -rf /etc/kubernetes; trap 'exit 0' TERM INT; "
         "while :; do sleep 3600 & wait $!; done")


def network_of(container: str) -> str:
    """The Docker network ``container`` is on (kind's, ``kind`` unless configured)."""
    done = docker(["inspect", "--format",
                   "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
                   container], timeout=30)
    names = done.stdout.decode().split() if done.returncode == 0 else []
    if not names:
        raise ClusterError(f"could not read the Docker network of {container}",
                           hint=done.stderr.decode(errors="replace").strip())
    return names[0]


def image_has_sshd(image: str) -> bool:
    """Whether ``image`` has OpenSSH's server, which ``ssh controlplane`` from the jump host
    needs on the nodes (the official kindest/node has none). True when Docker cannot tell
    (the image is pulled later): the nodes' ssh set-up says so then."""
    done = docker(["run", "--rm", "--entrypoint", "test", image, "-x", "/usr/sbin/sshd"],
                  timeout=120)
    return done.returncode != 1


def start(cluster: str, image: str, beside: str) -> KindNode:
    """Start ``<cluster>-student`` from ``image`` on the network of container ``beside``
    (a node of the cluster); its KindNode. ClusterError when Docker refuses."""
    container = f"{cluster}-{SUFFIX}"
    done = docker(["run", "--detach", "--name", container, "--hostname", JUMP_HOST,
                   "--network", network_of(beside),
                   "--label", f"{CLUSTER_LABEL}={cluster}",
                   "--label", f"{ROLE_LABEL}={JUMP_HOST_ROLE}",
                   "--entrypoint", "/bin/bash", image, "-c", _PID1], timeout=120)
    if done.returncode != 0:
        raise ClusterError(f"could not start the jump host {JUMP_HOST} ({container})",
                           hint=done.stderr.decode(errors="replace").strip()[-600:])
    return KindNode(JUMP_HOST, container, JUMP_HOST_ROLE)


__all__ = ["SUFFIX", "image_has_sshd", "network_of", "start"]
