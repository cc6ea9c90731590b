"""The quality gate every scenario must pass (``cka-sim scenario test``).

On fresh clusters: before any action the scenario scores exactly 0 and its guards hold;
the reference solution and each listed alternative score full marks; each wrong solution
loses exactly the checks it names; and the built-in attacks of :mod:`simulator.attacks` (an empty data directory, a raw
database copy, the solution without its last step) earn no more than they may. A scenario
that cannot be solved or can be fooled fails the gate.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from simulator.attacks import attacks
from simulator.catalog import Catalog
from simulator.cluster import get_driver
from simulator.cluster.node import Cluster, Completed
from simulator.errors import SimError
from simulator.grading import CheckOutcome, grade
from simulator.scenario import ATTACKS, Scenario
from simulator.scenario.templating import NODE_MARK
from simulator.session import run_setup


@dataclasses.dataclass
class GateResult:
    scenario: str
    seed: int
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "seed": self.seed, "passed": self.passed,
                "problems": self.problems, "seconds": round(self.seconds, 1)}


# A line ``# on node NAME`` in a solution (NODE_MARK) moves the rest of the script to that
# node, as a candidate would ssh there; the lines before the first one run on the first node.


def script_parts(script: str, first_node: str) -> list[tuple[str, str]]:
    """``script`` split at ``# on node NAME`` lines into (node, part) pairs, in order."""
    parts, node, start = [], first_node, 0
    for mark in NODE_MARK.finditer(script):
        parts.append((node, script[start:mark.start()]))
        node, start = mark.group(1), mark.end()
    parts.append((node, script[start:]))
    return [(n, text) for n, text in parts if text.strip()]


def run_script(cluster: Cluster, script: str, *, stop_on_error: bool) -> Completed | None:
    """Run each node's part of ``script`` with bash as root on that node; the last result
    (the first failing one with ``stop_on_error``)."""
    done = None
    for node, text in script_parts(script, cluster.nodes[0].name):
        done = cluster.node(node).run(["bash", "-c", text], timeout=600)
        if stop_on_error and not done.ok:
            break
    return done


def _describe(outcomes: list[CheckOutcome]) -> str:
    return ", ".join(f"{o.name!r} {'passed' if o.passed else 'failed'}" for o in outcomes)


def _fresh(scenario: Scenario, driver: str, values: dict[str, Any],
           state: dict[str, Any]) -> Cluster:
    """A new cluster with ``scenario``'s setup applied; ``scenario`` and ``values`` take the
    vars read from this cluster (node addresses), in place."""
    drv = get_driver(driver)
    cluster = drv.create(scenario.cluster.to_spec(f"gate-{secrets.token_hex(3)}"), lambda s: None)
    try:
        run_setup(scenario, cluster, values, state)
    except BaseException:
        drv.delete(cluster)
        raise
    return cluster


class _Attempt(NamedTuple):
    """A fresh set-up cluster, its setup state, and the scenario and values as this
    cluster gives them (the vars read from it, such as node addresses, substituted)."""

    cluster: Cluster
    state: dict[str, Any]
    scenario: Scenario
    values: dict[str, Any]


class _Clusters:
    """Fresh set-up clusters for the gate's attempts, one made ahead in the background
    while the current attempt is played, so the next attempt does not wait for its
    cluster. Every attempt still gets a cluster of its own, made from nothing."""

    def __init__(self, scenario: Scenario, driver: str, values: dict[str, Any], count: int) -> None:
        self.scenario, self.driver, self.values = scenario, driver, values
        self.left = count
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate")
        self.ahead: concurrent.futures.Future | None = None
        self._order()

    def _make(self) -> _Attempt:
        state: dict[str, Any] = {}
        scenario, values = self.scenario.model_copy(deep=True), dict(self.values)
        return _Attempt(_fresh(scenario, self.driver, values, state), state, scenario, values)

    def _order(self) -> None:
        if self.left > 0:
            self.left -= 1
            self.ahead = self.pool.submit(self._make)
        else:
            self.ahead = None

    def next(self) -> _Attempt:
        """The next fresh cluster and its setup state (SimError when it cannot be made);
        the one after it starts being made at once."""
        assert self.ahead is not None, "more clusters asked for than announced"
        future = self.ahead
        self._order()
        return future.result()

    def close(self) -> None:
        """Remove a cluster made ahead but never used, and stop the worker."""
        if self.ahead is not None:
            future, self.ahead = self.ahead, None
            try:
                made = future.result()
            except BaseException:
                pass
            else:
                get_driver(self.driver).delete(made.cluster)
        self.pool.shutdown(wait=True)


def gate_scenario(scenario: Scenario, *, driver: str = "local", seed: int = 0,
                  progress: Callable[[str], None] = lambda line: None) -> GateResult:
    """Run the three gates for one scenario and collect every problem found."""
    began = time.monotonic()
    result = GateResult(scenario.id, seed)
    rendered, values = scenario.instantiate(seed)
    drv = get_driver(driver)
    found = attacks(rendered, lambda c, text: run_script(c, text, stop_on_error=False))
    clusters = _Clusters(rendered, driver, values,
                         1 + len(rendered.alternatives) + len(rendered.wrong_solutions) + len(found))
    try:
        _gate(rendered, values, drv, clusters, found, result, scenario.id, progress)
    finally:
        clusters.close()
    result.seconds = time.monotonic() - began
    return result


def _gate(rendered: Scenario, values: dict[str, Any], drv: Any, clusters: _Clusters,
          found: list, result: GateResult, scenario_id: str,
          progress: Callable[[str], None]) -> None:
    progress(f"{scenario_id}: fresh environment and reference solution")
    try:
        cluster, state, local, local_values = clusters.next()
    except SimError as exc:
        result.problems.append(f"setup failed: {exc.message} ({exc.hint})")
        return
    try:
        fresh = grade(local, cluster, local_values, state)
        score = sum(o.points for o in fresh)
        if score:
            result.problems.append(f"doing nothing scores {score}/{sum(o.max_points for o in fresh)}: "
                                   "a fresh environment must score exactly 0")
        earned = [o for o in fresh if o.passed and not o.guard]
        lost_guards = [o for o in fresh if o.guard and not o.passed]
        if earned:
            result.problems.append(f"fresh environment already passes: {_describe(earned)}")
        if lost_guards:
            result.problems.append(f"guard checks fail on a fresh environment: {_describe(lost_guards)}")
        done = run_script(cluster, local.solution, stop_on_error=True)
        if done is not None and not done.ok:
            tail = (done.err or done.out).strip().splitlines()[-3:]
            result.problems.append(f"solution exited {done.returncode}: {' | '.join(tail)}")
        solved = grade(local, cluster, local_values, state)
        missed = [o for o in solved if not o.passed]
        if missed:
            result.problems.append("solution misses: " + "; ".join(
                f"{o.name!r}: {o.detail}" for o in missed))
    finally:
        drv.delete(cluster)

    def played(what: str, play: Callable[[Cluster, Scenario], Completed | None],
               ) -> tuple[Completed | None, list[CheckOutcome], Scenario] | None:
        """``play`` on a fresh environment (given the scenario as that cluster renders it),
        then its grades; None (a problem noted) when the environment cannot be made or the
        play fails."""
        progress(f"{scenario_id}: {what}")
        try:
            cluster, state, local, local_values = clusters.next()
        except SimError as exc:
            result.problems.append(f"setup failed: {exc.message} ({exc.hint})")
            return None
        try:
            done = play(cluster, local)
            return done, grade(local, cluster, local_values, state), local
        except SimError as exc:
            result.problems.append(f"{what} could not be played: {exc.message}")
            return None
        finally:
            drv.delete(cluster)

    for i, alternative in enumerate(rendered.alternatives):
        what = f"alternative {alternative.name!r}"
        graded = played(what, lambda c, local, i=i: run_script(c, local.alternatives[i].script,
                                                                 stop_on_error=True))
        if graded is None:
            continue
        done, outcomes, _ = graded
        if done is not None and not done.ok:
            tail = (done.err or done.out).strip().splitlines()[-3:]
            result.problems.append(f"{what} exited {done.returncode}: {' | '.join(tail)}")
        missed = [o for o in outcomes if not o.passed]
        if missed:
            result.problems.append(f"{what} misses: " + "; ".join(f"{o.name!r}: {o.detail}" for o in missed))

    for i, wrong in enumerate(rendered.wrong_solutions):
        graded = played(f"wrong solution {wrong.name!r}",
                        lambda c, local, i=i: run_script(c, local.wrong_solutions[i].script,
                                                         stop_on_error=False))
        if graded is None:
            continue
        _, outcomes, local = graded
        expected = set(local.wrong_solutions[i].fails)
        should_fail = [o for o in outcomes if o.name in expected and o.passed]
        should_pass = [o for o in outcomes if o.name not in expected and not o.passed]
        if should_fail:
            result.problems.append(f"wrong solution {wrong.name!r} is not caught by: "
                                   + ", ".join(repr(o.name) for o in should_fail))
        if should_pass:
            result.problems.append(f"wrong solution {wrong.name!r} also fails: "
                                   + "; ".join(f"{o.name!r}: {o.detail}" for o in should_pass))

    for attack in found:
        graded = played(f"attack {attack.name!r}", lambda c, local, name=attack.name: _attack(local, name).play(c))
        if graded is None:
            continue
        outcomes = graded[1]
        score, top = sum(o.points for o in outcomes), sum(o.max_points for o in outcomes)
        if top and score / top > attack.limit:
            paid = [o for o in outcomes if o.passed and o.points]
            result.problems.append(
                f"attack {attack.name!r} ({ATTACKS[attack.name]}) scores {score}/{top}, more than "
                f"{'full marks allow' if attack.limit >= 0.999 else f'{attack.limit:.0%}'}: it passes "
                + ", ".join(repr(o.name) for o in paid))


def _attack(scenario: Scenario, name: str) -> Any:
    """The built-in attack ``name`` as ``scenario`` (rendered for one cluster) gives it."""
    return next(a for a in attacks(scenario, lambda c, text: run_script(c, text, stop_on_error=False))
                if a.name == name)


def run_gate(catalog: Catalog, ids: list[str], *, driver: str = "local", seed: int = 0,
             progress: Callable[[str], None] = lambda line: None) -> list[GateResult]:
    """The gate for each scenario id, in order."""
    return [gate_scenario(catalog.get(i), driver=driver, seed=seed, progress=progress)
            for i in ids]
