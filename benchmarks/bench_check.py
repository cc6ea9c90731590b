"""Grading benchmark: how long a full check of a typical scenario takes on the embedded driver.

    python benchmarks/bench_check.py [--scenario etcd-pre-restore-backup] [--runs 5] [--seed 1]
                                     [--control-plane]

Creates the scenario's cluster, applies its setup, and times ``grading.grade`` (every
check of the scenario, as ``cka-sim check`` runs them) ``--runs`` times on the fresh
environment, then again after the reference solution (target: median <= 1.5 s for 6-8
checks). Prints the median and the median of each check, so a slow checker stands out.

``--control-plane`` also times seven API and certificate checks (kube.ready,
kube.nodes_ready, kube.exists, kube.absent, kube.field, certs.valid, certs.expires_after)
on a cluster with kube-apiserver. Runs in a throw-away ``CKA_SIM_HOME``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator import registry
from simulator.catalog import Catalog
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec
from simulator.grading import grade
from simulator.session import run_setup

TARGET = 1.5

KUBE_CHECKS = [
    ("kube.ready", {}),
    ("kube.nodes_ready", {}),
    ("kube.exists", {"kind": "Namespace", "name": "kube-system"}),
    ("kube.absent", {"kind": "Namespace", "name": "billing"}),
    ("kube.field", {"kind": "Namespace", "name": "default", "path": "status.phase", "equals": "Active"}),
    ("certs.valid", {"path": "/etc/kubernetes/pki/apiserver.crt", "names": ["kubernetes.default.svc"]}),
    ("certs.expires_after", {"path": "/etc/kubernetes/pki/etcd/server.crt", "days": 30}),
]


def _time_runs(run, runs: int) -> tuple[list[float], list]:
    times, last = [], None
    for _ in range(runs):
        started = time.perf_counter()
        last = run()
        times.append(time.perf_counter() - started)
    return times, last


def _report(label: str, times: list[float], per_check: dict[str, list[float]], outcomes) -> bool:
    median = statistics.median(times)
    ok = median <= TARGET
    print(f"{label}: median {median:.3f} s over {len(times)} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}) target <= {TARGET} s: {'OK' if ok else 'SLOW'}")
    for (name, samples), outcome in zip(per_check.items(), outcomes):
        mark = "pass" if outcome.passed else "fail"
        print(f"    {statistics.median(samples) * 1000:7.1f} ms  {mark}  {name}")
    return ok


def bench_scenario(scenario_id: str, runs: int, seed: int) -> bool:
    catalog = Catalog.load()
    rendered, values = catalog.get(scenario_id).instantiate(seed)
    driver = LocalDriver()
    cluster = driver.create(rendered.cluster.to_spec("bench-check"), lambda step: None)
    ok = True
    try:
        state: dict = {}
        run_setup(rendered, cluster, values, state)
        print(f"scenario {scenario_id}: {len(rendered.checks)} checks")
        for label in ("fresh environment", "after the reference solution"):
            if label.startswith("after"):
                cluster.nodes[0].run(["bash", "-c", rendered.solution], timeout=600).check()
            per_check: dict[str, list[float]] = {c.name: [] for c in rendered.checks}

            def one_grade(per_check=per_check):
                outcomes = []
                for check in rendered.checks:
                    started = time.perf_counter()
                    sub = rendered.model_copy(update={"checks": [check]})
                    outcomes += grade(sub, cluster, values, state)
                    per_check[check.name].append(time.perf_counter() - started)
                return outcomes

            grade(rendered, cluster, values, state)  # warm caches as a second `cka-sim check` would
            times, _ = _time_runs(lambda: grade(rendered, cluster, values, state), runs)
            _, outcomes = _time_runs(one_grade, runs)
            ok &= _report(f"  {label}", times, per_check, outcomes)
    finally:
        driver.delete(cluster)
    return ok


def bench_control_plane(runs: int) -> bool:
    driver = LocalDriver()
    cluster = driver.create(ClusterSpec("bench-kube", components=("etcd", "kube-apiserver",
                                                                  "kube-controller-manager")),
                            lambda step: None)
    try:
        ctx = registry.Context(cluster)
        deadline = time.monotonic() + 90
        while not registry.get_checker("kube.ready")(ctx).passed:
            if time.monotonic() > deadline:
                raise SystemExit("the API server did not become ready in 90 s")
            time.sleep(0.3)
        per_check: dict[str, list[float]] = {f"{n} {p}": [] for n, p in KUBE_CHECKS}

        def run_all():
            outcomes = []
            for (name, params), key in zip(KUBE_CHECKS, per_check):
                started = time.perf_counter()
                outcomes.append(registry.get_checker(name)(ctx, **params))
                per_check[key].append(time.perf_counter() - started)
            return outcomes

        run_all()
        times, outcomes = _time_runs(run_all, runs)
        print(f"control plane: {len(KUBE_CHECKS)} API and certificate checks")
        return _report("  healthy cluster", times, per_check, outcomes)
    finally:
        driver.delete(cluster)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="etcd-pre-restore-backup")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--control-plane", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cka-bench-") as home:
        os.environ["CKA_SIM_HOME"] = home
        ok = bench_scenario(args.scenario, args.runs, args.seed)
        if args.control_plane:
            ok &= bench_control_plane(args.runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
