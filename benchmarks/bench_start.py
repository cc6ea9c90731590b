"""`cka-sim start` as the learner runs it: command typed to cluster ready and clock running.

    python benchmarks/bench_start.py [--runs 5] [--scenario ID]

Each run starts the scenario through the CLI in a child process (Python start-up,
catalog, provisioning, setup included), checks that etcd answers over TLS, then stops the
cluster. Runs in a throw-away CKA_SIM_HOME. Default scenario: etcd-backup (controlplane and
node01, the add-ons). Targets: etcd-backup <= 5 s, etcd-restore-deleted-namespace (its setup
waits for the Deployment's pods) <= 8 s.
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
HEALTH = ("etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
          "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key "
          "endpoint health")


TARGETS = {"etcd-backup": "<= 5 s", "etcd-restore-deleted-namespace": "<= 8 s"}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args], env=env, cwd=REPO,
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", default="etcd-backup")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cka-bench-") as home:
        env = {**os.environ, "CKA_SIM_HOME": home}
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            done = cli("start", args.scenario, env=env)
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                sys.exit(f"start failed: {done.stderr}")
            health = cli("shell", "-c", HEALTH, env=env)
            cli("stop", env=env)
            if health.returncode != 0:
                sys.exit(f"etcd not healthy after start: {health.stderr}")
            times.append(elapsed)
            time.sleep(1)  # let the background key refill settle, as between two tasks
        print(f"cka-sim start {args.scenario}: median {statistics.median(times):.2f}s "
              f"over {args.runs} runs ({', '.join(f'{t:.2f}' for t in times)}); "
              f"target {TARGETS.get(args.scenario, 'none set')}")


if __name__ == "__main__":
    main()
