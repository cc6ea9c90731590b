"""Exam mode: a task list with review flags under one global clock, then the report."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Markdown, Static

from simulator.cluster.node import CANDIDATE, JUMP_HOST
from simulator.tui import fmt, messages
from simulator.tui.screens.task import EXAM_NOTICES
from simulator.tui.terminal import run_shell
from simulator.tui.widgets.check_table import CheckTable
from simulator.tui.widgets.countdown import Countdown

if TYPE_CHECKING:
    from simulator.exam import ExamReport, ExamSession
    from simulator.tui.app import CkaSimApp

STATUS_MARK = {
    "pending": "[dim]·[/]",
    "provisioning": "[yellow]…[/]",
    "ready": "[green]●[/]",
    "failed": "[red]✘[/]",
}


def start_exam(app: CkaSimApp, exam_id: str, driver: str) -> None:
    """Draw the exam's tasks and open its provisioning screen (task 1 first)."""
    from simulator.errors import SimError
    from simulator.exam import ExamSession
    from simulator.tui.screens.provisioning import ProvisioningScreen

    try:
        exam = ExamSession(app.catalog, exam_id, driver=driver, clock=app.clock, history=app.history)
    except SimError as exc:
        app.show_error(exc.message, exc.hint)
        return
    app.exams.append(exam)
    app.push_screen(ProvisioningScreen(
        exam.exam.title, exam.start, ready=lambda ex: ExamScreen(ex), cancel=lambda ex: ex.stop(),
        subtitle=f"exam · {len(exam.tasks)} tasks · {fmt.duration(exam.exam.duration)} · "
                 f"pass mark {exam.exam.pass_mark}% · {driver} driver · task 1 first"))


class ExamScreen(Screen):
    """The running exam. Clusters for the next tasks are made in the background."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "shell", "Shell"),
        Binding("m", "flag", "Flag"),
        Binding("n", "move(1)", "Next"),
        Binding("p", "move(-1)", "Prev"),
        Binding("r", "retry", "Retry task", show=False),
        Binding("f", "finish", "Finish"),
        Binding("q", "abandon", "Abandon"),
    ]

    class Changed(Message):
        """A task's cluster changed state."""

    class Finished(Message):
        def __init__(self, report: ExamReport) -> None:
            super().__init__()
            self.report = report

    class Failed(messages.Failed):
        pass

    def __init__(self, exam: ExamSession, *, background: bool = True) -> None:
        super().__init__()
        self.exam = exam
        self.background = background
        self.wake = threading.Event()
        self.closed = False
        self.busy = ""

    def compose(self) -> ComposeResult:
        exam = self.exam
        yield Header()
        with Horizontal(id="exam-body"):
            with Vertical(id="exam-tasks-box"):
                yield DataTable(id="exam-tasks", cursor_type="row")
            with VerticalScroll(id="exam-task-text"):
                yield Markdown("", id="exam-md")
            with Vertical(id="sidebar"):
                yield Countdown(exam.deadline, float(exam.exam.duration), self.app.clock,
                                notices=EXAM_NOTICES, label="Exam time left", id="countdown")
                yield Static("", id="facts")
                yield Static("", id="task-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#exam-tasks", DataTable)
        table.add_column("#", key="n", width=2)
        table.add_column("", key="state", width=1)
        table.add_column("", key="flag", width=1)
        table.add_column("Task", key="title", width=self.title_width())
        for task in self.exam.tasks:
            table.add_row(*self.cells(task.number - 1), key=str(task.number))
        table.focus()
        self.show_task()
        if self.background:
            self.prepare()

    def title_width(self) -> int:
        return 8 if self.app.size.width < 100 else 20

    def on_resize(self) -> None:
        table = self.query_one("#exam-tasks", DataTable)
        column = table.columns.get("title")  # type: ignore[call-overload]
        if column is not None and column.width != self.title_width():
            column.width = self.title_width()
            table.refresh()

    def on_unmount(self) -> None:
        self.closed = True
        self.wake.set()

    def cells(self, index: int) -> tuple[Text | str, ...]:
        task = self.exam.tasks[index]
        return (str(task.number), Text.from_markup(STATUS_MARK.get(task.status, "?")),
                Text("⚑", style="bold yellow") if task.flagged else "",
                Text(task.scenario.title, overflow="ellipsis", no_wrap=True))

    def refresh_rows(self) -> None:
        table = self.query_one("#exam-tasks", DataTable)
        for i, task in enumerate(self.exam.tasks):
            for key, value in zip(("n", "state", "flag", "title"), self.cells(i)):
                table.update_cell(str(task.number), key, value)
        ready = sum(t.status == "ready" for t in self.exam.tasks)
        flagged = [str(t.number) for t in self.exam.tasks if t.flagged]
        lines = [
            f"[b]{escape(self.exam.exam.title)}[/]",
            f"task {self.exam.current + 1} of {len(self.exam.tasks)}",
            f"pass mark {self.exam.exam.pass_mark}%",
            f"clusters ready {ready}/{len(self.exam.tasks)}",
            f"flagged for review: {', '.join(flagged) if flagged else 'none'}",
        ]
        self.query_one("#facts", Static).update("\n".join(lines))

    def show_task(self) -> None:
        index = self.exam.current
        task = self.exam.tasks[index]
        sc = task.scenario
        node = (f"node `{JUMP_HOST}` as `{CANDIDATE}`" if sc.cluster.jump_host
                else "node `controlplane`")
        head = (f"# Task {task.number} of {len(self.exam.tasks)}: {sc.title}\n\n"
                f"*{sc.domain} · weight {task.weight:.0f}% · {task.max_score} points · {node}*"
                + (" · **flagged for review**" if task.flagged else "") + "\n\n")
        if task.status == "ready":
            body = sc.task
        elif task.status == "failed":
            body = (f"**This task's cluster could not be made:** {task.error}\n\n"
                    f"{task.hint}\n\nPress `r` to try again.")
        else:
            body = "*Preparing this task's cluster in the background…*"
        self.query_one("#exam-md", Markdown).update(head + body)
        self.refresh_rows()
        self.refresh_bindings()

    # -- background provisioning ---------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="exam-prepare")
    def prepare(self) -> None:
        """Keep the selected task and the one after it provisioned until the screen closes."""
        while not self.closed:
            index = self.exam.wanted()
            if index is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self.post_message(self.Changed())
            try:
                self.exam.provision(index)
            finally:
                self.post_message(self.Changed())

    def on_exam_screen_changed(self) -> None:
        self.show_task()

    # -- clock ---------------------------------------------------------------------------

    def on_countdown_notice(self, message: Countdown.Notice) -> None:
        self.notify(f"{message.minutes} minutes left in the exam", title="Time",
                    severity="warning", timeout=10)

    def on_countdown_expired(self) -> None:
        self.notify("Time is up: grading every task", title="Time", severity="error")
        self.grade()

    # -- actions -------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#exam-tasks")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.exam.select(event.cursor_row)
        self.wake.set()
        self.show_task()

    def action_move(self, delta: int) -> None:
        table = self.query_one("#exam-tasks", DataTable)
        table.move_cursor(row=max(0, min(len(self.exam.tasks) - 1, self.exam.current + delta)))

    def action_flag(self) -> None:
        self.exam.toggle_flag(self.exam.current)
        self.show_task()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.exam.tasks[self.exam.current].status == "failed"
        return True

    def action_retry(self) -> None:
        self.exam.retry(self.exam.current)
        self.wake.set()
        self.show_task()

    def action_shell(self) -> None:
        if self.busy:
            return
        from simulator.errors import SimError

        try:
            argv = self.exam.shell_argv(self.exam.current)
        except SimError as exc:
            self.app.show_error(exc.message, exc.hint)
            return
        countdown = self.query_one(Countdown)
        countdown.pause()
        task = self.exam.tasks[self.exam.current]
        where = JUMP_HOST if task.scenario.cluster.jump_host else "controlplane"
        left = fmt.clock(self.exam.remaining())
        try:
            error = run_shell(self.app, argv, f"cka-sim: task {task.number} on {where} "
                                              f"({left} left) - type `exit` to return")
        finally:
            countdown.resume()
        if error:
            self.app.show_error(error)

    def action_finish(self) -> None:
        if self.busy:
            return
        from simulator.tui.screens.dialogs import ConfirmDialog

        flagged = sum(t.flagged for t in self.exam.tasks)
        detail = f"{flagged} task(s) are flagged for review. " if flagged else ""
        self.app.push_screen(ConfirmDialog("Finish the exam and grade every task?",
                                           detail + "The clock stops; there is no going back."),
                             lambda yes: self.grade() if yes else None)

    def grade(self) -> None:
        if self.busy:
            return
        self.busy = "grade"
        self.query_one("#task-status", Static).update("[yellow]grading every task…[/]")
        self.run_grade()

    @work(thread=True, exit_on_error=False, group="exam")
    def run_grade(self) -> None:
        messages.post_outcome(self, self.exam.finish, self.Finished, self.Failed)

    def on_exam_screen_finished(self, message: Finished) -> None:
        self.busy = ""
        self.closed = True
        self.wake.set()
        self.app.switch_screen(ExamReportScreen(self.exam, message.report))

    def on_exam_screen_failed(self, message: Failed) -> None:
        self.busy = ""
        self.query_one("#task-status", Static).update("")
        self.app.show_error(message.message, message.hint)

    def action_abandon(self) -> None:
        if self.busy:
            return
        from simulator.tui.screens.dialogs import ConfirmDialog

        def chosen(yes: bool | None) -> None:
            if yes:
                self.busy = "stop"
                self.closed = True
                self.wake.set()
                self.query_one("#task-status", Static).update("[yellow]removing the clusters…[/]")
                self.run_stop()

        self.app.push_screen(ConfirmDialog("Abandon the exam?",
                                           "Every task's cluster is removed and nothing is recorded."),
                             chosen)

    @work(thread=True, exit_on_error=False, group="exam")
    def run_stop(self) -> None:
        try:
            self.exam.stop()
        finally:
            self.post_message(self.Stopped())

    class Stopped(Message):
        pass

    def on_exam_screen_stopped(self) -> None:
        self.dismiss()


class ExamReportScreen(Screen):
    """Per-task scores, each task's checks, and pass or fail at the pass mark."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,b", "back", "Catalog (removes clusters)")]

    class Stopped(Message):
        pass

    def __init__(self, exam: ExamSession, report: ExamReport) -> None:
        super().__init__()
        self.exam = exam
        self.report = report

    def compose(self) -> ComposeResult:
        r = self.report
        verdict = "[b green]PASSED[/]" if r.passed else "[b red]NOT PASSED[/]"
        yield Header()
        with VerticalScroll(id="exam-report-body"):
            yield Label(f"[b]{escape(r.title)}[/]", id="results-title")
            yield Static(f"{verdict}  {r.percent:.1f}% of 100 ({r.score}/{r.max_score} points) · "
                         f"pass mark {r.pass_mark}% · time used {fmt.duration(r.time_used)} "
                         f"of {fmt.duration(r.duration)}", id="exam-verdict")
            yield DataTable(id="exam-report-table", cursor_type="row")
            yield Label("", id="check-title", classes="section-title")
            yield CheckTable(id="exam-report-checks")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "Task", "Domain", "Score", "", "Weighted", "Flag")
        for t in self.report.tasks:
            pct = fmt.percent(t.score, t.max_score)
            colour = "green" if pct >= 100 else ("yellow" if pct >= 66 else "red")
            table.add_row(str(t.number), t.scenario.title, t.scenario.domain,
                          Text(f"{t.score}/{t.max_score}", style=colour), f"{pct:.0f}%",
                          f"{t.weighted:.1f}/{t.weight:.0f}%", "⚑" if t.flagged else "")
        table.focus()
        self.show_checks(0)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_checks(event.cursor_row)

    def show_checks(self, index: int) -> None:
        task = self.report.tasks[index]
        self.query_one("#check-title", Label).update(f"Task {task.number}: {escape(task.scenario.title)}")
        self.query_one(CheckTable).show(task.results or [])

    def action_back(self) -> None:
        self.query_one("#check-title", Label).update("removing the exam's clusters…")
        self.run_stop()

    @work(thread=True, exit_on_error=False, group="exam")
    def run_stop(self) -> None:
        try:
            self.exam.stop()
        finally:
            self.post_message(self.Stopped())

    def on_exam_report_screen_stopped(self) -> None:
        self.dismiss()
