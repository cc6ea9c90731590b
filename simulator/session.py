"""One attempt at a scenario: provision -> setup -> clock -> check -> score -> teardown.

The session is UI-free: the CLI and the TUI are two faces of it. The active session is
persisted as JSON in the user data dir, so separate CLI invocations (and the TUI) share it.
The clock is a deadline: practice mode allows overtime and records it; exam mode refuses
further work once the deadline has passed and grades the attempt.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator import paths, registry
from simulator.cluster import get_driver
from simulator.cluster.node import Cluster, Step
from simulator.cluster.shell import write_clock
from simulator.errors import CheckError, SessionError
from simulator.grading import Report, grade
from simulator.history import Attempt, CheckRecord, History

if TYPE_CHECKING:
    from simulator.catalog import Catalog
    from simulator.scenario import Scenario
    from simulator.standby import Standby

MODES = ("practice", "exam")

Progress = Callable[[Step], None]


def _no_progress(step: Step) -> None:
    return None


def session_file() -> Path:
    return paths.data_dir() / "session.json"


def exam_file() -> Path:
    """Where the CLI keeps its running exam (see ``simulator.exam``)."""
    return paths.data_dir() / "exam.json"


@contextmanager
def session_lock() -> Iterator[None]:
    """Serialise session and exam changes between processes (CLI invocations, the TUI)."""
    lock_path = paths.data_dir() / "session.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def caveats(scenario: Scenario, driver: str) -> list[str]:
    """What ``scenario``'s cluster will lack on this machine with ``driver`` that the task
    may need (``ssh`` between its nodes), each with what to do; told before it starts."""
    return get_driver(driver).caveats(scenario.cluster.to_spec("caveats"))


def run_setup(scenario: Scenario, cluster: Cluster, values: dict[str, Any],
              state: dict[str, Any], progress: Progress = _no_progress) -> None:
    """Read the vars that come from the cluster (node addresses) into ``values`` and the
    instantiated ``scenario``, in place, then apply its setup steps in order (before the
    clock starts)."""
    from simulator import setup_steps

    setup_steps.bind_cluster_vars(scenario, cluster, values)
    total = len(scenario.setup)
    for i, step in enumerate(scenario.setup):
        progress(Step("setup", i, total, setup_steps.describe(step)))
        setup_steps.apply(step, cluster, values, state)
    progress(Step("setup", total, total, "ready"))


@dataclasses.dataclass
class Session:
    """The persisted state of the active attempt."""

    scenario: str
    source: str
    seed: int
    values: dict[str, Any]
    mode: str
    driver: str
    cluster_name: str
    status: str = "provisioning"  # provisioning -> running -> submitted
    started_at: float = 0.0
    deadline: float = 0.0
    time_limit: float = 0.0
    hints_shown: int = 0
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    exam: str | None = None
    last_report: dict[str, Any] | None = None
    id: str = dataclasses.field(default_factory=lambda: secrets.token_hex(4))

    # -- persistence -----------------------------------------------------------------

    def save(self) -> None:
        path = session_file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls) -> Session | None:
        """The active session, or None when there is none."""
        path = session_file()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SessionError(f"the session file {path} is unreadable: {exc}",
                               hint="run `cka-sim doctor --clean` to remove it") from None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    @classmethod
    def require(cls) -> Session:
        """The active session; SessionError with a hint when there is none."""
        session = cls.load()
        if session is None:
            raise SessionError("no session is active",
                               hint="start one with `cka-sim start ID` (see `cka-sim list`)")
        return session

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def start(cls, catalog: Catalog, scenario_id: str, *, driver: str = "local",
              seed: int | None = None, mode: str = "practice",
              progress: Progress = _no_progress, exam: str | None = None,
              standby: Standby | None = None) -> Session:
        """Provision a cluster, apply the setup and start the clock.

        Returns when the cluster is ready and the clock runs. A previous session that was
        already submitted is torn down first; a running one is an error. With ``standby``
        its cluster made in advance is used when the task's cluster has its shape.
        """
        if mode not in MODES:
            raise SessionError(f"unknown mode {mode!r}", hint="use --mode practice or --mode exam")
        scenario = catalog.get(scenario_id)
        drv = get_driver(driver)
        with session_lock():
            if exam_file().exists():
                raise SessionError("an exam is active (`cka-sim exam status` shows it)",
                                   hint="finish it with `cka-sim submit`, or end it with `cka-sim stop`")
            current = cls.load()
            if current is not None:
                if current.status == "submitted":
                    current._teardown()
                else:
                    raise SessionError(
                        f"a session is already active: {current.scenario} ({current.status})",
                        hint="finish it with `cka-sim submit`, or end it with `cka-sim stop`")
            if seed is None:
                seed = secrets.randbelow(2**31)
            rendered, values = scenario.instantiate(seed)
            session = cls(
                scenario=scenario.id, source=str(scenario.source or ""), seed=seed,
                values=values, mode=mode, driver=driver, exam=exam,
                cluster_name=f"cka-{secrets.token_hex(3)}",
                time_limit=float(rendered.time_limit),
            )
            session.save()
        try:
            spec = rendered.cluster.to_spec(session.cluster_name)
            made = standby.take(spec, progress) if standby is not None and driver == standby.driver else None
            if made is not None:
                session.cluster_name = made
                session.save()
                progress(Step("ready", 1, 1, "the cluster made while you read the catalog is up"))
                cluster = drv.attach(made)
            else:
                cluster = drv.create(spec, progress)
            run_setup(rendered, cluster, values, session.state, progress)
            session.started_at = time.time()
            session.deadline = session.started_at + session.time_limit
            session.status = "running"
            session._write_clock(cluster)
            session.save()
        except BaseException:
            session._teardown()
            raise
        return session

    def scenario_model(self, catalog: Catalog) -> Scenario:
        """The scenario of this session with its drawn values substituted."""
        scenario = catalog.get(self.scenario)
        rendered, _ = scenario.instantiate(self.seed, known=self.values)
        return rendered

    def cluster(self) -> Cluster:
        return get_driver(self.driver).attach(self.cluster_name)

    def _write_clock(self, cluster: Cluster) -> None:
        write_clock(cluster.nodes, self.scenario, self.deadline)

    def _teardown(self) -> None:
        try:
            get_driver(self.driver).delete(self.cluster_name)
        finally:
            session_file().unlink(missing_ok=True)

    # -- the clock -----------------------------------------------------------------------

    def remaining(self, now: float | None = None) -> float:
        """Seconds left before the deadline (negative in overtime)."""
        return self.deadline - (time.time() if now is None else now)

    def time_used(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        if self.mode == "exam":
            now = min(now, self.deadline)
        return max(0.0, now - self.started_at)

    def expired(self, now: float | None = None) -> bool:
        return self.status == "running" and self.remaining(now) <= 0

    def require_running(self) -> None:
        if self.status == "provisioning":
            raise SessionError("the cluster is still being provisioned",
                               hint="wait for `cka-sim start` to finish, or `cka-sim stop`")
        if self.status == "submitted":
            raise SessionError(f"the attempt at {self.scenario} was already submitted",
                               hint="start another with `cka-sim start ID`, or `cka-sim stop`")
        if self.mode == "exam" and self.expired():
            raise SessionError("time is up: in exam mode the clock never stops",
                               hint="`cka-sim submit` grades the attempt")

    # -- grading -------------------------------------------------------------------------

    def check(self, catalog: Catalog) -> Report:
        """Grade the current state without ending the attempt (practice mode only)."""
        self.require_running()
        if self.mode == "exam":
            raise SessionError("checking is off in exam mode",
                               hint="as on the exam, you see the score after `cka-sim submit`")
        scenario = self.scenario_model(catalog)
        results = grade(scenario, self.cluster(), self.values, self.state)
        return Report(self.scenario, results, self.time_used(), self.time_limit)

    def submit(self, catalog: Catalog, history: History | None = None) -> Report:
        """Final grading: stop the clock, record the attempt. The cluster stays up."""
        with session_lock():
            if self.status == "submitted" and self.last_report:
                raise SessionError(f"the attempt at {self.scenario} was already submitted",
                                   hint="see it with `cka-sim history`, or `cka-sim stop`")
            if self.status != "running":
                self.require_running()
            ended = time.time()
            scenario = self.scenario_model(catalog)
            results = grade(scenario, self.cluster(), self.values, self.state)
            report = Report(self.scenario, results, self.time_used(ended), self.time_limit,
                            final=True)
            attempt = Attempt(
                scenario=self.scenario, title=scenario.title, domain=scenario.domain,
                exam=self.exam, seed=self.seed, vars=self.values, mode=self.mode,
                driver=self.driver, started_at=self.started_at, ended_at=ended,
                time_used=report.time_used, time_limit=self.time_limit,
                overtime=max(0.0, ended - self.deadline), score=report.score,
                max_score=report.max_score, hints_used=self.hints_shown,
                checks=[CheckRecord(r.name, r.passed, r.points, r.max_points, r.detail)
                        for r in results],
            )
            report.attempt_id = (history or History()).record(attempt)
            self.status = "submitted"
            self.last_report = report.to_json()
            self.save()
        return report

    def next_hint(self, catalog: Catalog) -> tuple[int, str]:
        """Reveal the next hint (practice mode): returns (number, text); counted in history."""
        self.require_running()
        if self.mode == "exam":
            raise SessionError("hints are off in exam mode", hint="switch to --mode practice")
        hints = self.scenario_model(catalog).hints
        if not hints:
            raise SessionError("this task has no hints", hint="read the task text again")
        if self.hints_shown >= len(hints):
            return len(hints), hints[-1]
        self.hints_shown += 1
        self.save()
        return self.hints_shown, hints[self.hints_shown - 1]

    def stop(self) -> None:
        """Tear the cluster down and forget the session (an unsubmitted attempt is dropped)."""
        with session_lock():
            self._teardown()

    def status_json(self) -> dict[str, Any]:
        data = {
            "scenario": self.scenario,
            "status": self.status,
            "mode": self.mode,
            "driver": self.driver,
            "cluster": self.cluster_name,
            "seed": self.seed,
            "vars": self.values,
            "started_at": self.started_at,
            "deadline": self.deadline,
            "time_limit": self.time_limit,
            "remaining": round(self.remaining(), 1) if self.status == "running" else None,
            "hints_shown": self.hints_shown,
            "exam": self.exam,
        }
        return data


def stop_active() -> bool:
    """Stop the active session if any; True when there was one."""
    session = Session.load()
    if session is None:
        return False
    session.stop()
    return True


def ensure_checker_names(scenario: Scenario) -> list[str]:
    """Problems with the checkers and faults a scenario names (unknown names, bad params)."""
    problems = []
    for check in scenario.checks:
        try:
            fn = registry.get_checker(check.use)
            registry.check_params(fn, "checker", check.use, check.with_)
        except CheckError as exc:
            problems.append(f"check {check.name!r}: {exc.message} ({exc.hint})")
    from simulator import setup_steps

    problems += setup_steps.problems(scenario)
    return problems
