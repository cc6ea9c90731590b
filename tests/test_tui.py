"""The Textual app: every screen and key through Pilot, SVG snapshots, and one real terminal.

Clusters are real (embedded driver); snapshots use a frozen clock and hand-made sessions so
they never depend on the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest
from conftest import REPO, SOLVE, Clock, bare_etcd, clusters, needs_namespaces, run_cli

from simulator.catalog import Catalog
from simulator.grading import CheckOutcome, Report
from simulator.history import Attempt, CheckRecord, History
from simulator.session import Session
from simulator.tui.app import CkaSimApp
from simulator.tui.prefs import Prefs
from simulator.tui.screens.catalog import CatalogScreen
from simulator.tui.screens.dialogs import ConfirmDialog, QuitDialog
from simulator.tui.screens.exam import ExamReportScreen, ExamScreen
from simulator.tui.screens.history import HistoryScreen, best_times, domain_averages
from simulator.tui.screens.provisioning import ProvisioningScreen
from simulator.tui.screens.results import ResultsScreen
from simulator.tui.screens.task import TaskScreen
from simulator.tui.widgets.countdown import Countdown

FROZEN = Clock().now  # 2026-09-21 UTC

EXAM = """\
kind: exam
id: mini-exam
title: A two-task mock exam
description: Two etcd backups under one clock.
duration: 10m
pass_mark: 50
tasks: [demo-backup, demo-backup-2]
"""


def skeleton() -> str:
    return bare_etcd(run_cli("scenario", "new", "demo-backup", "-o", "-").stdout)


@pytest.fixture(scope="module")
def skeleton_text() -> str:
    return skeleton()


@pytest.fixture()
def pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skeleton_text: str) -> Path:
    """A scenario pack (a backup task, a copy, one whose setup fails, a mock exam) and a
    fresh user home."""
    scenarios = tmp_path / "pack"
    scenarios.mkdir()
    (scenarios / "demo-backup.yaml").write_text(skeleton_text)
    (scenarios / "demo-backup-2.yaml").write_text(
        skeleton_text.replace("id: demo-backup", "id: demo-backup-2")
        .replace("title: Back up etcd to a snapshot file", "title: Back up etcd again"))
    (scenarios / "demo-broken.yaml").write_text(
        skeleton_text.replace("id: demo-backup", "id: demo-broken")
        .replace("title: Back up etcd to a snapshot file", "title: A task whose setup fails")
        .replace("setup:\n", 'setup:\n  - run: "echo no disk left >&2; exit 3"\n', 1))
    (scenarios / "exam.yaml").write_text(EXAM)
    (scenarios / "exam-broken.yaml").write_text(
        EXAM.replace("mini-exam", "broken-exam").replace("A two-task mock exam", "An exam with a broken task")
        .replace("[demo-backup, demo-backup-2]", "[demo-backup, demo-broken]"))
    monkeypatch.setenv("CKA_SIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CKA_SIM_SCENARIOS", str(scenarios))
    yield scenarios
    session = Session.load()
    if session is not None:
        session.stop()


def make_app(clock=time.time, standby: bool | None = None) -> CkaSimApp:
    catalog = Catalog.load(builtin=False, strict=True)
    return CkaSimApp(catalog=catalog, history=History(), clock=clock, probe_docker=False,
                     standby=standby)


async def wait_for(pilot, predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {predicate}")
        await pilot.pause(0.1)
    await pilot.pause()
    await pilot.pause()


def text_of(widget) -> str:
    from textual.widgets import Digits

    if isinstance(widget, Digits):
        return widget.value
    return str(widget.render())


def status_line(app: CkaSimApp) -> str:
    return str(app.screen.query_one("#catalog-status").render())


def toasts(app: CkaSimApp) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


def catalog_titles(app: CkaSimApp) -> list[str]:
    table = app.screen.query_one("#catalog-table")
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def node_run(session: Session, script: str) -> subprocess.CompletedProcess:
    argv = session.cluster().nodes[0].shell_argv()
    return subprocess.run([*argv, "-c", script], capture_output=True, text=True, timeout=60,
                          check=False)


# -- the catalog ------------------------------------------------------------------------------


async def test_catalog_lists_filters_previews_and_remembers_choices(pack: Path) -> None:
    History().record(Attempt(scenario="demo-backup", seed=1, mode="practice", driver="local",
                             started_at=FROZEN, ended_at=FROZEN + 60, time_used=60, time_limit=480,
                             score=4, max_score=4, domain="troubleshooting"))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        assert isinstance(screen, CatalogScreen)
        assert catalog_titles(app) == ["Back up etcd to a snapshot file", "Back up etcd again",
                                       "A task whose setup fails", "An exam with a broken task",
                                       "A two-task mock exam"]
        table = screen.query_one("#catalog-table")
        row = [str(c) for c in table.get_row_at(0)]
        assert row == ["Back up etcd to a snapshot file", "Troubleshoot", "easy", "8m", "100%", "1"]
        assert app.drivers == ["local"]  # no Docker engine answers here

        md = screen.query_one("#preview-md")
        assert "Back up etcd to a snapshot file" in md.source and "<backup>" in md.source

        await pilot.press(*"again")  # typing goes to the filter
        assert screen.query_one("#filter").value == "again"
        assert catalog_titles(app) == ["Back up etcd again"]
        await pilot.press("escape")
        assert len(catalog_titles(app)) == 5 and screen.focused is table

        await pilot.press(*"mock")
        assert "Exam" in screen.query_one("#preview-md").source
        assert "pass mark 50%" in screen.query_one("#preview-md").source
        await pilot.press("escape")

        status = screen.query_one("#catalog-status")
        assert "local" in text_of(status) and "practice" in text_of(status)
        await pilot.press("f3")
        assert "exam" in text_of(status)
        await pilot.press("f2")  # only one driver is available: it stays
        assert Prefs.load().mode == "exam" and Prefs.load().driver == "local"
        await pilot.press(*"zzz")
        assert catalog_titles(app) == []
        assert "Nothing matches" in screen.query_one("#preview-md").source
        await pilot.press("enter")  # nothing selected: nothing happens
        assert isinstance(app.screen, CatalogScreen)


def test_a_tasks_preview_gives_its_step_on_the_difficulty_path_and_its_prerequisites() -> None:
    from simulator.tui import catalog_index

    catalog = Catalog.load(builtin=True, strict=True)
    previews = {r["id"]: r["preview"] for r in catalog_index.rows(catalog)}
    steps = {sc.id: n for n, sc in enumerate(catalog.path(), 1)}
    total = len(steps)
    assert f"Path: step {steps['etcd-backup']} of {total}  \n" in previews["etcd-backup"]
    assert (f"Path: step {steps['etcd-restore']} of {total} · after `etcd-backup`"
            in previews["etcd-restore"])
    assert "`etcd-backup` · 5%" in previews["cka-mock-etcd"]


def test_the_catalog_index_matches_only_the_files_it_was_made_from(pack: Path) -> None:
    from simulator.tui import catalog_index

    found = catalog_index.fingerprint([])
    assert catalog_index.load(found) is None  # nothing indexed yet
    catalog = Catalog.load()
    catalog_index.save(found, catalog)
    rows, problems = catalog_index.load(catalog_index.fingerprint([]))
    assert rows == catalog_index.rows(catalog) and problems == 0
    assert "Back up etcd again" in [r["title"] for r in rows]
    edited = pack / "demo-backup-2.yaml"
    edited.write_text(edited.read_text().replace("Back up etcd again", "Back up etcd twice"))
    assert catalog_index.load(catalog_index.fingerprint([])) is None
    catalog_index.save(catalog_index.fingerprint([]), Catalog.load())
    assert catalog_index.load(catalog_index.fingerprint([])) is not None
    (pack / "new.yaml").write_text((pack / "demo-backup.yaml").read_text().replace("id: demo-backup", "id: demo-new"))
    assert catalog_index.load(catalog_index.fingerprint([])) is None
    assert catalog_index.load(catalog_index.fingerprint([pack / "missing"])) is None


async def test_the_catalog_paints_from_the_index_then_loads_for_real(pack: Path, monkeypatch) -> None:
    """`cka-sim` paints the indexed rows first; the scenarios are loaded right after."""
    from simulator.tui import catalog_index

    catalog = Catalog.load()
    rows = catalog_index.rows(catalog)
    rows[0] = {**rows[0], "title": "As indexed"}
    seen_at_load: list[list[str]] = []
    real_load = Catalog.load.__func__

    def load(cls, *args, **kwargs):
        seen_at_load.append(catalog_titles(app))
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Catalog, "load", classmethod(load))
    app = CkaSimApp(history=History(), probe_docker=False, first_rows=(rows, 0))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.catalog_loaded)
        assert seen_at_load == [["As indexed", *[r["title"] for r in rows[1:]]]]
        real = catalog_index.rows(catalog)
        assert catalog_titles(app) == [r["title"] for r in real]
        assert app.screen.query_one("#preview-md").source == real[0]["preview"]


def test_a_catalog_that_cannot_load_is_a_message_and_a_hint_not_a_traceback(tmp_path: Path) -> None:
    done = run_cli("--scenarios", str(tmp_path / "missing"))
    assert done.returncode == 1
    assert "error: scenario directory" in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


async def test_history_screen_shows_attempts_domains_chart_and_best_times(pack: Path) -> None:
    history = History()
    for i, (scenario, score) in enumerate([("demo-backup", 2), ("demo-backup", 4), ("demo-backup-2", 3)]):
        history.record(Attempt(scenario=scenario, seed=i, mode="practice", driver="local",
                               started_at=FROZEN + i * 3600, ended_at=FROZEN + i * 3600 + 200,
                               time_used=200 + i, time_limit=480, score=score, max_score=4,
                               domain="troubleshooting",
                               checks=[CheckRecord("backup", score == 4, score, 4, "found")]))
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        assert screen.query_one("#history-attempts").row_count == 3
        assert [str(c) for c in screen.query_one("#history-domains").get_row_at(0)] == \
            ["troubleshooting", "3", "75%"]
        assert [str(c) for c in screen.query_one("#history-best").get_row_at(0)] == \
            ["demo-backup", "3m21s", "100%"]
        assert list(screen.query_one("#history-spark").data) == [50.0, 100.0, 75.0]
        assert [r.points for r in screen.query_one("#history-checks").results] == [3]  # newest
        await pilot.press("down")
        assert [r.points for r in screen.query_one("#history-checks").results] == [4]
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)


def test_stats_helpers() -> None:
    def attempt(scenario: str, domain: str, score: int, used: float) -> Attempt:
        return Attempt(scenario=scenario, seed=0, mode="practice", driver="local", started_at=0,
                       ended_at=used, time_used=used, time_limit=600, score=score, max_score=4,
                       domain=domain)

    rows = [attempt("a", "storage", 4, 300), attempt("a", "storage", 4, 200),
            attempt("b", "troubleshooting", 1, 100)]
    assert domain_averages(rows) == [("storage", 2, 100.0), ("troubleshooting", 1, 25.0)]
    assert best_times(rows) == [("a", 200, 100.0), ("b", None, 25.0)]


# -- a practice attempt on a real cluster ---------------------------------------------------------


@needs_namespaces
@pytest.mark.slow
async def test_the_cluster_made_while_the_catalog_shows_serves_the_next_task(pack: Path) -> None:
    """With the standby on, a cluster of the default shape (kubeadm's control plane) is
    made while the learner reads the catalog; Enter on a task of that shape runs only its
    setup there; a task of another shape makes its own; quitting removes the spare."""
    full = run_cli("scenario", "new", "demo-full", "-o", "-").stdout  # the default shape
    (pack / "demo-full.yaml").write_text(full.replace("title: Back up etcd to a snapshot file",
                                                      "title: Back up a full cluster's etcd"))
    app = make_app(standby=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.standby.ready, timeout=120)
        spare = clusters()
        assert len(spare) == 1 and "a cluster is ready" in status_line(app)

        await pilot.press(*"demo-backup", "enter")  # etcd alone: another shape
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        other = app.screen.session
        assert other.cluster_name not in spare and app.standby.ready
        await pilot.press("q", "s")  # stop the cluster
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))

        await pilot.press("escape", *"demo-full", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        session = app.screen.session
        assert {session.cluster_name} == spare  # the task runs on the cluster made in advance
        assert "Back up a full cluster" in app.screen.query_one("#task-md").source
        assert node_run(session, "kubectl get --raw /readyz").stdout.strip() == "ok"
        # made in advance, it holds nothing a fresh cluster would not: kubectl's caches
        # were filled with a dry run that stored nothing
        made = node_run(session, "kubectl get configmaps,deployments -n default -o name")
        assert made.returncode == 0 and made.stdout.split() == ["configmap/kube-root-ca.crt"]
        name = session.values["backup"]
        assert node_run(session, SOLVE.format(name=name)).returncode == 0
        await pilot.press("c")
        await wait_for(pilot, lambda: not app.screen.busy)
        assert [r.passed for r in app.screen.query_one("#check-table").results] == [True, True]
        assert not app.standby.ready
        await pilot.press("q", "s")  # stop the cluster
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
        await wait_for(pilot, lambda: app.standby.ready, timeout=120)  # the next one
        assert len(clusters()) == 1 and clusters() != spare
        assert "a cluster is ready" in status_line(app)
    assert clusters() == set()  # quitting removed the spare




@needs_namespaces
@pytest.mark.slow
async def test_practice_attempt_hint_check_submit_and_results(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"demo-backup", "enter")
        assert isinstance(app.screen, ProvisioningScreen)
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        screen = app.screen
        session = screen.session
        assert session.status == "running" and session.mode == "practice"
        assert "Back up etcd" in screen.query_one("#task-md").source
        assert 470 < session.remaining() <= 480
        shown = {b.binding.key for b in screen.active_bindings.values() if b.binding.show and b.enabled}
        assert {"s", "c", "h", "f", "r", "q"} <= shown

        await pilot.press("h")
        assert "etcdctl snapshot save" in screen.query_one("#hints-md").source
        assert Session.load().hints_shown == 1
        await pilot.press("h")  # no more hints: says so, counts nothing more
        assert "last hint" in toasts(app) and Session.load().hints_shown == 1

        await pilot.press("c")
        await wait_for(pilot, lambda: not screen.busy)
        checks = screen.query_one("#check-table")
        assert [r.passed for r in checks.results] == [False, True]
        assert "no file at" in checks.results[0].detail

        name = session.values["backup"]
        assert node_run(session, SOLVE.format(name=name)).returncode == 0
        await pilot.press("c")
        await wait_for(pilot, lambda: not screen.busy)
        assert [r.passed for r in checks.results] == [True, True]

        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        results = app.screen
        assert "Score 3/3 (100%)" in text_of(results.query_one("#results-score"))
        assert "Why it broke" in results.query_one("#results-explanation").source
        solution = results.query_one("#solution")
        assert solution.collapsed
        await pilot.press("o")
        assert not solution.collapsed
        [attempt] = History().attempts()
        assert (attempt.score, attempt.hints_used, attempt.vars) == (3, 1, {"backup": name})

        await pilot.press("s")  # a look at the graded cluster (no terminal to hand over here)
        assert "cka-sim shell" in toasts(app)

        await pilot.press("r")  # retry: same values on a fresh cluster
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        retry = app.screen.session
        assert retry.seed == session.seed and retry.cluster_name != session.cluster_name
        assert clusters() == {retry.cluster_name}
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert "Score 0/3" in text_of(app.screen.query_one("#results-score"))
        await pilot.press("n")  # new values
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        assert app.screen.session.cluster_name not in (session.cluster_name, retry.cluster_name)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))

        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)
        row = [str(c) for c in app.screen.query_one("#catalog-table").get_row_at(0)]
        assert row[-2:] == ["100%", "3"]
        # the graded cluster stays up until the next start, which replaces it
        assert clusters() == {Session.load().cluster_name}


@needs_namespaces
@pytest.mark.slow
async def test_reset_quit_keep_resume_and_stop(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"demo-backup", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        first = app.screen.session
        assert node_run(first, "touch /root/was-here").returncode == 0

        await pilot.press("r")  # reset: a fresh cluster, same seed
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.session is not first)
        second = app.screen.session
        assert second.seed == first.seed and second.cluster_name != first.cluster_name
        assert clusters() == {second.cluster_name}
        assert node_run(second, "test -e /root/was-here").returncode == 1

        await pilot.press("q")
        assert isinstance(app.screen, QuitDialog)
        await pilot.press("escape")  # stay
        assert isinstance(app.screen, TaskScreen)
        await pilot.press("q", "k")  # keep the cluster
        assert isinstance(app.screen, CatalogScreen)
        assert "ACTIVE" in text_of(app.screen.query_one("#catalog-status"))
        await pilot.press("enter")  # one session at a time
        assert "already active" in toasts(app) and isinstance(app.screen, CatalogScreen)

        await pilot.press("f5")
        assert isinstance(app.screen, TaskScreen)
        assert app.screen.session.cluster_name == second.cluster_name
        await pilot.press("q", "s")  # stop the cluster
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert Session.load() is None and clusters() == set()
        assert "ACTIVE" not in text_of(app.screen.query_one("#catalog-status"))


@needs_namespaces
@pytest.mark.slow
async def test_exam_mode_task_hides_check_and_hint_and_grades_at_the_deadline(pack: Path) -> None:
    clock = Clock(time.time())
    app = make_app(clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("f3", *"demo-backup", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        screen = app.screen
        assert screen.session.mode == "exam"
        shown = {b.binding.key for b in screen.active_bindings.values() if b.binding.show}
        assert not {"c", "h", "r"} & shown and "f" in shown
        await pilot.press("c", "h", "r")
        assert not screen.busy and screen.query_one("#hints-md").has_class("-hidden")
        assert app.screen is screen

        countdown = screen.query_one(Countdown)
        clock.now = screen.session.deadline - 0.2 * screen.session.time_limit
        countdown.tick()
        assert countdown.has_class("-amber")
        clock.now = screen.session.deadline + 1  # the clock never stops: grading starts
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert "Score 0/3" in text_of(app.screen.query_one("#results-score"))
        [attempt] = History().attempts()
        assert attempt.mode == "exam" and attempt.score == 0


async def test_shell_key_without_a_suspendable_terminal_says_what_to_do(pack: Path) -> None:
    """Under a terminal that cannot be handed over (here the headless driver), `s` explains
    instead of hanging, and the clock keeps running."""
    clock = Clock()
    app = make_app(clock)
    session = fake_session(clock)
    async with app.run_test(size=(120, 36)) as pilot:
        app.push_screen(TaskScreen(session))
        await pilot.pause()
        screen = app.screen
        from simulator.tui.terminal import run_shell

        error = run_shell(app, ["true"], "banner")
        assert error is not None and "cka-sim shell" in error
        clock.now += 65
        await pilot.pause(1.2)
        assert text_of(screen.query_one("#countdown-digits")) == "5:55"


# -- provisioning that fails or is cancelled ---------------------------------------------------


@needs_namespaces
@pytest.mark.slow
async def test_a_failing_setup_leaves_a_usable_screen_and_no_cluster(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"fails", "enter")
        screen = app.screen
        assert isinstance(screen, ProvisioningScreen)
        await wait_for(pilot, lambda: screen.state == "failed")
        error = text_of(screen.query_one("#prov-error"))
        assert "Could not start" in error and "hint:" in error and "no disk left" in error
        assert clusters() == set() and Session.load() is None
        await pilot.press("r")  # retry fails the same way
        await wait_for(pilot, lambda: screen.state == "failed")
        await pilot.press("escape")
        assert isinstance(app.screen, CatalogScreen)
        await pilot.press("escape", "enter")  # the catalog still works
        await wait_for(pilot, lambda: isinstance(app.screen, TaskScreen))
        assert clusters() == {app.screen.session.cluster_name}


@needs_namespaces
@pytest.mark.slow
async def test_escape_while_provisioning_cancels_and_cleans_up(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"demo-backup", "enter", "escape")
        screen = app.screen
        assert isinstance(screen, ProvisioningScreen) and screen.state == "cancelling"
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert Session.load() is None and clusters() == set()


@needs_namespaces
@pytest.mark.slow
async def test_quitting_while_provisioning_removes_the_cluster_being_made(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"demo-backup", "enter", "ctrl+q")
        assert isinstance(app.screen, ProvisioningScreen) and app.screen.state == "cancelling"
        await wait_for(pilot, lambda: not app.is_running)
    assert Session.load() is None and clusters() == set()


async def test_ctrl_q_on_the_catalog_quits_at_once_without_a_graded_cluster(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert "ctrl+q" in shown  # `q` goes to the filter, so the footer names the quit key
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running)


@pytest.mark.parametrize("choice", ["k", "s"])
async def test_quitting_after_a_submitted_task_asks_about_its_graded_cluster(pack: Path, choice: str) -> None:
    """The graded cluster stays up for a look around; on quitting, the learner keeps it
    (until `cka-sim stop`) or stops it, as when leaving a running task."""
    session = fake_session(Clock(time.time()))
    session.status = "submitted"
    session.save()
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, QuitDialog) and "graded cluster" in app.screen.question
        await pilot.press("escape")  # stay
        assert isinstance(app.screen, CatalogScreen) and app.is_running
        await pilot.press("ctrl+q", choice)
        await wait_for(pilot, lambda: not app.is_running)
    assert (Session.load() is None) == (choice == "s")


# -- an exam ------------------------------------------------------------------------------------


@needs_namespaces
@pytest.mark.slow
async def test_exam_task_list_flags_background_clusters_and_report(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"mock", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExamScreen))
        screen = app.screen
        exam = screen.exam
        await wait_for(pilot, lambda: exam.tasks[1].status == "ready")  # made in the background
        assert len(clusters()) == 2

        await pilot.press("m")
        assert exam.tasks[0].flagged and "flagged for review: 1" in text_of(screen.query_one("#facts"))
        await pilot.press("n")
        assert exam.current == 1 and "Task 2 of 2" in screen.query_one("#exam-md").source
        await pilot.press("p")
        assert exam.current == 0

        name = exam.tasks[0].values["backup"]
        solved = await asyncio.to_thread(subprocess.run, [*exam.shell_argv(0), "-c", SOLVE.format(name=name)],
                                         capture_output=True, timeout=60, check=False)
        assert solved.returncode == 0

        await pilot.press("f")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert app.screen is screen
        await pilot.press("f", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ExamReportScreen))
        report = app.screen
        verdict = text_of(report.query_one("#exam-verdict"))
        assert "PASSED" in verdict and "3/6" in verdict and "NOT" not in verdict
        assert [r.passed for r in report.query_one("#exam-report-checks").results] == [True, True]
        await pilot.press("down")
        assert [r.passed for r in report.query_one("#exam-report-checks").results] == [False, True]
        assert sorted((a.scenario, a.exam, a.score) for a in History().attempts()) == [
            ("demo-backup", "mini-exam", 3), ("demo-backup-2", "mini-exam", 0)]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert clusters() == set()
        table = app.screen.query_one("#catalog-table")
        row = [str(c) for c in table.get_row_at(catalog_titles(app).index("A two-task mock exam"))]
        assert row[-2:] == ["50%", "1"]


@needs_namespaces
@pytest.mark.slow
async def test_exam_task_whose_cluster_fails_says_why_and_retries(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press(*"broken-exam", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExamScreen))
        screen = app.screen
        exam = screen.exam
        await wait_for(pilot, lambda: exam.tasks[1].status == "failed")
        shown = {b.binding.key for b in screen.active_bindings.values() if b.enabled}
        assert "r" not in shown  # task 1 is fine
        await pilot.press("n")
        md = screen.query_one("#exam-md").source
        assert "could not be made" in md and "no disk left" in md
        await pilot.press("s")
        assert "task 2 is failed" in toasts(app)
        failed_name = exam.tasks[1].cluster_name
        await pilot.press("r")
        assert exam.tasks[1].cluster_name != failed_name
        await wait_for(pilot, lambda: exam.tasks[1].status == "failed")
        assert clusters() == {exam.tasks[0].cluster_name}
        await pilot.press("p", "s")  # task 1's shell: no terminal to hand over in this test
        assert "cka-sim shell" in toasts(app)
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
    assert clusters() == set()


@needs_namespaces
@pytest.mark.slow
async def test_abandoning_an_exam_removes_its_clusters(pack: Path) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(*"mock", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExamScreen))
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, CatalogScreen))
    app.stop_exams()  # what run_app does when the app closes mid-exam
    assert clusters() == set() and History().attempts() == []


# -- the countdown ----------------------------------------------------------------------------


async def test_countdown_colours_notices_and_overtime() -> None:
    from textual.app import App

    clock = Clock()
    seen: list[object] = []

    class Host(App[None]):
        def compose(self):
            yield Countdown(FROZEN + 3600, 3600, clock, notices=(30, 15, 5))

        def on_countdown_notice(self, message: Countdown.Notice) -> None:
            seen.append(message.minutes)

        def on_countdown_expired(self) -> None:
            seen.append("expired")

    async with Host().run_test() as pilot:
        countdown = pilot.app.query_one(Countdown)
        digits = pilot.app.query_one("#countdown-digits")
        assert text_of(digits) == "1:00:00" and not countdown.has_class("-amber")
        for left, amber, red in ((1801, False, False), (1799, False, False), (899, True, False),
                                 (359, False, True), (299, False, True)):
            clock.now = FROZEN + 3600 - left
            countdown.tick()
            await pilot.pause()
            assert (countdown.has_class("-amber"), countdown.has_class("-red")) == (amber, red), left
        assert seen == [30, 15, 5]
        clock.now = FROZEN + 3600 + 65
        countdown.tick()
        await pilot.pause()
        assert text_of(digits) == "+1:05" and seen[-1] == "expired"
        countdown.tick()
        await pilot.pause()
        assert seen.count("expired") == 1


# -- resize ---------------------------------------------------------------------------------------


async def test_resizing_to_a_small_terminal_keeps_every_screen_usable(pack: Path) -> None:
    clock = Clock()
    app = make_app(clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        assert screen.query_one("#preview").display
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert screen.has_class("-narrow") and not screen.query_one("#preview").display
        table = screen.query_one("#catalog-table")
        assert table.size.width <= 80 and table.virtual_size.width <= table.size.width
        await pilot.resize_terminal(130, 40)
        await pilot.pause()
        assert not screen.has_class("-narrow")
        app.push_screen(TaskScreen(fake_session(clock)))
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert app.screen.query_one("#countdown").region.width > 0
        assert app.screen.query_one("#task-md").region.width > 20


# -- snapshots (frozen clock, hand-made sessions, fixed sizes) ------------------------------------


async def settle(pilot) -> None:
    """Let markdown and tables finish rendering before the screenshot (slow machines too)."""
    for _ in range(3):
        await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()


def fake_session(clock: Clock, mode: str = "practice") -> Session:
    return Session(scenario="demo-backup", source="", seed=7, values={"backup": "snapshot-daily"},
                   mode=mode, driver="local", cluster_name="cka-snap01", status="running",
                   started_at=clock() - 60, deadline=clock() + 420, time_limit=480)


def fake_report() -> Report:
    return Report("demo-backup", [
        CheckOutcome("/opt/backup/snapshot-daily.db is a valid etcd snapshot", False, 0, 3,
                     "no file at /opt/backup/snapshot-daily.db: expected an etcd snapshot there"),
        CheckOutcome("etcd is still healthy", True, 0, 0, "etcd at https://127.0.0.1:2379 is healthy",
                     guard=True),
    ], time_used=545, time_limit=480, final=True, attempt_id=1)


SIZES = [(120, 36), (80, 24)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_catalog(pack: Path, snap_compare, size) -> None:
    assert snap_compare(make_app(Clock()), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_provisioning(pack: Path, snap_compare, size) -> None:
    from simulator.cluster.node import Step

    async def run_before(pilot) -> None:
        screen = ProvisioningScreen("Back up etcd to a snapshot file", lambda p: None,
                                    ready=lambda r: None, cancel=lambda r: None,
                                    subtitle="demo-backup · practice mode · local driver",
                                    autostart=False)
        await pilot.app.push_screen(screen)
        for step in (Step("nodes", 0, 3, "preparing 1 node(s)"),
                     Step("certificates", 1, 3, "kubeadm PKI and kubeconfigs"),
                     Step("etcd", 2, 3, "waiting for etcd on controlplane")):
            screen.post_message(ProvisioningScreen.Progressed(step))
        await settle(pilot)

    assert snap_compare(make_app(Clock()), terminal_size=size, run_before=run_before)


def test_snapshot_provisioning_failed(pack: Path, snap_compare) -> None:
    async def run_before(pilot) -> None:
        screen = ProvisioningScreen("A task whose setup fails", lambda p: None,
                                    ready=lambda r: None, cancel=lambda r: None,
                                    subtitle="demo-broken · practice mode · local driver",
                                    autostart=False)
        await pilot.app.push_screen(screen)
        from simulator.cluster.node import Step

        screen.post_message(ProvisioningScreen.Progressed(Step("setup", 0, 2, "run a script")))
        screen.post_message(ProvisioningScreen.Failed("setup step 1 failed: no disk left",
                                                      "fix the scenario's setup"))
        await settle(pilot)

    assert snap_compare(make_app(Clock()), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_task(pack: Path, snap_compare, size) -> None:
    clock = Clock()

    async def run_before(pilot) -> None:
        screen = TaskScreen(fake_session(clock))
        await pilot.app.push_screen(screen)
        screen.hints = ["`etcdctl snapshot save` needs --cacert, --cert and --key."]
        screen.show_hints()
        screen.on_task_screen_checked(TaskScreen.Checked(fake_report()))
        await settle(pilot)
        screen.query_one("#task-text").scroll_home(animate=False)  # where it lands depends on timing
        await settle(pilot)

    assert snap_compare(make_app(clock), terminal_size=size, run_before=run_before)


def test_snapshot_task_red_clock_in_exam_mode(pack: Path, snap_compare) -> None:
    clock = Clock()

    async def run_before(pilot) -> None:
        session = fake_session(clock, mode="exam")
        session.deadline = clock() + 40
        await pilot.app.push_screen(TaskScreen(session))
        await settle(pilot)

    assert snap_compare(make_app(clock), terminal_size=(100, 30), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_results(pack: Path, snap_compare, size) -> None:
    async def run_before(pilot) -> None:
        await pilot.app.push_screen(ResultsScreen(fake_session(Clock()), fake_report()))
        await settle(pilot)

    assert snap_compare(make_app(Clock()), terminal_size=size, run_before=run_before)


def test_snapshot_quit_dialog(pack: Path, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await pilot.app.push_screen(TaskScreen(fake_session(Clock())))
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)

    assert snap_compare(make_app(Clock()), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_history(pack: Path, snap_compare, size) -> None:
    history = History()
    for i, (scenario, score) in enumerate([("demo-backup", 1), ("demo-backup", 4), ("demo-backup-2", 3)]):
        history.record(Attempt(scenario=scenario, seed=i, mode="practice", driver="local",
                               started_at=FROZEN + i * 3600, ended_at=FROZEN + i * 3600 + 200,
                               time_used=200 + i * 30, time_limit=480, score=score, max_score=4,
                               domain="troubleshooting", hints_used=i % 2,
                               checks=[CheckRecord("x", score == 4, score, 4)]))
    assert snap_compare(make_app(Clock()), terminal_size=size, press=["f4"])


def fake_exam(clock: Clock):
    from simulator.exam import ExamSession

    exam = ExamSession(Catalog.load(builtin=False), "mini-exam", seed=4, clock=clock)
    for task, name in zip(exam.tasks, ("cka-snap01", "cka-snap02")):
        task.cluster_name = name
    exam.status, exam.started_at, exam.deadline = "running", clock() - 130, clock() + 470
    exam.tasks[0].status, exam.tasks[1].status = "ready", "provisioning"
    exam.tasks[1].flagged = True
    return exam


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_exam(pack: Path, snap_compare, size) -> None:
    clock = Clock()

    async def run_before(pilot) -> None:
        await pilot.app.push_screen(ExamScreen(fake_exam(clock), background=False))
        await settle(pilot)

    assert snap_compare(make_app(clock), terminal_size=size, run_before=run_before)


def test_snapshot_exam_report(pack: Path, snap_compare) -> None:
    from simulator.exam import ExamReport

    clock = Clock()

    async def run_before(pilot) -> None:
        exam = fake_exam(clock)
        exam.tasks[0].results = fake_report().results
        exam.tasks[1].results = [CheckOutcome(c.name, False, 0, c.points, "not graded: the exam "
                                              "ended before this task's cluster was ready")
                                 for c in exam.tasks[1].scenario.checks]
        report = ExamReport("mini-exam", exam.exam.title, exam.tasks, 60, 545, 600)
        await pilot.app.push_screen(ExamReportScreen(exam, report))
        await settle(pilot)

    assert snap_compare(make_app(clock), terminal_size=(100, 30), run_before=run_before)


# -- the whole thing in a real terminal ----------------------------------------------------------


@needs_namespaces
@pytest.mark.slow
def test_end_to_end_in_a_real_terminal(pack: Path) -> None:
    """cka-sim with no arguments: pick the backup task, start it on the embedded driver,
    take the backup in the node's shell (s), submit (f), see full marks; then the attempt is
    in `cka-sim history --json`."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"}
    child = pexpect.spawn(sys.executable, ["-m", "simulator"], env=env, cwd=str(REPO),
                          encoding="utf-8", timeout=60, dimensions=(36, 120))
    try:
        child.expect("Type to filter")
        child.send("demo-backup")
        time.sleep(1.0)  # the filter applies as the keys arrive
        child.send("\r")
        child.expect("Time left", timeout=120)
        session = Session.load()
        assert session is not None and session.status == "running"
        name = session.values["backup"]

        child.send("s")
        child.expect(r"\[demo-backup (\d+):(\d\d)\] root@controlplane:~# ")  # the time left
        assert 6 * 60 <= int(child.match.group(1)) * 60 + int(child.match.group(2)) <= 8 * 60
        child.sendline(SOLVE.format(name=name))
        child.expect(r"Snapshot saved at")
        child.expect(r"root@controlplane:~# ")
        child.sendline("exit")
        child.expect("Shell")  # the task screen's footer is painted again
        time.sleep(0.5)
        child.send("f")
        child.expect(r"Score 3/3 \(100%\)", timeout=60)
        child.send("\x11")  # ctrl+q: the graded cluster is still up, so it asks
        child.expect("Stop cluster")
        child.send("s")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert Session.load() is None and clusters() == set()
    done = run_cli("history", "--json")
    assert done.returncode == 0, done.stderr
    [attempt] = json.loads(done.stdout)
    assert (attempt["scenario"], attempt["score"], attempt["max_score"]) == ("demo-backup", 3, 3)
    assert attempt["vars"] == {"backup": name}
