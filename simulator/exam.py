"""An exam attempt: several scenarios under one global clock, each on its own cluster.

UI-free, like ``session.py``. The first task's cluster is provisioned before the clock
starts; the others are provisioned in the background (``provision_wanted``) while the
learner works, a task or two ahead of the one selected. Every cluster stays up until the
exam is stopped, so switching tasks loses nothing. At the end (or the deadline) every task
is graded once and recorded in the history with ``exam=<exam id>``.

Each task is worth a weight in percent: the exam file's weights (adding up to 100, as the
CKA's 4-8 % a task), else its share of all points. A task scores its weight times the
fraction of its points earned; the exam passes at ``pass_mark`` percent.

The terminal UI keeps its exam in memory (if the process dies, its clusters are orphans
that ``cka-sim doctor --clean`` removes). The CLI, whose commands are separate processes,
saves the exam to ``exam.json`` in the data dir (``save``/``load``) beside the practice
session's file; only one of the two is active at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from simulator.catalog import Catalog
from simulator.cluster import get_driver
from simulator.cluster.node import Cluster, Step, login_node
from simulator.cluster.shell import write_clock
from simulator.errors import SessionError, SimError
from simulator.grading import CheckOutcome, grade
from simulator.history import Attempt, CheckRecord, ExamSitting, History
from simulator.scenario import Exam, Scenario
from simulator.session import exam_file, run_setup, session_lock

Progress = Callable[[Step], None]

PENDING, PROVISIONING, READY, FAILED = "pending", "provisioning", "ready", "failed"


def _no_progress(step: Step) -> None:
    return None


@dataclasses.dataclass
class ExamTask:
    """One task of an exam: a scenario with its drawn values and its own cluster."""

    number: int
    scenario: Scenario
    seed: int
    values: dict[str, Any]
    cluster_name: str
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = PENDING
    error: str = ""
    hint: str = ""
    flagged: bool = False
    results: list[CheckOutcome] | None = None
    attempt_id: int | None = None
    weight: float = 0.0

    @property
    def score(self) -> int:
        return sum(r.points for r in self.results or [])

    @property
    def max_score(self) -> int:
        return sum(c.points for c in self.scenario.checks)

    @property
    def weighted(self) -> float:
        """Percent of the exam earned: the weight times the fraction of points earned."""
        return self.weight * self.score / self.max_score if self.max_score else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "scenario": self.scenario.id, "title": self.scenario.title,
                "domain": self.scenario.domain, "weight": round(self.weight, 2),
                "status": self.status, "flagged": self.flagged, "score": self.score,
                "max_score": self.max_score, "weighted": round(self.weighted, 2),
                "attempt_id": self.attempt_id,
                "checks": [dataclasses.asdict(r) for r in self.results or []]}


@dataclasses.dataclass
class ExamReport:
    """Per-task scores of a finished exam and the verdict at the pass mark."""

    exam: str
    title: str
    tasks: list[ExamTask]
    pass_mark: int
    time_used: float
    duration: float

    @property
    def score(self) -> int:
        return sum(t.score for t in self.tasks)

    @property
    def max_score(self) -> int:
        return sum(t.max_score for t in self.tasks)

    @property
    def percent(self) -> float:
        """Percent of the exam earned: the tasks' weighted scores added up."""
        return sum(t.weighted for t in self.tasks)

    @property
    def passed(self) -> bool:
        return round(self.percent, 6) >= self.pass_mark

    def to_sitting(self, started_at: float, ended_at: float) -> ExamSitting:
        """This report as the history stores it."""
        return ExamSitting(
            exam=self.exam, title=self.title, started_at=started_at, ended_at=ended_at,
            time_used=self.time_used, duration=self.duration, percent=self.percent,
            pass_mark=self.pass_mark, passed=self.passed,
            tasks=[{"scenario": t.scenario.id, "weight": t.weight, "score": t.score,
                    "max_score": t.max_score, "weighted": t.weighted, "attempt_id": t.attempt_id}
                   for t in self.tasks])

    def to_json(self) -> dict[str, Any]:
        return {"exam": self.exam, "title": self.title, "final": True,
                "percent": round(self.percent, 1), "pass_mark": self.pass_mark,
                "passed": self.passed, "score": self.score, "max_score": self.max_score,
                "time_used": round(self.time_used, 1), "duration": self.duration,
                "tasks": [t.to_json() for t in self.tasks]}


class ExamSession:
    """One attempt at an exam (see the module docstring).

    ``clock`` is the wall clock (tests inject their own); ``seed`` fixes the draw of tasks
    and of each task's values.
    """

    def __init__(self, catalog: Catalog, exam_id: str, *, driver: str = "local",
                 seed: int | None = None, clock: Callable[[], float] = time.time,
                 history: History | None = None) -> None:
        self.exam: Exam = catalog.get_exam(exam_id)
        self.driver = driver
        self.seed = secrets.randbelow(2**31) if seed is None else seed
        self.clock = clock
        self.history = history
        rng = random.Random(self.seed)
        self.tasks: list[ExamTask] = []
        for number, scenario in enumerate(self.exam.resolve(catalog, rng), 1):
            task_seed = rng.randrange(2**31)
            rendered, values = scenario.instantiate(task_seed)
            self.tasks.append(ExamTask(number, rendered, task_seed, values,
                                       cluster_name=f"cka-{secrets.token_hex(3)}"))
        self._weigh()
        self.status = "new"  # new -> running -> finished -> stopped
        self.started_at = 0.0
        self.deadline = 0.0
        self.ended_at = 0.0
        self.current = 0
        self.report: ExamReport | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0

    def _weigh(self) -> None:
        """Each task's weight: the exam file's, else its share of all points."""
        weights = self.exam.weights
        total = sum(t.max_score for t in self.tasks)
        for task in self.tasks:
            if weights is not None:
                task.weight = float(weights[task.scenario.id])
            else:
                task.weight = 100.0 * task.max_score / total if total else 0.0

    # -- the CLI's saved exam ----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """What ``load`` needs to carry on this exam in another process."""
        return {
            "exam": self.exam.id, "driver": self.driver, "seed": self.seed, "status": self.status,
            "started_at": self.started_at, "deadline": self.deadline, "ended_at": self.ended_at,
            "current": self.current,
            "tasks": [{"scenario": t.scenario.id, "seed": t.seed, "values": t.values,
                       "cluster_name": t.cluster_name,
                       "state": t.state, "status": t.status, "error": t.error, "hint": t.hint,
                       "flagged": t.flagged, "attempt_id": t.attempt_id,
                       "results": None if t.results is None else [dataclasses.asdict(r) for r in t.results]}
                      for t in self.tasks],
        }

    def save(self) -> None:
        """Write the exam to ``exam.json`` (atomically)."""
        path = exam_file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_state(), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, catalog: Catalog, *, clock: Callable[[], float] = time.time,
             history: History | None = None) -> ExamSession | None:
        """The exam the CLI saved, or None when there is none."""
        path = exam_file()
        try:
            data = json.loads(path.read_text())
            exam = catalog.get_exam(data["exam"])
            self = cls.__new__(cls)
            self.exam, self.driver, self.seed = exam, data["driver"], int(data["seed"])
            self.clock, self.history = clock, history
            self.tasks = []
            for number, saved in enumerate(data["tasks"], 1):
                # the values read from the task's cluster (node addresses) come from the file
                rendered, values = catalog.get(saved["scenario"]).instantiate(
                    saved["seed"], known=saved.get("values"))
                results = saved.get("results")
                self.tasks.append(ExamTask(
                    number, rendered, saved["seed"], values, saved["cluster_name"],
                    state=saved["state"], status=saved["status"], error=saved["error"],
                    hint=saved["hint"], flagged=saved["flagged"], attempt_id=saved.get("attempt_id"),
                    results=None if results is None else [CheckOutcome(**r) for r in results]))
        except FileNotFoundError:
            return None
        except SimError as exc:
            raise SessionError(f"the saved exam cannot be resumed: {exc.message}",
                               hint="`cka-sim stop` removes it (with its clusters)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SessionError(f"the exam file {path} is unreadable: {exc}",
                               hint="run `cka-sim doctor --clean` to remove it") from None
        self._weigh()
        self.status = data["status"]
        self.started_at, self.deadline = data["started_at"], data["deadline"]
        self.ended_at, self.current = data["ended_at"], data["current"]
        self.report = None
        if self.status == "finished":
            self.report = self._report(self.ended_at)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        return self

    @classmethod
    def require(cls, catalog: Catalog, **kwargs: Any) -> ExamSession:
        """The CLI's saved exam; SessionError with a hint when there is none."""
        exam = cls.load(catalog, **kwargs)
        if exam is None:
            raise SessionError("no exam is running",
                               hint="start one with `cka-sim start EXAM-ID` (exams are marked "
                                    "exam in `cka-sim list`)")
        return exam

    @classmethod
    def begin(cls, catalog: Catalog, exam_id: str, *, driver: str = "local",
              seed: int | None = None, progress: Progress = _no_progress,
              history: History | None = None) -> ExamSession:
        """Start an exam for the CLI: as ``start``, then saved for the next commands.

        A practice session or an exam still running is an error; a submitted one is
        removed first, clusters and all.
        """
        from simulator.session import Session

        exam = cls(catalog, exam_id, driver=driver, seed=seed, history=history)
        with session_lock():
            current = Session.load()
            if current is not None:
                if current.status != "submitted":
                    raise SessionError(
                        f"a session is already active: {current.scenario} ({current.status})",
                        hint="finish it with `cka-sim submit`, or end it with `cka-sim stop`")
                current._teardown()
            previous = cls.load(catalog)
            if previous is not None:
                if previous.status == "running":
                    raise SessionError(f"an exam is already running: {previous.exam.id}",
                                       hint="finish it with `cka-sim submit`, or end it with `cka-sim stop`")
                previous.discard()
            exam.save()  # claims the slot: a practice session cannot start meanwhile
        try:
            exam.start(progress)
        except BaseException:
            exam_file().unlink(missing_ok=True)
            raise
        exam.save()
        return exam

    def discard(self) -> None:
        """Remove every cluster and forget the saved exam (an ungraded exam is dropped)."""
        try:
            self.stop()
        finally:
            exam_file().unlink(missing_ok=True)

    def prepare(self, index: int, progress: Progress = _no_progress) -> ExamTask:
        """Make task ``index`` current and its cluster ready, provisioning it now if needed
        (blocking); a task that failed before is tried again."""
        if self.status != "running":
            raise SessionError("the exam is over", hint="see the report with `cka-sim exam status`")
        if self.expired():
            raise SessionError("time is up: in exam mode the clock never stops",
                               hint="`cka-sim submit` grades every task")
        task = self.select(index)
        self.retry(index)
        self.provision(index, progress)
        return task

    # -- clusters --------------------------------------------------------------------------

    def provision(self, index: int, progress: Progress = _no_progress) -> ExamTask:
        """Create task ``index``'s cluster and apply its setup (blocking).

        A task that is ready or being provisioned elsewhere is returned as is. A failure
        is kept on the task (``status == "failed"``, ``error``, ``hint``), not raised.
        """
        task = self.tasks[index]
        with self._lock:
            if task.status != PENDING or self.status in ("finished", "stopped"):
                return task
            task.status = PROVISIONING
            self._inflight += 1
        try:
            return self._provision(task, progress)
        finally:
            with self._lock:
                self._inflight -= 1
                self._idle.notify_all()

    def _provision(self, task: ExamTask, progress: Progress) -> ExamTask:
        drv = get_driver(self.driver)
        try:
            cluster = drv.create(task.scenario.cluster.to_spec(task.cluster_name), progress)
            run_setup(task.scenario, cluster, task.values, task.state, progress)
            if self.deadline:
                self._write_clock(cluster)
        except BaseException as exc:
            try:
                drv.delete(task.cluster_name)
            finally:
                task.status = FAILED
                if isinstance(exc, SimError):
                    task.error, task.hint = exc.message, exc.hint
                else:
                    task.error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, Exception):
                raise
            return task
        with self._lock:
            task.status = READY
            late = self.status == "stopped"
        if late:
            drv.delete(task.cluster_name)
        return task

    def wanted(self, lookahead: int = 1) -> int | None:
        """The task to provision next: the selected one, else one up to ``lookahead`` after it."""
        if self.status in ("finished", "stopped"):
            return None
        for index in range(self.current, min(len(self.tasks), self.current + lookahead + 1)):
            if self.tasks[index].status == PENDING:
                return index
        return None

    def provision_wanted(self, lookahead: int = 1) -> ExamTask | None:
        """Provision the task ``wanted`` names (blocking); None when nothing is wanted."""
        index = self.wanted(lookahead)
        return None if index is None else self.provision(index)

    def retry(self, index: int) -> None:
        """Make a failed task pending again so it is provisioned anew."""
        task = self.tasks[index]
        if task.status == FAILED:
            task.status, task.error, task.hint = PENDING, "", ""
            task.cluster_name = f"cka-{secrets.token_hex(3)}"

    def cluster(self, index: int) -> Cluster:
        """Task ``index``'s cluster; SessionError when it is not ready."""
        task = self.tasks[index]
        if task.status != READY:
            raise SessionError(f"task {task.number} is {task.status}",
                               hint="wait for its cluster, or pick another task")
        return get_driver(self.driver).attach(task.cluster_name)

    def _write_clock(self, cluster: Cluster) -> None:
        write_clock(cluster.nodes, self.exam.id, self.deadline)

    # -- the clock ---------------------------------------------------------------------------

    def start(self, progress: Progress = _no_progress) -> ExamSession:
        """Provision the first task, then start the global clock.

        Raises SessionError (with the task's error) when the first cluster cannot be made.
        """
        if self.status != "new":
            raise SessionError("this exam was already started", hint="start a new one")
        first = self.provision(0, progress)
        if first.status != READY:
            self.stop()
            raise SessionError(f"could not prepare task 1 ({first.scenario.id}): {first.error}",
                               hint=first.hint or "run `cka-sim doctor`")
        self.started_at = self.clock()
        self.deadline = self.started_at + float(self.exam.duration)
        self.status = "running"
        self._write_clock(self.cluster(0))
        progress(Step("ready", 1, 1, f"exam clock started: {len(self.tasks)} tasks"))
        return self

    def remaining(self, now: float | None = None) -> float:
        """Seconds left before the exam's deadline (negative after it)."""
        return self.deadline - (self.clock() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        return self.status == "running" and self.remaining(now) <= 0

    # -- the learner -------------------------------------------------------------------------

    def select(self, index: int) -> ExamTask:
        """Make task ``index`` the current one (its cluster is wanted first)."""
        if not 0 <= index < len(self.tasks):
            raise SessionError(f"there is no task {index + 1}", hint=f"tasks are 1-{len(self.tasks)}")
        self.current = index
        return self.tasks[index]

    def toggle_flag(self, index: int) -> bool:
        """Flag or unflag task ``index`` for review; returns the new flag."""
        task = self.tasks[index]
        task.flagged = not task.flagged
        return task.flagged

    def shell_argv(self, index: int, node: str | None = None) -> list[str]:
        """A login shell on task ``index``'s node ``node`` (default the first);
        refused after the deadline."""
        if self.status != "running":
            raise SessionError("the exam is over", hint="see the report")
        if self.expired():
            raise SessionError("time is up: in exam mode the clock never stops",
                               hint="finish the exam to see the report")
        cluster = self.cluster(index)
        return (cluster.node(node) if node else login_node(cluster)).shell_argv()

    def finish(self, now: float | None = None) -> ExamReport:
        """Grade every task once, record each in the history, return the report.

        A task whose cluster never came up scores 0 with the reason in each check's detail.
        Clusters stay up until ``stop``.
        """
        if self.report is not None:
            return self.report
        if self.status != "running":
            raise SessionError("the exam has not started", hint="start it first")
        ended = self.clock() if now is None else now
        with self._lock:
            self.status = "finished"
        self.ended_at = ended
        time_used = max(0.0, min(ended, self.deadline) - self.started_at)
        history = self.history or History()
        for task in self.tasks:
            if task.status == READY:
                task.results = grade(task.scenario, self.cluster(task.number - 1),
                                     task.values, task.state)
            else:
                why = task.error or "the exam ended before this task's cluster was ready"
                task.results = [CheckOutcome(c.name, False, 0, c.points, f"not graded: {why}", c.guard)
                                for c in task.scenario.checks]
            task.attempt_id = history.record(Attempt(
                scenario=task.scenario.id, title=task.scenario.title, domain=task.scenario.domain,
                exam=self.exam.id, seed=task.seed, vars=task.values, mode="exam",
                driver=self.driver, started_at=self.started_at, ended_at=ended,
                time_used=time_used, time_limit=float(self.exam.duration),
                overtime=max(0.0, ended - self.deadline), score=task.score,
                max_score=task.max_score, hints_used=0,
                checks=[CheckRecord(r.name, r.passed, r.points, r.max_points, r.detail)
                        for r in task.results],
            ))
        self.report = self._report(ended)
        history.record_exam(self.report.to_sitting(self.started_at, ended))
        return self.report

    def _report(self, ended: float) -> ExamReport:
        time_used = max(0.0, min(ended, self.deadline) - self.started_at)
        return ExamReport(self.exam.id, self.exam.title, self.tasks, self.exam.pass_mark,
                          time_used, float(self.exam.duration))

    def stop(self, wait: float = 300) -> None:
        """Remove every task's cluster. Idempotent. A cluster still being made is removed
        when it is done; this waits up to ``wait`` seconds for that."""
        with self._lock:
            self.status = "stopped"
            self._idle.wait_for(lambda: self._inflight == 0, timeout=wait)
            doomed = [t for t in self.tasks if t.status in (READY, FAILED)]
        drv = get_driver(self.driver)
        for task in doomed:
            drv.delete(task.cluster_name)
