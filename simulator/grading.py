"""Grading: every check of a scenario run against a cluster, points and a report.

One grader for the single-task session, the exam and the quality gate, so a check scores
the same wherever it runs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from simulator import registry
from simulator.cluster.node import Cluster
from simulator.errors import CheckError, SimError

if TYPE_CHECKING:
    from simulator.scenario import Scenario


@dataclasses.dataclass
class CheckOutcome:
    """One check as graded: points earned out of ``max_points``."""

    name: str
    passed: bool
    points: int
    max_points: int
    detail: str = ""
    guard: bool = False


@dataclasses.dataclass
class Report:
    """Per-check results and the score of an attempt at one moment."""

    scenario: str
    results: list[CheckOutcome]
    time_used: float
    time_limit: float
    final: bool = False
    attempt_id: int | None = None

    @property
    def score(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> int:
        return sum(r.max_points for r in self.results)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    @property
    def overtime(self) -> float:
        return max(0.0, self.time_used - self.time_limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "final": self.final,
            "attempt_id": self.attempt_id,
            "score": self.score,
            "max_score": self.max_score,
            "percent": round(self.percent, 1),
            "time_used": round(self.time_used, 1),
            "time_limit": self.time_limit,
            "overtime": round(self.overtime, 1),
            "checks": [dataclasses.asdict(r) for r in self.results],
        }


def grade(scenario: Scenario, cluster: Cluster, values: dict[str, Any],
          state: dict[str, Any]) -> list[CheckOutcome]:
    """Run every check of an instantiated scenario against ``cluster``.

    A check whose ``requires`` did not all pass is not run and earns nothing. A checker
    that crashes, or meets a cluster error, counts as failed with the error in its detail;
    an unknown checker, bad parameters or a CheckError raised by the checker are the
    scenario's fault and end grading with a CheckError naming the scenario and the check.
    """
    results: list[CheckOutcome] = []
    passed: dict[str, bool] = {}
    seen: dict[Any, Any] = {}  # one grading's view: an API server that did not answer is asked once
    for check in scenario.checks:
        fn = registry.get_checker(check.use)
        registry.check_params(fn, "checker", check.use, check.with_)
        ctx = registry.Context(cluster, node_name=check.node or cluster.nodes[0].name,
                               vars=values, state=state, seen=seen)
        missing = [name for name in check.requires if not passed.get(name, False)]
        try:
            if missing:
                outcome = registry.CheckResult(False, "not counted: it needs "
                                               + " and ".join(repr(n) for n in missing) + " to pass first")
            else:
                outcome = fn(ctx, **check.with_)
        except CheckError as exc:
            raise CheckError(f"scenario {scenario.id!r}, check {check.name!r}: {exc.message}",
                             hint=exc.hint or "this is a mistake in the scenario file, not in your work") from exc
        except SimError as exc:
            outcome = registry.CheckResult(False, f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        except Exception as exc:  # a checker must never take the grading down
            outcome = registry.CheckResult(False, f"could not check: {type(exc).__name__}: {exc}")
        passed[check.name] = outcome.passed
        results.append(CheckOutcome(
            name=check.name, passed=outcome.passed,
            points=check.points if outcome.passed else 0, max_points=check.points,
            detail=outcome.detail, guard=check.guard,
        ))
    return results
