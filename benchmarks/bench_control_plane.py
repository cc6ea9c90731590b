"""Cluster benchmarks: time to a ready API server, and memory of an idle cluster.

    python benchmarks/bench_control_plane.py [--runs 5] [--idle 20] [--workers 1]

(a) ``LocalDriver.create`` of the cluster every task gets by default: a kubeadm control
    plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and ``--workers``
    workers (node01), until it returns, i.e. ``kubectl get --raw /readyz`` answered ok
    inside the node, kubeadm's upload-config, mark-control-plane and add-on phases ran and
    the controller manager holds its lease (target 5 s); the time at which each progress
    step began is reported too;
(b) resident memory of that cluster idle for ``--idle`` seconds after every kube-system
    pod (the control plane, two CoreDNS, one kube-proxy per node) runs, every process of
    the cluster summed (target 600 MB for a control plane and a worker).

Runs in a throw-away ``CKA_SIM_HOME``; binaries and the spare key pool come from the
user cache (run ``.ci/build-binaries.sh`` or ``cka-sim setup --all`` first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_local
from bench_local import _wait_refill

from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec, Step

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def time_create(runs: int, workers: int) -> tuple[list[float], dict[str, list[float]]]:
    drv = LocalDriver()
    totals: list[float] = []
    steps: dict[str, list[float]] = {}
    for i in range(runs):
        _wait_refill()
        started = time.perf_counter()

        def progress(step: Step, started: float = started) -> None:
            steps.setdefault(step.name, []).append(time.perf_counter() - started)

        cluster = drv.create(ClusterSpec(f"cp-{i}", workers=workers, components=COMPONENTS), progress)
        totals.append(time.perf_counter() - started)
        ready = cluster.node("controlplane").run(["kubectl", "get", "--raw", "/readyz"])
        if ready.out.strip() != "ok":
            raise SystemExit(f"run {i}: /readyz answered {ready.out!r} {ready.err!r}")
        drv.delete(cluster)
    return totals, steps


def _system_pods_running(cluster) -> bool:
    done = cluster.node("controlplane").run(
        ["kubectl", "-n", "kube-system", "get", "pods", "--no-headers"])
    lines = done.out.splitlines() if done.ok else []
    return bool(lines) and all(" Running " in line and line.split()[1].split("/")[0]
                               == line.split()[1].split("/")[1] for line in lines)


def idle_memory(idle: float, workers: int) -> tuple[float, float, dict[str, int]]:
    return bench_local.idle_memory(idle, ClusterSpec("cp-idle", workers=workers, components=COMPONENTS),
                                   ready=_system_pods_running)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds idle before measuring")
    parser.add_argument("--workers", type=int, default=1, help="workers beside the control plane")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="cka-bench-cp-")
    os.environ["CKA_SIM_HOME"] = os.path.join(home, "home")
    try:
        totals, steps = time_create(args.runs, args.workers)
        rss, pss, per = idle_memory(args.idle, args.workers)
    finally:
        LocalDriver().clean(keep=())
        shutil.rmtree(home, ignore_errors=True)
    print(f"embedded kubeadm cluster, 1 control plane and {args.workers} worker(s), median of "
          f"{args.runs} runs, {os.cpu_count()} CPUs")
    print(f"{'measure':40} {'median':>9} {'target':>10}  runs")
    print(f"{'create -> /readyz ok, kubeadm phases done':40} "
          f"{statistics.median(totals):>7.2f} s {'<= 5 s':>10}  "
          + " ".join(f"{t:.2f}" for t in totals))
    print(f"{'idle cluster, RSS (sum)':40} {rss:>6.0f} MB {'<= 600 MB':>10}  "
          f"PSS {pss:.0f} MB after {args.idle:g} s idle")
    print("progress steps began at (median s): "
          + ", ".join(f"{name} {statistics.median(t):.2f}" for name, t in steps.items()))
    print("processes of the idle cluster (RSS kB): "
          + ", ".join(f"{k} {v}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
