"""The CLI's exam commands: ``cka-sim start EXAM-ID`` and ``submit`` in an exam, and the
``cka-sim exam`` group (status, task N, next, prev, flag).

A face like ``cli.py``: it loads and saves the engine's :class:`simulator.exam.ExamSession`
(``exam.json``) and prints; ``cli.py`` calls these when an exam is active.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from simulator import timefmt
from simulator.errors import SimError


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def _progress(step) -> None:
    detail = f": {step.detail}" if step.detail else ""
    click.echo(f"  [{step.name}] {step.done}/{step.total}{detail}", err=True)


def active_exam(obj):
    """The CLI's running (or graded, not yet stopped) exam, or None."""
    from simulator.exam import ExamSession
    from simulator.session import exam_file

    if not exam_file().exists():
        return None
    return ExamSession.load(obj.catalog)


def start_exam(obj, exam_id: str, driver: str, seed: int | None) -> None:
    from simulator.exam import ExamSession

    spec = obj.catalog.get_exam(exam_id)
    from simulator.session import caveats

    for number, task_id in enumerate(spec.task_ids, 1):  # said now, not halfway through
        task = obj.catalog.scenarios.get(task_id)  # an unknown one: ExamSession says so
        for caveat in caveats(task, driver) if task is not None else []:
            click.secho(f"warning: task {number} ({task_id}): {caveat}", fg="yellow", err=True)
    click.echo(f"Starting the exam {spec.id} on the {driver} driver: task 1's cluster first ...", err=True)
    began = time.monotonic()
    exam = ExamSession.begin(obj.catalog, exam_id, driver=driver, seed=seed, progress=_progress)
    click.echo(f"Ready in {time.monotonic() - began:.1f}s.", err=True)
    click.echo("")
    click.secho(spec.title, bold=True)
    click.echo(f"{len(exam.tasks)} tasks · {timefmt.duration(spec.duration)} · pass mark "
               f"{spec.pass_mark}% · no hints or checks; tasks in any order, flag them for review")
    if spec.description:
        click.echo("")
        click.echo(spec.description.rstrip())
    click.echo("")
    _print_tasks(exam)
    click.echo("")
    _print_task(exam)
    click.echo("")
    click.echo("`cka-sim shell` opens this task's node; `cka-sim exam next`, `prev` or `task N` "
               "switch tasks (a task's cluster is made when you first open it), `cka-sim exam flag` "
               "marks one for review, `cka-sim exam status` shows the clock, `cka-sim submit` "
               "grades every task.")


def _print_tasks(exam) -> None:
    click.echo(f"  {'#':>2}  {'WEIGHT':>6}  {'CLUSTER':<12} {'FLAG':<4}  TASK")
    for t in exam.tasks:
        here = ">" if t.number - 1 == exam.current and exam.status == "running" else " "
        flag = "⚑" if t.flagged else ""
        click.echo(f"{here} {t.number:>2}  {t.weight:>5.0f}%  {t.status:<12} {flag:<4}  "
                   f"{t.scenario.title}")


def _print_task(exam) -> None:
    t = exam.tasks[exam.current]
    sc = t.scenario
    click.secho(f"Task {t.number} of {len(exam.tasks)}: {sc.title}", bold=True)
    click.echo(f"{sc.domain} · weight {t.weight:.0f}% · {t.max_score} points"
               + (" · flagged for review" if t.flagged else ""))
    click.echo("")
    if t.status == "ready":
        click.echo(sc.task.rstrip())
    elif t.status == "failed":
        click.echo(f"This task's cluster could not be made: {t.error}")
        if t.hint:
            click.echo(f"hint: {t.hint}")
        click.echo(f"`cka-sim exam task {t.number}` tries again.")
    else:
        click.echo(f"Its cluster is not made yet: `cka-sim exam task {t.number}` makes it.")


def show_status(exam, as_json: bool) -> None:
    if as_json:
        _emit_json({
            "exam": exam.exam.id, "title": exam.exam.title, "status": exam.status,
            "driver": exam.driver, "seed": exam.seed, "started_at": exam.started_at,
            "deadline": exam.deadline, "duration": exam.exam.duration,
            "remaining": round(exam.remaining(), 1) if exam.status == "running" else None,
            "pass_mark": exam.exam.pass_mark, "current": exam.current + 1,
            "tasks": [t.to_json() for t in exam.tasks],
            "report": exam.report.to_json() if exam.report else None,
        })
        return
    click.secho(exam.exam.title, bold=True)
    if exam.status == "running":
        left = exam.remaining()
        clock = f"{timefmt.clock(left)} left" if left > 0 else "time is up: `cka-sim submit` grades it"
        flagged = [str(t.number) for t in exam.tasks if t.flagged]
        click.echo(f"{clock} of {timefmt.duration(exam.exam.duration)} · pass mark "
                   f"{exam.exam.pass_mark}% · task {exam.current + 1} of {len(exam.tasks)} · "
                   f"flagged: {', '.join(flagged) or 'none'}")
        _print_tasks(exam)
    elif exam.report is not None:
        _print_exam_report(exam.report)
        click.echo("\n`cka-sim stop` removes the exam's clusters.")


def _print_exam_report(report) -> None:
    for t in report.tasks:
        click.echo("")
        flag = " ⚑" if t.flagged else ""
        click.secho(f"Task {t.number}: {t.scenario.title} ({t.scenario.id}){flag}", bold=True)
        for r in t.results or []:
            mark = click.style("PASS", fg="green") if r.passed else click.style("FAIL", fg="red")
            click.echo(f"  {mark}  {r.points}/{r.max_points}  {r.name}")
            if r.detail and not r.passed:
                click.echo(f"              {r.detail}")
        click.echo(f"  {t.score}/{t.max_score} points: {t.weighted:.1f} of its {t.weight:.0f}%")
    click.echo("")
    verdict = click.style("PASSED", fg="green", bold=True) if report.passed else \
        click.style("NOT PASSED", fg="red", bold=True)
    click.echo(f"Exam {report.exam}: {report.percent:.1f}% of 100 · pass mark {report.pass_mark}% · "
               f"{verdict} · time used {timefmt.duration(report.time_used)} of "
               f"{timefmt.duration(report.duration)}")


def submit_exam(exam, as_json: bool) -> None:
    from simulator.session import session_lock

    if exam.report is not None:
        raise SimError(f"the exam {exam.exam.id} was already graded",
                       hint="`cka-sim exam status` shows the report; `cka-sim stop` removes its clusters")
    with session_lock():
        report = exam.finish()
        exam.save()
    if as_json:
        _emit_json(report.to_json())
        return
    _print_exam_report(report)
    click.echo("\nRecorded in `cka-sim history`. The clusters are still up for a look; "
               "`cka-sim stop` removes them.")


@click.group()
def exam() -> None:
    """Move around a running exam: status, switch tasks, flag for review.

    Start one with `cka-sim start EXAM-ID`; `cka-sim shell` opens the current task's node
    and `cka-sim submit` grades every task.
    """


def _switch(obj, to) -> None:
    from simulator.exam import ExamSession
    from simulator.session import session_lock

    with session_lock():
        running = ExamSession.require(obj.catalog)
        index = to(running)
        task = running.prepare(index, _progress)
        running.save()
    if task.status == "failed":
        raise SimError(f"task {task.number}'s cluster could not be made: {task.error}",
                       hint=task.hint or f"`cka-sim exam task {task.number}` tries again")
    _print_task(running)


@exam.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def exam_status(obj, as_json: bool) -> None:
    """Tasks, weights, flags and the time left (the report once graded)."""
    from simulator.exam import ExamSession

    show_status(ExamSession.require(obj.catalog), as_json)


@exam.command("task")
@click.argument("number", type=int)
@click.pass_obj
def exam_task(obj, number: int) -> None:
    """Switch to task NUMBER (its cluster is made if it is not yet) and print it."""
    _switch(obj, lambda ex: number - 1)


@exam.command("next")
@click.pass_obj
def exam_next(obj) -> None:
    """Switch to the next task (after the last, the first)."""
    _switch(obj, lambda ex: (ex.current + 1) % len(ex.tasks))


@exam.command("prev")
@click.pass_obj
def exam_prev(obj) -> None:
    """Switch to the previous task (before the first, the last)."""
    _switch(obj, lambda ex: (ex.current - 1) % len(ex.tasks))


@exam.command("flag")
@click.argument("number", type=int, required=False)
@click.pass_obj
def exam_flag(obj, number: int | None) -> None:
    """Flag task NUMBER (default: the current one) for review, or unflag it."""
    from simulator.errors import SessionError
    from simulator.exam import ExamSession
    from simulator.session import session_lock

    with session_lock():
        running = ExamSession.require(obj.catalog)
        if running.status != "running":
            raise SessionError("the exam is over", hint="`cka-sim exam status` shows the report")
        index = running.current if number is None else number - 1
        if not 0 <= index < len(running.tasks):
            raise SessionError(f"there is no task {number}", hint=f"tasks are 1-{len(running.tasks)}")
        flagged = running.toggle_flag(index)
        running.save()
    click.echo(f"task {index + 1} is {'flagged for review' if flagged else 'no longer flagged'}")
