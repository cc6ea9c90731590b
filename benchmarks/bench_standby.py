"""Enter on a task in the TUI's catalog to its task screen, with and without the cluster the
TUI makes while the learner reads the catalog (simulator/standby.py).

    python benchmarks/bench_standby.py [--runs 5] [--scenario etcd-backup]

Each run opens the TUI headless on the built-in catalog in a throw-away CKA_SIM_HOME,
waits (untimed) until the standby cluster is ready, then times Enter on the scenario to
its task screen: the task's setup on the ready cluster, clock started. The same is then
timed with the standby off (the cluster made after Enter). Target (issue 15): median
<= 1 s with the standby.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET = 1.0


async def one_run(scenario: str, standby: bool) -> float:
    from simulator.catalog import Catalog
    from simulator.history import History
    from simulator.session import Session
    from simulator.tui.app import CkaSimApp
    from simulator.tui.screens.task import TaskScreen

    app = CkaSimApp(catalog=Catalog.load(), history=History(), probe_docker=False, standby=standby)
    async with app.run_test(size=(120, 36)) as pilot:
        while standby and not app.standby.ready:
            if app.standby.error:
                raise SystemExit(f"the standby cluster failed: {app.standby.error}")
            await pilot.pause(0.1)
        await pilot.press(*scenario)
        await pilot.pause(0.3)
        began = time.perf_counter()
        await pilot.press("enter")
        while not isinstance(app.screen, TaskScreen):
            await pilot.pause(0.02)
        elapsed = time.perf_counter() - began
        await pilot.pause(0.5)  # let the task screen finish mounting before leaving
        Session.load().stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", default="etcd-backup")
    args = parser.parse_args()
    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="cka-bench-") as home:
        os.environ["CKA_SIM_HOME"] = home
        for standby in (True, False):
            for i in range(args.runs):
                took = asyncio.run(one_run(args.scenario, standby))
                results[standby].append(took)
                print(f"{'standby' if standby else 'no standby'} run {i + 1}: {took:.2f} s", flush=True)
    with_it, without = statistics.median(results[True]), statistics.median(results[False])
    print(f"\n{args.scenario}: Enter to task screen, median of {args.runs}: "
          f"{with_it:.2f} s with the standby cluster (target <= {TARGET:g} s: "
          f"{'met' if with_it <= TARGET else 'NOT met'}), {without:.2f} s without")


if __name__ == "__main__":
    main()
