"""A set-up cluster kept on disk and booted again as new clusters: the quality gate's reset.

The gate plays a scenario a dozen times (the reference, alternatives, wrong solutions,
attacks), each on a cluster that must be as the learner gets it. Making each one and
running the setup again costs most of an attempt. Instead the gate sets one cluster up,
``LocalDriver.checkpoint`` shuts it down as a machine is shut down and keeps its
directory, and every attempt gets a copy of that directory booted by ``LocalDriver.boot``: the same nodes, addresses,
certificates, files and etcd data, every process started afresh from them, as after a
reboot of the machines behind a fresh set-up cluster.

What is reset so the copy is what a fresh one would be:

- each node's ``/run`` state of the container runtime and the node agent (container
  records, the journal, pid files) goes, as a reboot empties ``/run``;
- the controller manager's leader lease goes: its holder never gives it back (unlike the
  scheduler's), so a new controller manager would otherwise wait out its 15 s before it
  acts, and the readiness wait would not see it lead.

This module holds what the driver and the gate share. What cannot be kept is refused:
etcd run by systemd, whose units start at creation and not at boot here
(:func:`why_not`), and a set-up cluster whose API server serves from caches of data etcd
no longer holds (:func:`diverged`), which a booted copy could not show. Only the embedded driver has checkpoints; kind gates
keep making a cluster per attempt.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.cluster import kubeadm
from simulator.cluster.node import ClusterSpec, Node

RUN_STATE = ("run/cka-sim", "run/containerd", "run/crond.pid", "run/sshd.pid")
KCM = "kube-controller-manager"
STOP_KCM = """
end=$((SECONDS + 30))
mv "/etc/kubernetes/manifests/$KCM.yaml" "/etc/kubernetes/$KCM.yaml.checkpoint"
while [ -n "$(crictl ps -q --name "$KCM" 2>/dev/null)" ]; do
    (( SECONDS < end )) || { echo "$KCM did not stop" >&2; exit 1; }
    sleep 0.1
done
"""


def why_not(spec: ClusterSpec) -> str | None:
    """Why a cluster of ``spec`` cannot be kept as a checkpoint, or None when it can."""
    if spec.etcd == "systemd":
        return "etcd runs as a systemd service, which starts at creation, not at boot"
    return None


NO_ANSWER = "no answer"
PATIENCE = 5.0
"""Seconds the API server gets to list namespaces. One that resets connections (it cannot
reach etcd) makes kubectl retry until then; where the cluster compared with did not answer
either, a copy gets ``QUICK`` (answering at once is the difference that counts there)."""
QUICK = 1.0


def _namespaces(control: list[Node], patience: float = PATIENCE) -> list[str] | None:
    """The namespaces the API server of the first control plane lists, sorted; None when
    there is none or it does not answer within ``patience`` seconds."""
    if not control:
        return None
    listed = control[0].run(["kubectl", "get", "namespaces", "-o", "name",
                             f"--request-timeout={patience:g}s"], timeout=30)
    return sorted(n.split("/", 1)[-1] for n in listed.out.split()) if listed.ok else None


def diverged(nodes: list[Node], seen: dict[str, Any]) -> str | None:
    """Why a set-up cluster holds state a reboot would lose, or None: an API server kept
    running across an etcd swap lists namespaces the etcd it now uses does not hold (its
    watch caches, and its authorizer's, were filled from the old data); restarted on the
    same files it would not. ``seen`` is the cluster's :func:`fingerprint`, whose
    namespace list is the API server's."""
    control = [n for n in nodes if getattr(n, "role", "") == "control-plane"]
    listed = seen.get("namespaces")
    if not isinstance(listed, list):
        return None  # no API server, or it did not answer: nothing cached to compare
    stored = kubeadm.etcdctl(control[0], "get", "/registry/namespaces/", "--prefix",
                             "--keys-only", timeout=30)
    if not stored.ok:
        return None  # etcd does not answer: nothing cached to compare
    held = {line.rsplit("/", 1)[-1] for line in stored.out.split()}
    cached = [name for name in listed if name not in held]
    if cached:
        return (f"the API server lists namespaces etcd does not hold ({', '.join(cached)}): it "
                "serves from caches of data etcd no longer has, which a restart drops")
    return None


_PROCESSES = "ps -e -o comm= | sort -u"
# the fingerprint's own commands, and the containers' (compared as containers: one that
# crash-loops is up at one instant and down at the next)
_TRANSIENT = {"ps", "sort", "bash", "sh", "nsenter", "timeout", "crictl", "python3",
              "etcd", "kube-apiserver", "kube-controller", "kube-scheduler"}


def fingerprint(nodes: list[Node], like: dict[str, Any] | None = None) -> dict[str, Any]:
    """What runs on each node: the containers its runtime has started (by name), whether
    its kubelet is active and the names of its other processes; and the namespaces the
    API server lists. A booted copy of a checkpoint must show the same as the cluster it
    was saved from, or a reset would not restore it exactly: a process a setup started by
    hand does not come back at boot, and an API server kept running across an etcd swap
    lists from a cache that a restarted one no longer has. ``like`` is the fingerprint
    this one is compared with: where its API server did not answer, this one's gets
    ``QUICK`` seconds instead of ``PATIENCE``."""
    seen: dict[str, Any] = {}
    control = [n for n in nodes if getattr(n, "role", "") == "control-plane"]
    if control:
        quick = like is not None and like.get("namespaces") == NO_ANSWER
        listed = _namespaces(control, QUICK if quick else PATIENCE)
        seen["namespaces"] = listed if listed is not None else NO_ANSWER
    for node in nodes:
        containers = node.run(["crictl", "ps", "-a", "-o", "json"], timeout=30)
        names = sorted({c.get("metadata", {}).get("name", "") for c in
                        (json.loads(containers.out).get("containers", []) if containers.ok else [])})
        kubelet = node.run(["systemctl", "is-active", "kubelet"], timeout=30).out.strip()
        procs = node.run(["bash", "-c", _PROCESSES], timeout=30).out.split()
        seen[node.name] = {"containers": names, "kubelet": kubelet,
                           "processes": sorted(set(procs) - _TRANSIENT)}
    return seen
