"""A set-up cluster kept on disk and booted again as new clusters: the quality gate's reset.

The gate plays a scenario a dozen times (the reference, alternatives, wrong solutions,
attacks), each on a cluster that must be as the learner gets it. Making each one and
running the setup again costs most of an attempt. Instead the gate sets one cluster up,
:func:`save` shuts it down as a machine is shut down and keeps its directory, and every
attempt gets a copy of that directory booted by :func:`boot`: the same nodes, addresses,
certificates, files and etcd data, every process started afresh from them, as after a
reboot of the machines behind a fresh set-up cluster.

What is reset so the copy is what a fresh one would be:

- each node's ``/run`` state of the container runtime and the node agent (container
  records, the journal, pid files) goes, as a reboot empties ``/run``;
- the controller manager's leader lease goes: its holder never gives it back (unlike the
  scheduler's), so a new controller manager would otherwise wait out its 15 s before it
  acts, and the readiness wait would not see it lead.

What cannot be kept is refused (:func:`why_not`): etcd run by systemd, whose units start
at creation and not at boot here. Only the embedded driver has checkpoints; kind gates
keep making a cluster per attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.cluster import kubeadm
from simulator.cluster.node import ClusterSpec, Progress, Step
from simulator.errors import ClusterError

if TYPE_CHECKING:
    from simulator.cluster.local.driver import LocalCluster, LocalDriver

_RUN_STATE = ("run/cka-sim", "run/containerd", "run/crond.pid", "run/sshd.pid")
_KCM = "kube-controller-manager"
_STOP_KCM = """
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


def save(driver: LocalDriver, cluster: LocalCluster, dest: Path) -> None:
    """Shut ``cluster`` down and keep its directory at ``dest`` (which must not exist)."""
    from simulator.cluster.local import driver as driver_mod

    state = driver_mod._read_state(cluster.directory) or {}
    spec = state.get("spec") or {}
    control = [n for n in cluster.nodes if n.role == "control-plane"]
    # what answers now is what a booted copy waits for (a setup may have stopped some)
    up = {"etcd": kubeadm.etcdctl(control[0], "endpoint", "health", "--command-timeout=3s",
                                  timeout=15).ok,
          "apiserver": "kube-apiserver" in spec.get("components", ()) and control[0].run(
              ["kubectl", "get", "--raw", "/readyz"], timeout=15).out.strip() == "ok",
          "leaders": [n.name for n in control if n.run(
              ["crictl", "ps", "-q", "--name", _KCM], timeout=15).out.strip()]}
    leaders = [n for n in control if n.name in up["leaders"]]
    for node in leaders:
        done = node.run(["bash", "-c", _STOP_KCM], env={"KCM": _KCM}, timeout=45)
        if not done.ok:
            raise ClusterError(f"could not stop {_KCM} on {node.name} for the checkpoint",
                               hint=(done.err or done.out).strip()[-400:])
    if leaders and up["etcd"]:
        kubeadm.etcdctl(control[0], "del", f"/registry/leases/kube-system/{_KCM}").check()
    driver._stop(cluster.name, cluster.directory)
    for node in leaders:
        etc = node.node_dir / "rootfs/etc/kubernetes"
        (etc / f"{_KCM}.yaml.checkpoint").rename(etc / "manifests" / f"{_KCM}.yaml")
    state["saved"] = up
    driver_mod._write_state(cluster.directory, state)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(cluster.directory, dest)


def boot(driver: LocalDriver, checkpoint: Path, name: str, progress: Progress) -> LocalCluster:
    """A new cluster called ``name`` from a copy of ``checkpoint``; returns once etcd, the
    API server and the controller manager are up, as ``create`` does."""
    from simulator.cluster.local import driver as driver_mod
    from simulator.cluster.local import kubeadm_init
    from simulator.cluster.local.driver import APISERVER_TIMEOUT, LocalCluster

    directory = driver_mod._cluster_dir(name)
    if directory.exists():
        raise ClusterError(f"a cluster named {name} already exists",
                           hint="remove it with `cka-sim stop`")
    progress(Step("nodes", 0, 3, "copying the set-up cluster"))
    copied = subprocess.run(["cp", "-a", "--sparse=always", str(checkpoint), str(directory)],
                            capture_output=True, text=True, check=False)
    if copied.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise ClusterError(f"could not copy the checkpoint {checkpoint}", hint=copied.stderr.strip())
    try:
        state = json.loads((directory / "cluster.json").read_text())
        placed = [(n["name"], n["ip"], n["role"]) for n in state["nodes"]]
        state.update(name=name, state="creating", created=time.time(), infra={},
                     creator={"pid": os.getpid(), "start": driver_mod.proc_start(os.getpid())})
        driver_mod._write_state(directory, state)
        for node, _, _ in placed:
            rootfs = directory / "nodes" / node / "rootfs"
            for stale in _RUN_STATE:
                path = rootfs / stale
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        spec, up = state["spec"], state.get("saved") or {}
        tools = driver._node_tools(spec["components"])
        nodes = driver._start_nodes(name, directory, state, placed, tools)
        cluster = LocalCluster(name, nodes, directory)
        control = [n for n in nodes if n.role == "control-plane"]
        if up.get("etcd"):
            progress(Step("etcd", 1, 3, f"waiting for etcd on {control[0].name}"))
            for node in control:
                driver._wait_healthy(node, [n.ip for n in control])
        if up.get("apiserver"):
            progress(Step("apiserver", 2, 3, f"waiting for kube-apiserver on {control[0].name}"))
            driver._node_script(control[0], kubeadm_init.WAIT_READYZ, "kube-apiserver did not become ready",
                                WAIT=str(int(APISERVER_TIMEOUT)))
            if up.get("leaders"):
                driver._node_script(control[0], kubeadm_init.WAIT_LEADER, f"{_KCM} did not start",
                                    WAIT=str(int(APISERVER_TIMEOUT)), LEASE=_KCM)
        state["state"] = "running"
        driver_mod._write_state(directory, state)
        progress(Step("ready", 3, 3, f"cluster {name} is up"))
        return cluster
    except BaseException:
        driver.delete(name)
        raise


_PROCESSES = "ps -e -o comm= | sort -u"
# the fingerprint's own commands, and the containers' (compared as containers: one that
# crash-loops is up at one instant and down at the next)
_TRANSIENT = {"ps", "sort", "bash", "sh", "nsenter", "timeout", "crictl", "python3",
              "etcd", "kube-apiserver", "kube-controller", "kube-scheduler"}


def fingerprint(cluster: LocalCluster) -> dict[str, object]:
    """What runs on each node: the containers its runtime has started (by name), whether
    its kubelet is active and the names of its other processes. A booted copy of a
    checkpoint must show the same as the cluster it was saved from, or a reset would not
    restore it exactly (a process a setup started by hand does not come back at boot)."""
    seen: dict[str, object] = {}
    for node in cluster.nodes:
        containers = node.run(["crictl", "ps", "-a", "-o", "json"], timeout=30)
        names = sorted({c.get("metadata", {}).get("name", "") for c in
                        (json.loads(containers.out).get("containers", []) if containers.ok else [])})
        kubelet = node.run(["systemctl", "is-active", "kubelet"], timeout=30).out.strip()
        procs = node.run(["bash", "-c", _PROCESSES], timeout=30).out.split()
        seen[node.name] = {"containers": names, "kubelet": kubelet,
                           "processes": sorted(set(procs) - _TRANSIENT)}
    return seen


def remove(driver: LocalDriver, checkpoint: Path) -> None:
    """Remove a checkpoint's directory (its files may belong to the nodes' users)."""
    if checkpoint.exists():
        driver._remove_dir(checkpoint)
