"""The Node API: the only way checkers, faults and the session touch a cluster.

A node is a control-plane (or worker) machine as the learner sees it: exam paths
(``/etc/kubernetes/...``, ``/var/lib/etcd``, ``/opt/...``), root, hostname
``controlplane``. Every driver implements these protocols, so a checker or fault
written against them works unchanged on every driver.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from simulator.errors import ClusterError

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
JUMP_HOST = "student"
"""The jump host's name: the exam's base node, where the learner's shell starts."""
JUMP_HOST_ROLE = "jump-host"
CANDIDATE = "candidate"
"""The learner's user on a jump host, and on every node of its cluster (passwordless sudo)."""


@dataclasses.dataclass(frozen=True)
class Completed:
    """The outcome of :meth:`Node.run`."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    def check(self) -> Completed:
        """Return self when the command succeeded, else raise a ClusterError quoting it."""
        if self.returncode != 0:
            tail = (self.err or self.out).strip().splitlines()[-5:]
            raise ClusterError(
                f"command failed with exit code {self.returncode}: {shlex.join(self.argv)}",
                hint="\n".join(tail) if tail else "the command printed nothing",
            )
        return self


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node to create: its name (hostname) and role."""

    name: str
    role: str = "control-plane"  # or "worker", or JUMP_HOST_ROLE


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """What a scenario asks of a cluster."""

    name: str
    control_planes: int = 1
    workers: int = 0
    components: tuple[str, ...] = ("etcd",)
    jump_host: bool = False
    """Add the exam's base node ``student``: no Kubernetes node (no kubelet, not in
    ``kubectl get nodes``), where the learner logs in as ``candidate`` and must
    ``ssh controlplane`` then ``sudo -i``."""
    etcd: str = "static-pod"  # or "systemd": etcd.service instead of a static pod (etcdunit)

    def node_specs(self) -> list[NodeSpec]:
        """Nodes named as on the exam: controlplane, controlplane2, ..., node01, node02, ...,
        and last the jump host ``student`` when asked for."""
        nodes = [
            NodeSpec("controlplane" if i == 0 else f"controlplane{i + 1}")
            for i in range(self.control_planes)
        ]
        nodes += [NodeSpec(f"node{i + 1:02d}", role="worker") for i in range(self.workers)]
        if self.jump_host:
            nodes.append(NodeSpec(JUMP_HOST, role=JUMP_HOST_ROLE))
        return nodes


@dataclasses.dataclass(frozen=True)
class Step:
    """A progress report from a driver: ``done`` of ``total`` steps, the current one named."""

    name: str
    done: int
    total: int
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """A cluster as listed by a driver (it may belong to no active session)."""

    name: str
    driver: str
    nodes: tuple[str, ...]
    state: str  # "running", "degraded", "stopped"


Progress = Callable[[Step], None]


@runtime_checkable
class Node(Protocol):
    name: str

    def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 30,
        env: dict[str, str] | None = None,
    ) -> Completed:
        """Run ``argv`` as root inside the node (login environment, cwd ``/root``).

        ``env`` adds variables; scenario values travel this way, never inside a shell string.
        Raises ClusterError if the node is gone or the command times out.
        """
        ...

    def read_file(self, path: str) -> bytes:
        """Bytes of ``path`` as seen inside the node; FileNotFoundError if absent."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace ``path`` inside the node (parents created)."""
        ...

    def shell_argv(self, *, tty: bool | None = None) -> list[str]:
        """argv that opens an interactive login shell as root on the node (on a jump
        host: as the learner's user ``candidate``, as on the exam's base node).

        It ends with the shell's own argv (``bash -l``), so appending ``["-c", COMMAND]``
        runs COMMAND in a login shell and exits with its status. ``tty`` says whether the
        program will run on a terminal (None: as this process's standard input is).
        """
        ...


@runtime_checkable
class Cluster(Protocol):
    name: str
    driver: str
    nodes: Sequence[Node]

    def node(self, name: str) -> Node:
        """The node called ``name``; ClusterError naming the known nodes otherwise."""
        ...


@runtime_checkable
class Driver(Protocol):
    name: str

    def create(self, spec: ClusterSpec, progress: Progress) -> Cluster:
        """Create and start a cluster; return once every component is healthy."""
        ...

    def attach(self, name: str) -> Cluster:
        """Reconnect to a running cluster created earlier (possibly by another process)."""
        ...

    def delete(self, cluster: Cluster | str) -> None:
        """Remove every process, mount and file of the cluster. Idempotent."""
        ...

    def list(self) -> list[ClusterInfo]:
        """Clusters of this driver that exist on this machine."""
        ...

    def setup(self, progress: Progress, *, everything: bool = False) -> dict[str, Path]:
        """Fetch the programs this driver needs on this machine (with ``everything``, also
        those only some tasks need); return each program's path by name."""
        ...

    def doctor(self) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) lines: what this driver can use on this machine; the detail
        of a failed check says what to install or change."""
        ...

    def caveats(self, spec: ClusterSpec) -> list[str]:
        """What a cluster of ``spec`` will lack on this machine that a task may need (``ssh``
        between its nodes), each with what to do: said before it starts, not found out
        halfway through a task."""
        ...

    def clean(self, dry_run: bool = False, *,
              keep: Collection[str] | None = None) -> list[str]:
        """Find (and unless ``dry_run`` remove) what killed cka-sim processes left behind;
        with ``keep`` (cluster names), every other cluster of this driver too. Returns one
        line per finding."""
        ...


def find_node(nodes: Sequence[Node], name: str) -> Node:
    """Shared implementation of :meth:`Cluster.node`."""
    for node in nodes:
        if node.name == name:
            return node
    known = ", ".join(n.name for n in nodes) or "none"
    raise ClusterError(f"no node named {name!r} in this cluster", hint=f"nodes: {known}")


def is_jump_host(node: Node) -> bool:
    """True for a cluster's jump host (``student``), which is no Kubernetes node."""
    return getattr(node, "role", None) == JUMP_HOST_ROLE


def kube_nodes(cluster: Cluster) -> list[Node]:
    """The cluster's Kubernetes nodes (control planes, then workers): all but a jump host."""
    return [n for n in cluster.nodes if not is_jump_host(n)]


def login_node(cluster: Cluster) -> Node:
    """Where the learner's shell opens by default: the jump host when the cluster has one,
    else the first control plane."""
    for node in cluster.nodes:
        if is_jump_host(node):
            return node
    return cluster.nodes[0]


def shell_script(node: Node, script: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> Completed:
    """Run a constant bash ``script`` on ``node``; variable values go in ``env``."""
    return node.run(["bash", "-c", script], env=env, timeout=timeout)


def run_process(full_argv: Sequence[str], argv: Sequence[str], node_name: str, *,
                input: bytes | None, timeout: float,
                env: dict[str, str] | None = None) -> Completed:
    """Run ``full_argv`` (the driver's way into a node, then ``argv``) to completion.

    The child gets a process group of its own, killed whole on timeout or interruption;
    a timeout raises ClusterError naming the node and the command.
    """
    proc = subprocess.Popen(list(full_argv), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise ClusterError(f"command timed out after {timeout:g} s on {node_name}: "
                           f"{' '.join(argv)}",
                           hint="The node may be overloaded, or the command waits for "
                                "input or for a service that is down.") from None
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    return Completed(tuple(argv), proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
