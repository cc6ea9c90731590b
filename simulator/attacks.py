"""The quality gate's built-in attacks: shortcuts a candidate might try instead of the task.

Each attack is played on a fresh environment of the scenario, as a candidate would play it
on the node, and must not pay: the gate runs them on every scenario without the author
listing them (a scenario may be exempted from one with a reason, ``exempt_attacks``).

- ``empty-data-dir``: make an empty ``member/`` directory and point etcd's data hostPath
  at it (with ``cluster.etcd: systemd``, the unit's ``--data-dir``, reloaded and
  restarted), the fake restore that once earned 6/9 on etcd-restore;
- ``db-copy``: copy ``/var/lib/etcd/member/snap/db`` wherever a snapshot is expected;
- ``solution-prefix``: the reference solution without its last step.

Doing nothing is the fresh environment itself and must score exactly 0.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import subprocess
import time
from collections.abc import Callable

from simulator import registry
from simulator.cluster import etcdunit, kubeadm, staticpod
from simulator.cluster.node import Cluster, Node
from simulator.scenario import Scenario

# An attack may earn at most this share of the points (the ones that cost no work, such
# as "etcd is healthy" on a task about restoring it).
MAX_SHARE = 0.4
EMPTY_DIR = "/var/lib/etcd-empty"


@dataclasses.dataclass(frozen=True)
class Attack:
    """One shortcut to play on a fresh cluster; ``limit`` is the largest share it may earn."""

    name: str
    play: Callable[[Cluster], None]
    limit: float


def steps(script: str) -> list[str]:
    """The steps of a bash script: its paragraphs (blank-line separated), each joined with
    the next until bash reads it as complete (a heredoc or loop with blank lines inside)."""
    chunks = [c for c in _paragraphs(script) if c.strip()]
    out: list[str] = []
    pending = ""
    for chunk in chunks:
        pending = f"{pending}\n\n{chunk}" if pending else chunk
        if _complete(pending):
            out.append(pending)
            pending = ""
    if pending:
        out.append(pending)
    return out


def _paragraphs(script: str) -> list[str]:
    paragraphs, current = [], []
    for line in script.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs


def _complete(text: str) -> bool:
    done = subprocess.run(["bash", "-n"], input=text.encode(), capture_output=True, check=False)
    # bash accepts a here-document cut short with only a warning
    return done.returncode == 0 and b"here-document" not in done.stderr


def solution_prefix(scenario: Scenario) -> str | None:
    """The reference solution without its last step; None when it has a single step."""
    parts = steps(scenario.solution)
    if len(parts) < 2:
        return None
    return "\n\n".join(parts[:-1]) + "\n"


def _data_dir_targets(scenario: Scenario, first: str) -> list[tuple[str, str]]:
    """(node, directory) the empty-data-dir attack fakes: where each etcd.data_dir check
    wants the data and where the solution restores to (``--data-dir``), or a new empty
    directory where only the default one is named."""
    targets = []
    for match in re.finditer(r"--data-dir[= ]+(/[^\s'\"]+)", scenario.solution):
        wanted = posixpath.normpath(match.group(1))
        if wanted != kubeadm.ETCD_DATA_DIR and (first, wanted) not in targets:
            targets.append((first, wanted))
    for check in scenario.checks:
        if check.use == "etcd.data_dir":
            wanted = posixpath.normpath(str(check.with_.get("expected", EMPTY_DIR)))
            if wanted == kubeadm.ETCD_DATA_DIR:
                wanted = EMPTY_DIR
            target = (check.node or first, wanted)
            if target not in targets:
                targets.append(target)
    return targets or [(first, EMPTY_DIR)]


def _point_etcd_at(cluster: Cluster, node_name: str, directory: str) -> None:
    node = cluster.node(node_name)
    node.run(["mkdir", "-p", posixpath.join(directory, "member")]).check()
    ctx = registry.Context(cluster, node_name=node_name)
    registry.get_fault("manifest.set")(ctx, component="etcd", volume="etcd-data", host_path=directory)

    def moved() -> bool:
        """The kubelet has started etcd on ``directory``: its newest container, running or
        not (a member on an empty directory of a cluster of several exits at once)."""
        try:
            newest = staticpod.listed(node, "etcd")[:1]
            return any(m.source == directory for c in newest for m in staticpod.inspect(node, c).mounts)
        except Exception:  # the runtime may be between containers
            return False
    _wait_serving(node, moved)


_POINT_SERVICE = r"""
mkdir -p "$DIR/member"
sed -i "s#--data-dir[= ][^ \\]*#--data-dir=$DIR#" "$UNIT"
systemctl daemon-reload
systemctl restart "$SERVICE"
"""


def _point_service_at(cluster: Cluster, node_name: str, directory: str) -> None:
    """The same fake restore for an etcd run by systemd: the unit's ``--data-dir``."""
    node = cluster.node(node_name)
    node.run(["bash", "-c", _POINT_SERVICE], timeout=90,
             env={"DIR": directory, "UNIT": etcdunit.UNIT_PATH, "SERVICE": etcdunit.SERVICE})

    # systemctl restart returned with the reloaded unit: etcd has moved (on the empty
    # directory it may exit again at once, so its process is no sign to wait for)
    _wait_serving(node, lambda: True)


def _wait_serving(node: Node, moved: Callable[[], bool]) -> None:
    """Until etcd serves from the new directory: it has ``moved`` there and answers
    healthy, or has run there for 10 s (an etcd on an empty member directory, or with a
    certificate the task expired, may never answer healthy; a sound one does in 1-2 s)."""
    deadline, moved_at = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        if moved():
            moved_at = moved_at or time.monotonic()
            if (time.monotonic() - moved_at > 10
                    or kubeadm.etcdctl(node, "endpoint", "health", "--command-timeout=2s", timeout=10).ok):
                return
        time.sleep(0.5)


def empty_data_dir(scenario: Scenario) -> Callable[[Cluster], None]:
    point = _point_service_at if scenario.cluster.etcd == "systemd" else _point_etcd_at

    def play(cluster: Cluster) -> None:
        for node_name, directory in _data_dir_targets(scenario, cluster.nodes[0].name):
            point(cluster, node_name, directory)
    return play


def _snapshot_targets(scenario: Scenario, first: str) -> list[tuple[str, str]]:
    targets = []
    for check in scenario.checks:
        if check.use.startswith("snapshot.") and isinstance(check.with_.get("path"), str):
            target = (check.node or first, check.with_["path"])
            if target not in targets:
                targets.append(target)
    return targets


def db_copy(scenario: Scenario) -> Callable[[Cluster], None]:
    def play(cluster: Cluster) -> None:
        for node_name, path in _snapshot_targets(scenario, cluster.nodes[0].name):
            cluster.node(node_name).run(
                ["bash", "-c", 'mkdir -p "$(dirname "$DEST")" && cp /var/lib/etcd/member/snap/db "$DEST"'],
                env={"DEST": path})
    return play


def attacks(scenario: Scenario, run_script: Callable[[Cluster, str], object]) -> list[Attack]:
    """The attacks that apply to ``scenario`` (rendered), less the ones it is exempt from."""
    out = []
    if "etcd" in scenario.cluster.components:
        out.append(Attack("empty-data-dir", empty_data_dir(scenario), MAX_SHARE))
    if _snapshot_targets(scenario, "controlplane"):
        out.append(Attack("db-copy", db_copy(scenario), MAX_SHARE))
    prefix = solution_prefix(scenario)
    if prefix is not None:
        out.append(Attack("solution-prefix", lambda cluster: run_script(cluster, prefix), 0.9999))
    return [a for a in out if a.name not in scenario.exempt_attacks]
