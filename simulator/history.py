"""SQLite store of attempts and their per-check results.

The database runs in WAL mode so the CLI and the TUI can read and write at the same time;
every attempt is written in one transaction when it is submitted, so a crash at any moment
leaves either the whole attempt or none of it.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simulator import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario    TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    domain      TEXT NOT NULL DEFAULT '',
    exam        TEXT,
    seed        INTEGER NOT NULL,
    vars        TEXT NOT NULL DEFAULT '{}',
    mode        TEXT NOT NULL,
    driver      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL NOT NULL,
    time_used   REAL NOT NULL,
    time_limit  REAL NOT NULL,
    overtime    REAL NOT NULL DEFAULT 0,
    score       INTEGER NOT NULL,
    max_score   INTEGER NOT NULL,
    hints_used  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS check_results (
    attempt_id  INTEGER NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    passed      INTEGER NOT NULL,
    points      INTEGER NOT NULL,
    max_points  INTEGER NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (attempt_id, position)
);
CREATE INDEX IF NOT EXISTS attempts_by_scenario ON attempts(scenario);
CREATE TABLE IF NOT EXISTS exam_sittings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    exam        TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    started_at  REAL NOT NULL,
    ended_at    REAL NOT NULL,
    time_used   REAL NOT NULL,
    duration    REAL NOT NULL,
    percent     REAL NOT NULL,
    pass_mark   INTEGER NOT NULL,
    passed      INTEGER NOT NULL,
    tasks       TEXT NOT NULL DEFAULT '[]'
);
"""


@dataclasses.dataclass
class CheckRecord:
    name: str
    passed: bool
    points: int
    max_points: int
    detail: str = ""


@dataclasses.dataclass
class Attempt:
    scenario: str
    seed: int
    mode: str
    driver: str
    started_at: float
    ended_at: float
    time_used: float
    time_limit: float
    score: int
    max_score: int
    title: str = ""
    domain: str = ""
    exam: str | None = None
    vars: dict[str, Any] = dataclasses.field(default_factory=dict)
    overtime: float = 0.0
    hints_used: int = 0
    checks: list[CheckRecord] = dataclasses.field(default_factory=list)
    id: int | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["percent"] = round(self.percent, 1)
        return data


@dataclasses.dataclass
class ExamSitting:
    """A finished exam: the weighted percent, the verdict and each task's share.

    ``tasks`` holds per task: scenario, weight, score, max_score, weighted (percent of the
    exam earned) and attempt_id (the task's row in the attempts).
    """

    exam: str
    started_at: float
    ended_at: float
    time_used: float
    duration: float
    percent: float
    pass_mark: int
    passed: bool
    title: str = ""
    tasks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["percent"] = round(self.percent, 1)
        return data


@dataclasses.dataclass
class DomainProgress:
    """One curriculum domain's attempts: how many, at how many scenarios, best and mean percent."""

    domain: str
    attempts: int
    scenarios: int
    best: float
    average: float

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "attempts": self.attempts, "scenarios": self.scenarios,
                "best": round(self.best, 1), "average": round(self.average, 1)}


def domain_progress(attempts: list[Attempt]) -> list[DomainProgress]:
    """Per curriculum domain (sorted by name): attempts, distinct scenarios, the best and the
    mean percent. Practice and exam attempts both count; an attempt without a domain is '?'."""
    by: dict[str, list[Attempt]] = {}
    for a in attempts:
        by.setdefault(a.domain or "?", []).append(a)
    return [DomainProgress(d, len(v), len({a.scenario for a in v}), max(a.percent for a in v),
                           sum(a.percent for a in v) / len(v))
            for d, v in sorted(by.items())]


class History:
    """Attempts recorded on this machine (``history.db`` in the user data dir)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.data_dir() / "history.db"
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            with db:
                yield db
        finally:
            db.close()

    def record(self, attempt: Attempt) -> int:
        """Store a finished attempt atomically and return its id."""
        with self._connect() as db:
            cur = db.execute(
                """INSERT INTO attempts (scenario, title, domain, exam, seed, vars, mode, driver,
                       started_at, ended_at, time_used, time_limit, overtime, score, max_score,
                       hints_used)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (attempt.scenario, attempt.title, attempt.domain, attempt.exam, attempt.seed,
                 json.dumps(attempt.vars, sort_keys=True), attempt.mode, attempt.driver,
                 attempt.started_at, attempt.ended_at, attempt.time_used, attempt.time_limit,
                 attempt.overtime, attempt.score, attempt.max_score, attempt.hints_used),
            )
            attempt.id = int(cur.lastrowid or 0)
            db.executemany(
                """INSERT INTO check_results (attempt_id, position, name, passed, points,
                       max_points, detail) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [(attempt.id, i, c.name, int(c.passed), c.points, c.max_points, c.detail)
                 for i, c in enumerate(attempt.checks)],
            )
        return attempt.id

    def attempts(self, scenario: str | None = None, limit: int | None = None) -> list[Attempt]:
        """Attempts, newest first, optionally of one scenario, with their check results."""
        sql = "SELECT * FROM attempts"
        args: list[Any] = []
        if scenario:
            sql += " WHERE scenario = ?"
            args.append(scenario)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
            checks: dict[int, list[CheckRecord]] = {}
            ids = [r["id"] for r in rows]
            if ids:
                marks = ",".join("?" * len(ids))
                for c in db.execute(
                    f"SELECT * FROM check_results WHERE attempt_id IN ({marks}) "
                    "ORDER BY attempt_id, position", ids,
                ):
                    checks.setdefault(c["attempt_id"], []).append(CheckRecord(
                        c["name"], bool(c["passed"]), c["points"], c["max_points"], c["detail"]))
        return [
            Attempt(
                id=r["id"], scenario=r["scenario"], title=r["title"], domain=r["domain"],
                exam=r["exam"], seed=r["seed"], vars=json.loads(r["vars"]), mode=r["mode"],
                driver=r["driver"], started_at=r["started_at"], ended_at=r["ended_at"],
                time_used=r["time_used"], time_limit=r["time_limit"], overtime=r["overtime"],
                score=r["score"], max_score=r["max_score"], hints_used=r["hints_used"],
                checks=checks.get(r["id"], []),
            )
            for r in rows
        ]

    def record_exam(self, sitting: ExamSitting) -> int:
        """Store a finished exam's result and return its id."""
        with self._connect() as db:
            cur = db.execute(
                """INSERT INTO exam_sittings (exam, title, started_at, ended_at, time_used, duration,
                       percent, pass_mark, passed, tasks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (sitting.exam, sitting.title, sitting.started_at, sitting.ended_at, sitting.time_used,
                 sitting.duration, sitting.percent, sitting.pass_mark, int(sitting.passed),
                 json.dumps(sitting.tasks)))
            sitting.id = int(cur.lastrowid or 0)
        return sitting.id

    def exam_sittings(self, exam: str | None = None) -> list[ExamSitting]:
        """Finished exams, newest first, optionally of one exam."""
        sql, args = "SELECT * FROM exam_sittings", []
        if exam:
            sql, args = sql + " WHERE exam = ?", [exam]
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY started_at DESC, id DESC", args).fetchall()
        return [ExamSitting(id=r["id"], exam=r["exam"], title=r["title"], started_at=r["started_at"],
                            ended_at=r["ended_at"], time_used=r["time_used"], duration=r["duration"],
                            percent=r["percent"], pass_mark=r["pass_mark"], passed=bool(r["passed"]),
                            tasks=json.loads(r["tasks"]))
                for r in rows]

    def best_scores(self) -> dict[str, tuple[int, int, int]]:
        """Per scenario: (best score, its max score, number of attempts)."""
        with self._connect() as db:
            rows = db.execute(
                """SELECT scenario, MAX(CAST(score AS REAL) / MAX(max_score, 1)) AS best,
                          COUNT(*) AS n FROM attempts GROUP BY scenario"""
            ).fetchall()
            out = {}
            for r in rows:
                top = db.execute(
                    """SELECT score, max_score FROM attempts WHERE scenario = ?
                       ORDER BY CAST(score AS REAL) / MAX(max_score, 1) DESC, time_used ASC
                       LIMIT 1""", (r["scenario"],)).fetchone()
                out[r["scenario"]] = (top["score"], top["max_score"], r["n"])
        return out
