"""History: attempts survive, concurrent writers do not lose each other's attempts."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from simulator.history import Attempt, CheckRecord, History


def _attempt(scenario: str, score: int, max_score: int = 10, **kw) -> Attempt:
    now = time.time()
    return Attempt(scenario=scenario, seed=7, mode="practice", driver="local",
                   started_at=now - 100, ended_at=now, time_used=100, time_limit=600,
                   score=score, max_score=max_score, vars={"ns": "billing"},
                   checks=[CheckRecord("a", score > 0, score, max_score, "found it")], **kw)


def test_recorded_attempt_reads_back_with_checks(tmp_path: Path) -> None:
    hist = History(tmp_path / "h.db")
    attempt_id = hist.record(_attempt("etcd-backup", 6))
    [got] = hist.attempts()
    assert got.id == attempt_id
    assert (got.scenario, got.score, got.max_score, got.vars) == ("etcd-backup", 6, 10, {"ns": "billing"})
    assert got.checks[0].detail == "found it"
    assert got.to_json()["percent"] == 60.0


def test_best_scores_and_attempt_counts(tmp_path: Path) -> None:
    hist = History(tmp_path / "h.db")
    for score in (3, 9, 5):
        hist.record(_attempt("etcd-backup", score))
    hist.record(_attempt("etcd-restore", 0))
    best = hist.best_scores()
    assert best["etcd-backup"] == (9, 10, 3)
    assert best["etcd-restore"] == (0, 10, 1)


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    History(tmp_path / "h.db")
    mode = sqlite3.connect(tmp_path / "h.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _writer(path: str, n: int) -> None:
    hist = History(Path(path))
    for i in range(n):
        hist.record(_attempt(f"s{i % 3}", i % 10))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    History(db)
    procs = [multiprocessing.Process(target=_writer, args=(str(db), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert len(History(db).attempts()) == 100


def test_killed_writer_leaves_only_whole_attempts(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    History(db)
    proc = multiprocessing.Process(target=_writer, args=(str(db), 100000))
    proc.start()
    time.sleep(1.0)
    proc.kill()
    proc.join()
    attempts = History(db).attempts()
    assert attempts, "the writer recorded nothing before it was killed"
    assert all(len(a.checks) == 1 for a in attempts)


def test_progress_per_domain_and_exam_results(tmp_path: Path) -> None:
    from conftest import run_cli

    from simulator.history import ExamSitting, domain_progress

    home = tmp_path / "home"
    home.mkdir()
    hist = History(home / "history.db")
    hist.record(_attempt("etcd-backup", 10, domain="cluster-architecture"))
    hist.record(_attempt("etcd-backup", 4, domain="cluster-architecture"))
    hist.record(_attempt("etcd-restore", 1, domain="cluster-architecture"))
    hist.record(_attempt("etcd-corrupted", 5, domain="troubleshooting", exam="cka-mock-etcd"))
    progress = [d.to_json() for d in domain_progress(hist.attempts())]
    assert progress == [
        {"domain": "cluster-architecture", "attempts": 3, "scenarios": 2, "best": 100.0, "average": 50.0},
        {"domain": "troubleshooting", "attempts": 1, "scenarios": 1, "best": 50.0, "average": 50.0}]

    sitting_id = hist.record_exam(ExamSitting(
        exam="cka-mock-etcd", title="Mock", started_at=100.0, ended_at=200.0, time_used=100.0,
        duration=7200.0, percent=70.5, pass_mark=66, passed=True,
        tasks=[{"scenario": "etcd-corrupted", "weight": 8, "score": 5, "max_score": 10,
                "weighted": 4.0, "attempt_id": 4}]))
    [back] = hist.exam_sittings()
    assert (back.id, back.percent, back.passed, back.tasks[0]["weight"]) == (sitting_id, 70.5, True, 8)

    env = {"CKA_SIM_HOME": str(home)}
    text = run_cli("history", env=env).stdout
    assert "By domain" in text and "Exams" in text and "PASSED" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("cluster-architecture"))
    assert line.split() == ["cluster-architecture", "3", "2", "100%", "50%"]
    import json

    assert json.loads(run_cli("history", "--domains", "--json", env=env).stdout) == progress
    assert json.loads(run_cli("history", "--exams", "--json", env=env).stdout)[0]["percent"] == 70.5
