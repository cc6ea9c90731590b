"""The kind driver against the embedded one, in the same run: start to ready, idle memory.

    python benchmarks/bench_kind.py [--runs 3] [--idle 20]

Needs a Docker engine, kind and a node image (CKA_SIM_KIND_IMAGE; `.ci/kind/engine.sh` and
`.ci/kind/node-image.sh` make both). For each driver, alternately, it times `cka-sim start`
of etcd-backup and of etcd-restore-deleted-namespace through the CLI (Python start-up,
provisioning and setup included, until the clock runs), then stops the cluster. Idle
memory is the memory of a one-node cluster after ``--idle`` seconds: the sum of RSS of the
embedded cluster's processes, and the kind node container's cgroup usage (docker stats).
Prints medians and the kind/embedded ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_start import cli  # noqa: E402 - benchmarks/ is put on sys.path above

SCENARIOS = ("etcd-backup", "etcd-restore-deleted-namespace")
DRIVERS = ("local", "kind")


def time_start(scenario: str, driver: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = cli("start", scenario, "--driver", driver, env=env)
    elapsed = time.perf_counter() - began
    try:
        if done.returncode != 0:
            sys.exit(f"start {scenario} on {driver} failed:\n{done.stderr}")
        probe = cli("shell", "-c", "etcdctl version", env=env)
        if probe.returncode != 0:
            sys.exit(f"the {driver} node does not answer after start: {probe.stderr}")
    finally:
        cli("stop", env=env)
    return elapsed


def kind_idle_mb(idle: float) -> float:
    from simulator.cluster.kind.driver import KindDriver
    from simulator.cluster.node import ClusterSpec

    driver = KindDriver()
    cluster = driver.create(ClusterSpec(f"cka-bench-{os.getpid()}"), lambda step: None)
    try:
        time.sleep(idle)
        done = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}",
                               cluster.nodes[0].container], capture_output=True, text=True,
                              check=True)
        used = done.stdout.split("/")[0].strip()
        number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
        return number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1000, "MB": 1,
                         "GB": 1000}.get(unit, 1)
    finally:
        driver.delete(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    if not os.environ.get("CKA_SIM_KIND_IMAGE"):
        print("note: CKA_SIM_KIND_IMAGE is not set; kind uses the pinned official image "
              "(pulled from its registry)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="cka-bench-kind-") as home:
        env = {**os.environ, "CKA_SIM_HOME": home}
        os.environ["CKA_SIM_HOME"] = home
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for scenario in SCENARIOS:
                for driver in DRIVERS:
                    times.setdefault((scenario, driver), []).append(
                        time_start(scenario, driver, env))
        from bench_local import idle_memory

        local_rss, _, _ = idle_memory(args.idle)
        kind_mb = kind_idle_mb(args.idle)
    print(f"median of {args.runs} runs, {os.cpu_count()} CPUs, image "
          f"{os.environ.get('CKA_SIM_KIND_IMAGE') or 'pinned official'}")
    print(f"{'measure':44} {'embedded':>9} {'kind':>9} {'ratio':>7}")
    for scenario in SCENARIOS:
        local = statistics.median(times[(scenario, "local")])
        kind = statistics.median(times[(scenario, "kind")])
        print(f"{'start to ready: ' + scenario:44} {local:8.2f}s {kind:8.2f}s {kind / local:6.1f}x")
    print(f"{'idle 1-node cluster memory':44} {local_rss:7.0f}MB {kind_mb:7.0f}MB "
          f"{kind_mb / local_rss:6.1f}x")
    print("(embedded: RSS of the cluster's processes; kind: the node container's cgroup, "
          "docker stats)")


if __name__ == "__main__":
    main()
