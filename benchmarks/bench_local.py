"""Embedded driver benchmarks: time to a healthy etcd, and memory of an idle cluster.

    python benchmarks/bench_local.py [--runs 5] [--cold]

(a) create a 1-node cluster until etcd answers ``endpoint health`` over TLS (target 2 s),
(b) the same for 3 control planes forming one etcd cluster (target 4 s),
(c) resident memory of an idle 1-node cluster, all its processes (target 100 MB).

Runs in a throw-away ``CKA_SIM_HOME``. By default the spare RSA key pool, refilled in the
background after each create, is full when a run starts (what a learner gets from the
second task on); ``--cold`` empties it before every run (a first start).
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

from simulator.cluster.local import driver as driver_mod
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec


def _wait_refill(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    busy = b"spare-keys" in (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if busy:
                    break
        if not busy:
            return
        time.sleep(0.1)


def time_create(spec: ClusterSpec, runs: int, cold: bool) -> list[float]:
    drv = LocalDriver()
    times = []
    for i in range(runs):
        _wait_refill()
        if cold:
            shutil.rmtree(driver_mod._spare_keys_dir(), ignore_errors=True)
        name = f"{spec.name}-{i}"
        started = time.perf_counter()
        cluster = drv.create(ClusterSpec(name, control_planes=spec.control_planes),
                             lambda step: None)
        times.append(time.perf_counter() - started)
        drv.delete(cluster)
    return times


def _status(pid: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cluster_processes(cluster) -> dict[str, str]:
    """pid -> command of every process of ``cluster``: marked ones and all in its nodes."""
    marked = {pid for pid, d in driver_mod._marked_processes().items()
              if d == cluster.directory}
    pidns = {os.readlink(f"/proc/{n.pid}/ns/pid") for n in cluster.nodes}
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ns = os.readlink(entry / "ns/pid")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(entry.name) in marked or ns in pidns:
            found[entry.name] = comm
    return found


def idle_memory(idle: float, spec: ClusterSpec | None = None,
                ready=None) -> tuple[float, float, dict[str, int]]:
    """RSS and PSS (MB) of every process of a new cluster of ``spec``, ``idle`` seconds
    after ``ready(cluster)`` (polled up to 120 s) held, and RSS per process (kB)."""
    drv = LocalDriver()
    cluster = drv.create(spec or ClusterSpec("idle"), lambda step: None)
    try:
        deadline = time.monotonic() + 120
        while ready is not None and not ready(cluster):
            if time.monotonic() > deadline:
                raise SystemExit("the cluster's pods did not all run within 120 s")
            time.sleep(1)
        _wait_refill()
        time.sleep(idle)
        procs = cluster_processes(cluster)
        per = {f"{comm}[{pid}]": _status(pid, "VmRSS") for pid, comm in procs.items()}
        rss = sum(per.values()) / 1024
        pss = sum(_pss(pid) for pid in procs) / 1024
    finally:
        drv.delete(cluster)
    return rss, pss, per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="empty the spare key pool each run")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before measuring")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="cka-bench-")
    os.environ["CKA_SIM_HOME"] = os.path.join(home, "home")
    os.environ["CKA_SIM_CACHE"] = os.path.join(home, "cache")
    try:
        one = time_create(ClusterSpec("one"), args.runs, args.cold)
        three = time_create(ClusterSpec("three", control_planes=3), args.runs, args.cold)
        rss, pss, per = idle_memory(args.idle)
    finally:
        LocalDriver().clean(keep=())
        shutil.rmtree(home, ignore_errors=True)
    rows = [
        ("1 node, etcd healthy over TLS", f"{statistics.median(one):.2f} s", "<= 2 s",
         " ".join(f"{t:.2f}" for t in one)),
        ("3 members, etcd cluster healthy", f"{statistics.median(three):.2f} s", "<= 4 s",
         " ".join(f"{t:.2f}" for t in three)),
        ("idle 1-node cluster, RSS (sum)", f"{rss:.0f} MB", "<= 100 MB", f"PSS {pss:.0f} MB"),
    ]
    pool = "cold (empty key pool)" if args.cold else "warm (spare key pool full)"
    print(f"embedded driver, median of {args.runs} runs, {pool}, {os.cpu_count()} CPUs")
    print(f"{'measure':34} {'median':>9} {'target':>10}  runs")
    for name, value, target, runs in rows:
        print(f"{name:34} {value:>9} {target:>10}  {runs}")
    print("processes of the idle cluster (RSS kB): "
          + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
