"""Exam sessions on real embedded clusters: one clock, background provisioning, grading."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import SOLVE, Clock, clusters, needs_namespaces, run_cli

from simulator.catalog import Catalog
from simulator.errors import SessionError
from simulator.exam import ExamSession
from simulator.history import History

EXAM = """\
kind: exam
id: mini-exam
title: A two-task mock exam
duration: 10m
pass_mark: 50
tasks: [demo-backup, demo-backup-2]
"""

BROKEN_SETUP = """\
  - run: "echo the setup broke >&2; exit 3"
"""


@pytest.fixture()
def pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """Two copies of the skeleton backup task and a mock exam naming both."""
    scenarios = tmp_path / "pack"
    scenarios.mkdir()
    text = run_cli("scenario", "new", "demo-backup", "-o", "-").stdout
    (scenarios / "demo-backup.yaml").write_text(text)
    (scenarios / "demo-backup-2.yaml").write_text(text.replace("id: demo-backup", "id: demo-backup-2"))
    broken = text.replace("id: demo-backup", "id: demo-broken").replace("setup:\n", "setup:\n" + BROKEN_SETUP, 1)
    (scenarios / "demo-broken.yaml").write_text(broken)
    (scenarios / "exam.yaml").write_text(EXAM)
    (scenarios / "broken-exam.yaml").write_text(
        EXAM.replace("mini-exam", "broken-exam").replace("[demo-backup, demo-backup-2]", "[demo-broken, demo-backup]"))
    monkeypatch.setenv("CKA_SIM_HOME", str(tmp_path / "home"))
    catalog = Catalog.load([scenarios], builtin=False, strict=True)
    assert set(catalog.exams) == {"mini-exam", "broken-exam"}
    return catalog


def shell(exam: ExamSession, index: int, script: str) -> subprocess.CompletedProcess:
    return subprocess.run([*exam.shell_argv(index), "-c", script], capture_output=True, text=True, check=False,
                          timeout=60)


@needs_namespaces
@pytest.mark.slow
def test_a_whole_exam_with_background_provisioning(pack: Catalog) -> None:
    clock = Clock()
    exam = ExamSession(pack, "mini-exam", seed=11, clock=clock, history=History())
    assert [t.scenario.id for t in exam.tasks] == ["demo-backup", "demo-backup-2"]
    exam.start()
    assert [t.status for t in exam.tasks] == ["ready", "pending"]
    assert exam.remaining() == 600
    assert clusters() == {exam.tasks[0].cluster_name}

    # the learner works on task 1 while task 2's cluster is made
    assert exam.wanted() == 1
    name = exam.tasks[0].values["backup"]
    assert shell(exam, 0, "hostname").stdout.strip() == "controlplane"
    assert exam.provision_wanted().number == 2
    assert exam.wanted() is None
    assert clusters() == {exam.tasks[0].cluster_name, exam.tasks[1].cluster_name}
    assert shell(exam, 0, SOLVE.format(name=name)).returncode == 0

    # switching keeps task 1's work; flags are per task
    exam.select(1)
    assert exam.toggle_flag(1) is True
    exam.select(0)
    assert shell(exam, 0, f"test -s /opt/backup/{name}.db").returncode == 0
    prompt_env = shell(exam, 1, "cat /run/cka-sim/session.env").stdout
    assert f"CKA_SIM_DEADLINE={int(exam.deadline)}" in prompt_env

    clock.now += 200
    report = exam.finish()
    assert [(t.score, t.max_score) for t in report.tasks] == [(3, 3), (0, 3)]
    assert (report.score, report.max_score, report.passed) == (3, 6, True)
    assert report.time_used == 200
    with pytest.raises(SessionError, match="over"):
        exam.shell_argv(0)

    recorded = History().attempts()
    assert sorted((a.scenario, a.exam, a.mode, a.score) for a in recorded) == [
        ("demo-backup", "mini-exam", "exam", 3), ("demo-backup-2", "mini-exam", "exam", 0)]
    exam.stop()
    assert clusters() == set()


@needs_namespaces
@pytest.mark.slow
def test_the_deadline_ends_the_exam_and_unmade_tasks_score_zero(pack: Catalog) -> None:
    clock = Clock()
    exam = ExamSession(pack, "mini-exam", seed=3, clock=clock, history=History())
    exam.start()
    try:
        clock.now += 601
        assert exam.expired()
        with pytest.raises(SessionError, match="time is up"):
            exam.shell_argv(0)
        report = exam.finish()
        assert report.time_used == 600  # capped at the duration
        assert report.tasks[1].status == "pending"
        assert all("not graded" in r.detail for r in report.tasks[1].results)
        assert (report.score, report.passed) == (0, False)  # guards earn nothing
        assert exam.provision_wanted() is None  # nothing is made after the end
    finally:
        exam.stop()
    assert clusters() == set()


@needs_namespaces
@pytest.mark.slow
def test_a_first_task_that_cannot_be_set_up_is_an_error_with_no_leftovers(pack: Catalog) -> None:
    exam = ExamSession(pack, "broken-exam", seed=1)
    with pytest.raises(SessionError) as raised:
        exam.start()
    assert "task 1 (demo-broken)" in raised.value.message
    assert raised.value.hint
    assert clusters() == set()


def test_seeded_exams_draw_the_same_values(pack: Catalog) -> None:
    one = ExamSession(pack, "mini-exam", seed=9)
    two = ExamSession(pack, "mini-exam", seed=9)
    assert [t.values for t in one.tasks] == [t.values for t in two.tasks]
    assert one.wanted() == 0
    with pytest.raises(SessionError):
        one.select(5)
