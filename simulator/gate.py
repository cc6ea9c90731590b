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
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from simulator import paths
from simulator.attacks import attacks
from simulator.catalog import Catalog
from simulator.cluster import get_driver
from simulator.cluster.node import Cluster, Completed
from simulator.envflags import env_flag
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


@dataclasses.dataclass
class _Template:
    """A set-up cluster kept as a checkpoint (embedded driver): every attempt boots a copy
    of it instead of making a cluster and running the setup again. ``scenario``,
    ``values`` and ``state`` are as the setup left them; ``seen`` is what ran on the
    cluster when it was saved, which every copy must show too (or the attempt falls back
    to a fresh cluster); ``off`` says why copies stopped being used."""

    path: Path
    scenario: Scenario
    values: dict[str, Any]
    state: dict[str, Any]
    seen: dict[str, Any]
    off: str = ""


def _make_template(scenario: Scenario, values: dict[str, Any],
                   progress: Callable[[str], None]) -> _Template | None:
    """Set one embedded cluster up and keep it as a checkpoint; None when it cannot be
    kept (it says why in the gate's progress). SimError when the setup fails."""
    spec = scenario.cluster.to_spec(f"gate-{secrets.token_hex(3)}")
    drv = get_driver("local")
    if drv.checkpoint_refused(spec) is not None:
        return None
    state: dict[str, Any] = {}
    local, local_values = scenario.model_copy(deep=True), dict(values)
    cluster = _fresh(local, "local", local_values, state)
    try:
        seen = drv.fingerprint(cluster)
        why = drv.checkpoint_diverged(cluster, seen)
        if why is not None:
            progress(f"{scenario.id}: not kept as a checkpoint: {why}; fresh clusters for every attempt")
            drv.delete(cluster)
            return None
        path = paths.data_dir() / "checkpoints" / cluster.name
        drv.checkpoint(cluster, path)
    except BaseException:
        drv.delete(cluster)
        raise
    return _Template(path, local, local_values, state, seen)


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


# What one attempt checks, given its fresh cluster: the problems it finds.
Judge = Callable[[_Attempt], list[str]]


def default_jobs(driver: str) -> int:
    """How many attempts the gate plays at once: ``CKA_SIM_GATE_JOBS``, else 3 on embedded
    clusters and 2 on kind. An attempt spends most of its time waiting (for etcd and API
    servers to stop, start and answer, for the solution's polling loops), so a few side by
    side take little more than one; every attempt still has a cluster of its own."""
    raw = os.environ.get("CKA_SIM_GATE_JOBS", "")
    if raw.strip():
        try:
            return max(1, int(raw))
        except ValueError:
            raise SimError(f"CKA_SIM_GATE_JOBS={raw!r} is not a number",
                           hint="set it to how many gate attempts may run at once, e.g. 2") from None
    return 3 if driver == "local" else 2


def gate_scenario(scenario: Scenario, *, driver: str = "local", seed: int = 0,
                  progress: Callable[[str], None] = lambda line: None,
                  jobs: int | None = None) -> GateResult:
    """Run the three gates for one scenario and collect every problem found, in the order
    of the attempts (reference, alternatives, wrong solutions, attacks), whatever order
    they finish in."""
    began = time.monotonic()
    result = GateResult(scenario.id, seed)
    rendered, values = scenario.instantiate(seed)
    found = attacks(rendered, lambda c, text: run_script(c, text, stop_on_error=False))
    attempts = _attempts(rendered, found)
    drv = get_driver(driver)
    stop = threading.Event()  # the reference could not be set up: the rest would repeat it
    template = None
    if driver == "local" and reuse_clusters():
        began_template = time.monotonic()
        try:
            template = _make_template(rendered, values, progress)
        except SimError as exc:
            result.problems = [f"setup failed: {exc.message} ({exc.hint})"]
            result.seconds = time.monotonic() - began
            return result
        if template is not None:
            progress(f"{scenario.id}: set up once and saved in "
                     f"{time.monotonic() - began_template:.0f}s; each attempt boots a copy")

    def booted(what: str) -> _Attempt | None:
        """A copy of the template booted for one attempt, if it shows what the template
        showed; None (and no more copies) otherwise."""
        if template is None or template.off:
            return None
        try:
            cluster = drv.boot(template.path, f"gate-{secrets.token_hex(3)}", lambda s: None)
        except SimError as exc:
            # what answered when the set-up cluster was saved does not answer after a boot:
            # the setup left state a restart does not keep (an API server's caches)
            if not template.off:
                template.off = f"a booted copy did not come up as the set-up cluster was ({what}): {exc.message}"
                progress(f"{scenario.id}: {template.off}; fresh clusters from now on")
            return None
        deadline = time.monotonic() + 15  # the kubelet starts its static pods one by one
        while (seen := drv.fingerprint(cluster, template.seen)) != template.seen and time.monotonic() < deadline:
            time.sleep(0.5)
        if seen != template.seen:
            drv.delete(cluster)
            if not template.off:
                template.off = f"a booted copy differs from the set-up cluster ({what}): {seen} != {template.seen}"
                progress(f"{scenario.id}: {template.off}; fresh clusters from now on")
            return None
        return _Attempt(cluster, dict(template.state), template.scenario.model_copy(deep=True),
                        dict(template.values))

    def one(what: str, judge: Judge) -> tuple[bool, list[str]]:
        if stop.is_set():
            return False, []
        progress(f"{scenario.id}: {what}")
        start = time.monotonic()
        attempt = booted(what)
        if attempt is None:
            state: dict[str, Any] = {}
            local, local_values = rendered.model_copy(deep=True), dict(values)
            try:
                cluster = _fresh(local, driver, local_values, state)
            except SimError as exc:
                return True, [f"setup failed: {exc.message} ({exc.hint})"]
            attempt = _Attempt(cluster, state, local, local_values)
        try:
            return False, judge(attempt)
        except SimError as exc:
            return False, [f"{what} could not be played: {exc.message}"]
        finally:
            drv.delete(attempt.cluster)
            progress(f"{scenario.id}: {what} done in {time.monotonic() - start:.0f}s")

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs or default_jobs(driver),
                                                   thread_name_prefix="gate") as pool:
            futures = [pool.submit(one, what, judge) for what, judge in attempts]
            setup_failed, problems = futures[0].result()
            if setup_failed:
                stop.set()
                result.problems = problems
            else:
                result.problems = problems + [p for f in futures[1:] for p in f.result()[1]]
    finally:
        if template is not None:
            drv.remove_checkpoint(template.path)
    result.seconds = time.monotonic() - began
    return result


def reuse_clusters() -> bool:
    """Whether embedded gates boot copies of one set-up cluster (the default) instead of
    making and setting up a cluster per attempt: ``CKA_SIM_GATE_FRESH=1`` turns it off."""
    return not env_flag("CKA_SIM_GATE_FRESH", False)


def _attempts(rendered: Scenario, found: list) -> list[tuple[str, Judge]]:
    """Every attempt of the gate, in order, with what each must find."""
    def reference(a: _Attempt) -> list[str]:
        problems = []
        fresh = grade(a.scenario, a.cluster, a.values, a.state)
        score = sum(o.points for o in fresh)
        if score:
            problems.append(f"doing nothing scores {score}/{sum(o.max_points for o in fresh)}: "
                            "a fresh environment must score exactly 0")
        earned = [o for o in fresh if o.passed and not o.guard]
        lost_guards = [o for o in fresh if o.guard and not o.passed]
        if earned:
            problems.append(f"fresh environment already passes: {_describe(earned)}")
        if lost_guards:
            problems.append(f"guard checks fail on a fresh environment: {_describe(lost_guards)}")
        done = run_script(a.cluster, a.scenario.solution, stop_on_error=True)
        if done is not None and not done.ok:
            problems.append(f"solution exited {done.returncode}: {_tail(done)}")
        missed = [o for o in grade(a.scenario, a.cluster, a.values, a.state) if not o.passed]
        if missed:
            problems.append("solution misses: " + "; ".join(f"{o.name!r}: {o.detail}" for o in missed))
        return problems

    def alternative(i: int, what: str) -> Judge:
        def judge(a: _Attempt) -> list[str]:
            problems = []
            done = run_script(a.cluster, a.scenario.alternatives[i].script, stop_on_error=True)
            if done is not None and not done.ok:
                problems.append(f"{what} exited {done.returncode}: {_tail(done)}")
            missed = [o for o in grade(a.scenario, a.cluster, a.values, a.state) if not o.passed]
            if missed:
                problems.append(f"{what} misses: " + "; ".join(f"{o.name!r}: {o.detail}" for o in missed))
            return problems
        return judge

    def wrong(i: int, name: str) -> Judge:
        def judge(a: _Attempt) -> list[str]:
            problems = []
            run_script(a.cluster, a.scenario.wrong_solutions[i].script, stop_on_error=False)
            outcomes = grade(a.scenario, a.cluster, a.values, a.state)
            expected = set(a.scenario.wrong_solutions[i].fails)
            should_fail = [o for o in outcomes if o.name in expected and o.passed]
            should_pass = [o for o in outcomes if o.name not in expected and not o.passed]
            if should_fail:
                problems.append(f"wrong solution {name!r} is not caught by: "
                                + ", ".join(repr(o.name) for o in should_fail))
            if should_pass:
                problems.append(f"wrong solution {name!r} also fails: "
                                + "; ".join(f"{o.name!r}: {o.detail}" for o in should_pass))
            return problems
        return judge

    def attack(name: str, limit: float) -> Judge:
        def judge(a: _Attempt) -> list[str]:
            _attack(a.scenario, name).play(a.cluster)
            outcomes = grade(a.scenario, a.cluster, a.values, a.state)
            score, top = sum(o.points for o in outcomes), sum(o.max_points for o in outcomes)
            if not top or score / top <= limit:
                return []
            paid = [o for o in outcomes if o.passed and o.points]
            return [f"attack {name!r} ({ATTACKS[name]}) scores {score}/{top}, more than "
                    f"{'full marks allow' if limit >= 0.999 else f'{limit:.0%}'}: it passes "
                    + ", ".join(repr(o.name) for o in paid)]
        return judge

    out: list[tuple[str, Judge]] = [("fresh environment and reference solution", reference)]
    for i, alt in enumerate(rendered.alternatives):
        what = f"alternative {alt.name!r}"
        out.append((what, alternative(i, what)))
    for i, w in enumerate(rendered.wrong_solutions):
        out.append((f"wrong solution {w.name!r}", wrong(i, w.name)))
    for a in found:
        out.append((f"attack {a.name!r}", attack(a.name, a.limit)))
    return out


def _tail(done: Completed) -> str:
    return " | ".join((done.err or done.out).strip().splitlines()[-3:])


def _attack(scenario: Scenario, name: str) -> Any:
    """The built-in attack ``name`` as ``scenario`` (rendered for one cluster) gives it."""
    return next(a for a in attacks(scenario, lambda c, text: run_script(c, text, stop_on_error=False))
                if a.name == name)


def run_gate(catalog: Catalog, ids: list[str], *, driver: str = "local", seed: int = 0,
             progress: Callable[[str], None] = lambda line: None,
             jobs: int | None = None) -> list[GateResult]:
    """The gate for each scenario id, in order."""
    return [gate_scenario(catalog.get(i), driver=driver, seed=seed, progress=progress, jobs=jobs)
            for i in ids]
