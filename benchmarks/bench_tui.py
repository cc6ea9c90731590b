"""`cka-sim` (no arguments) to the first painted catalog, in a real pseudo-terminal.

    python benchmarks/bench_tui.py [--runs 5] [--size 120x36]

Each run starts the TUI as the learner does (the `cka-sim` console script when it is on
PATH, else `python -m simulator`), times until the title of the catalog's first scenario
has been written to the terminal, then quits with ctrl+q. Runs in a throw-away
CKA_SIM_HOME. Target (issue: TUI): median <= 0.6 s.

The warm-up run leaves the catalog index (simulator/tui/catalog_index.py) behind, so the
timed runs paint from it, as every start does while the scenario files are unchanged;
``--cold`` removes it before each run (the first start after a scenario file changed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.6


def first_title() -> str:
    """The text the catalog's first row starts with (sorted as the catalog screen sorts)."""
    sys.path.insert(0, str(REPO))
    from simulator.catalog import Catalog
    from simulator.tui.screens.catalog import LEVELS

    catalog = Catalog.load()
    first = min(catalog.scenarios.values(),
                key=lambda s: (s.domain, LEVELS.get(s.difficulty, 9), s.id))
    return first.title[:14]


def command() -> list[str]:
    """The installed console script beside this interpreter (not a version manager's shim),
    else ``python -m simulator``."""
    beside = Path(sys.executable).with_name("cka-sim")
    if beside.is_file():
        return [str(beside)]
    script = shutil.which("cka-sim")
    return [script] if script else [sys.executable, "-m", "simulator"]


def one_run(argv: list[str], text: str, env: dict[str, str], size: tuple[int, int]) -> float:
    began = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(REPO), encoding="utf-8",
                          timeout=20, dimensions=(size[1], size[0]))
    try:
        child.expect(re.escape(text))
        elapsed = time.perf_counter() - began
        child.send("\x11")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="120x36", help="terminal WIDTHxHEIGHT")
    parser.add_argument("--cold", action="store_true", help="no catalog index: load every scenario first")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    text = first_title()
    argv = command()
    with tempfile.TemporaryDirectory(prefix="cka-bench-") as home:
        env = {**os.environ, "CKA_SIM_HOME": home, "TERM": "xterm-256color"}
        one_run(argv, text, env, (width, height))  # warm the OS file cache and bytecode
        times = []
        for i in range(args.runs):
            if args.cold:
                Path(home, "catalog-index.json").unlink(missing_ok=True)
            seconds = one_run(argv, text, env, (width, height))
            times.append(seconds)
            print(f"run {i + 1}: {seconds:.3f} s", file=sys.stderr)
    median = statistics.median(times)
    load = os.getloadavg()[0]
    verdict = "ok" if median <= TARGET else "over target"
    print(f"{' '.join(Path(a).name for a in argv)}: first painted catalog"
          f"{' (cold: no catalog index)' if args.cold else ''}, median of "
          f"{args.runs}: {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}; "
          f"target <= {TARGET} s: {verdict}; load average {load:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
