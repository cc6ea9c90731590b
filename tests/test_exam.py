"""Exam sessions on real embedded clusters: one clock, background provisioning, grading."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import SOLVE, Clock, bare_etcd, clusters, needs_namespaces, run_cli

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
    text = bare_etcd(run_cli("scenario", "new", "demo-backup", "-o", "-").stdout)
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


# -- weights, the CKA's form and the CLI ------------------------------------------------------

WEIGHTED = Path(__file__).parent / "data" / "exam_cli" / "weighted-mini.yaml"


@pytest.fixture()
def weighted_pack(tmp_path: Path) -> Path:
    """Two copies of the skeleton backup task and ``tests/data/exam_cli/weighted-mini.yaml``
    (weights 40 and 60, pass mark 50)."""
    scenarios = tmp_path / "weighted"
    scenarios.mkdir()
    text = bare_etcd(run_cli("scenario", "new", "demo-backup", "-o", "-").stdout)
    (scenarios / "demo-backup.yaml").write_text(text)
    (scenarios / "demo-backup-2.yaml").write_text(text.replace("id: demo-backup", "id: demo-backup-2"))
    (scenarios / "weighted-mini.yaml").write_text(WEIGHTED.read_text())
    return scenarios


def graded(exam: ExamSession, earned: list[int]) -> None:
    """Give task i ``earned[i]`` points of its first check, as grading would record them."""
    from simulator.grading import CheckOutcome

    for task, points in zip(exam.tasks, earned, strict=True):
        task.results = [CheckOutcome(c.name, bool(points) if i == 0 else True, points if i == 0 else 0,
                                     c.points, "", c.guard) for i, c in enumerate(task.scenario.checks)]


def test_a_task_scores_its_weight_times_the_share_of_points_earned(weighted_pack: Path) -> None:
    catalog = Catalog.load([weighted_pack], builtin=False, strict=True)
    exam = ExamSession(catalog, "weighted-mini", seed=5)
    assert [t.weight for t in exam.tasks] == [40.0, 60.0]
    exam.started_at, exam.deadline = 0.0, 600.0
    graded(exam, [3, 0])  # half the points, but only 40 % of the exam
    report = exam._report(100.0)
    assert (report.score, report.max_score) == (3, 6)
    assert (report.percent, report.passed) == (40.0, False)
    graded(exam, [0, 3])
    assert (exam._report(100.0).percent, exam._report(100.0).passed) == (60.0, True)
    assert exam._report(100.0).to_json()["tasks"][1]["weighted"] == 60.0


def test_the_pass_mark_is_reached_at_exactly_its_percent(weighted_pack: Path) -> None:
    (weighted_pack / "weighted-mini.yaml").write_text(WEIGHTED.read_text().replace(
        "weight: 40", "weight: 66").replace("weight: 60", "weight: 34").replace("pass_mark: 50", "pass_mark: 66"))
    exam = ExamSession(Catalog.load([weighted_pack], builtin=False, strict=True), "weighted-mini", seed=5)
    exam.started_at, exam.deadline = 0.0, 600.0
    graded(exam, [3, 0])
    assert exam._report(1.0).passed
    graded(exam, [2, 3])  # 44 + 34 = 78
    assert round(exam._report(1.0).percent, 6) == 78.0
    graded(exam, [0, 3])
    assert not exam._report(1.0).passed


def test_without_weights_a_task_is_worth_its_share_of_all_points(pack: Catalog) -> None:
    exam = ExamSession(pack, "mini-exam", seed=1)
    assert [t.weight for t in exam.tasks] == [50.0, 50.0]


def test_exam_weights_are_checked_with_file_line_and_field(tmp_path: Path) -> None:
    from simulator.scenario import validate_file

    head = "kind: exam\nid: weighted\ntitle: W\nduration: 1h\ntasks:\n"
    cases = {
        "sum.yaml": ("  - {scenario: etcd-backup, weight: 30}\n  - {scenario: etcd-restore, weight: 60}\n",
                     [(5, "tasks", "the weights add up to 90; they must add up to 100")]),
        "mixed.yaml": ("  - {scenario: etcd-backup, weight: 30}\n  - etcd-restore\n",
                       [(7, "tasks[1]", "this task has no weight but tasks[0] has one")]),
        "range.yaml": ("  - {scenario: etcd-backup, weight: 0}\n  - {scenario: etcd-restore, wieght: 100}\n",
                       [(6, "tasks[0].weight", "expected a number >= 1, got 0"),
                        (7, "tasks[1].wieght", "unknown field 'wieght' (did you mean 'weight'?)")]),
    }
    for name, (body, expected) in cases.items():
        path = tmp_path / name
        path.write_text(head + body)
        problems = validate_file(path)
        assert [(p.line, p.field_path) for p in problems] == [(line, field) for line, field, _ in expected], name
        for problem, (_, _, message) in zip(problems, expected, strict=True):
            assert message in problem.message
    done = run_cli("scenario", "validate", str(tmp_path / "sum.yaml"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'sum.yaml'}:5:1: tasks: the weights add up to 90" in done.stderr


def test_the_exam_schema_describes_weights() -> None:
    import json

    import jsonschema
    import yaml

    schema = json.loads(run_cli("scenario", "schema", "--exam").stdout)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(yaml.safe_load(WEIGHTED.read_text()))
    assert validator.is_valid({**yaml.safe_load(WEIGHTED.read_text()), "tasks": ["demo-backup"]})
    assert not validator.is_valid({**yaml.safe_load(WEIGHTED.read_text()),
                                   "tasks": [{"scenario": "demo-backup", "weight": 0}]})
    items = schema["properties"]["tasks"]["anyOf"][0]["items"]["anyOf"]
    assert items[0]["type"] == "string"
    assert items[1]["required"] == ["scenario"]
    assert items[1]["properties"]["weight"] == {**items[1]["properties"]["weight"], "minimum": 1, "maximum": 100}
    assert "add up to 100" in items[1]["properties"]["weight"]["description"]


def test_the_built_in_mock_exam_and_sprint_follow_their_form() -> None:
    catalog = Catalog.load(builtin=True, strict=True)
    mock = catalog.get_exam("cka-mock-etcd")
    assert (mock.duration, mock.pass_mark) == (7200, 66)
    assert set(mock.task_ids) <= set(catalog.scenarios) and len(mock.task_ids) >= 16
    assert sum(mock.weights.values()) == 100
    assert all(4 <= w <= 8 for w in mock.weights.values())  # as the CKA weighs its tasks
    sprint = catalog.get_exam("etcd-dr-sprint")
    assert sprint.duration == 1800 and sum(sprint.weights.values()) == 100
    assert sum(catalog.get(t).time_limit for t in sprint.task_ids) <= sprint.duration
    assert "30-minute sprint" in sprint.description


@needs_namespaces
@pytest.mark.slow
def test_a_whole_exam_from_the_cli(weighted_pack: Path, tmp_path: Path) -> None:
    import json
    import re

    env = {"CKA_SIM_HOME": str(tmp_path / "cli-home"), "CKA_SIM_SCENARIOS": str(weighted_pack)}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = run_cli(*args, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        assert (done.returncode == 0) == ok, (args, done.stdout, done.stderr)
        return done

    listed = {r["id"]: r for r in json.loads(cli("list", "--json").stdout)}
    assert listed["weighted-mini"]["kind"] == "exam" and listed["weighted-mini"]["tasks"] == 2

    started = cli("start", "weighted-mini", "--seed", "4")
    assert "Task 1 of 2" in started.stdout and "weight 40%" in started.stdout
    first = re.search(r"/opt/backup/(\S+)\.db", started.stdout).group(1)
    assert cli("shell", "-c", "hostname").stdout.strip() == "controlplane"
    assert cli("shell", "-c", SOLVE.format(name=first)).returncode == 0

    # no checks, hints or practice sessions while the exam runs
    assert "checking is off" in cli("check", ok=False).stderr
    assert "hints are off" in cli("hint", ok=False).stderr
    refused = cli("start", "demo-backup", ok=False)
    assert "an exam is active" in refused.stderr and "hint:" in refused.stderr

    # switch tasks: the next task's cluster is made when it is first opened
    second = cli("exam", "next")
    assert "Task 2 of 2" in second.stdout and "weight 60%" in second.stdout
    assert cli("shell", "-c", "ls /opt/backup").stdout.count(".db") == 0  # its own cluster
    assert "flagged for review" in cli("exam", "flag").stdout
    assert "Task 1 of 2" in cli("exam", "prev").stdout
    assert cli("shell", "-c", f"test -s /opt/backup/{first}.db").returncode == 0  # work kept
    assert "Task 2 of 2" in cli("exam", "task", "2").stdout
    assert "there is no task 3" in cli("exam", "task", "3", ok=False).stderr

    status = json.loads(cli("exam", "status", "--json").stdout)
    assert status["current"] == 2 and 0 < status["remaining"] <= 600
    assert [(t["weight"], t["status"], t["flagged"]) for t in status["tasks"]] == [
        (40, "ready", False), (60, "ready", True)]
    text = cli("status").stdout
    assert "left of 10m" in text and "flagged: 2" in text

    # grading: task 1 earns all its points, task 2 none: 40 % of the exam, under the 50 % mark
    # (half of all points, which would have passed an exam counted in points)
    report = cli("submit")
    assert "40.0% of 100" in report.stdout and "NOT PASSED" in report.stdout
    assert "3/3 points: 40.0 of its 40%" in report.stdout
    assert "already graded" in cli("submit", ok=False).stderr
    assert "the exam is over" in cli("shell", "-c", "true", ok=False).stderr

    [sitting] = json.loads(cli("history", "--exams", "--json").stdout)
    assert (sitting["exam"], sitting["percent"], sitting["passed"]) == ("weighted-mini", 40.0, False)
    assert [t["weight"] for t in sitting["tasks"]] == [40, 60]
    attempts = json.loads(cli("history", "--json").stdout)
    assert sorted((a["scenario"], a["exam"], a["score"]) for a in attempts) == [
        ("demo-backup", "weighted-mini", 3), ("demo-backup-2", "weighted-mini", 0)]
    assert "NOT PASSED" in cli("history").stdout
    listed = {r["id"]: r for r in json.loads(cli("list", "--json").stdout)}
    assert listed["weighted-mini"]["best_score"] == {"percent": 40.0, "passed": False}

    assert "stopped the exam weighted-mini" in cli("stop").stdout
    gone = cli("exam", "status", ok=False)
    assert "no exam is running" in gone.stderr and "hint:" in gone.stderr
    assert not list((tmp_path / "cli-home" / "clusters").iterdir())


@needs_namespaces
@pytest.mark.slow
def test_after_the_deadline_the_cli_refuses_work_and_submit_grades(weighted_pack: Path, tmp_path: Path) -> None:
    import json

    home = tmp_path / "late-home"
    env = {"CKA_SIM_HOME": str(home), "CKA_SIM_SCENARIOS": str(weighted_pack)}
    assert run_cli("start", "weighted-mini", env=env).returncode == 0
    try:
        saved = json.loads((home / "exam.json").read_text())
        saved["started_at"] -= 700  # the 10 minutes ran out a while ago
        saved["deadline"] -= 700
        (home / "exam.json").write_text(json.dumps(saved))
        for args in (("shell", "-c", "true"), ("exam", "next")):
            done = run_cli(*args, env=env)
            assert done.returncode == 1 and "time is up" in done.stderr and "hint:" in done.stderr
            assert "Traceback" not in done.stderr
        report = json.loads(run_cli("submit", "--json", env=env).stdout)
        assert report["time_used"] == 600 and report["percent"] == 0 and not report["passed"]
        assert "not graded" in report["tasks"][1]["checks"][0]["detail"]
    finally:
        assert run_cli("stop", env=env).returncode == 0
    assert not list((home / "clusters").iterdir())
