"""The task: its text beside the clock; shell, check, hint, submit, reset and quit."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Markdown, Static

from simulator.cluster.node import CANDIDATE, JUMP_HOST, login_node
from simulator.tui import fmt, messages
from simulator.tui.terminal import run_shell
from simulator.tui.widgets.check_table import CheckTable
from simulator.tui.widgets.countdown import Countdown

if TYPE_CHECKING:
    from simulator.session import Session
    from simulator.tui.app import CkaSimApp

EXAM_NOTICES = (30, 15, 5)


class TaskScreen(Screen):
    """One running attempt. The clock is the session's deadline, re-read every second."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "shell", "Shell"),
        Binding("c", "check", "Check"),
        Binding("h", "hint", "Hint"),
        Binding("f", "submit", "Submit"),
        Binding("r", "reset", "Reset"),
        Binding("q", "quit_task", "Quit task"),
    ]

    class Checked(messages.Reported):
        pass

    class Submitted(messages.Reported):
        pass

    class Failed(messages.Failed):
        pass

    class Stopped(Message):
        pass

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.scenario = session.scenario_model(self.app.catalog)
        self.busy = ""
        self.hints: list[str] = []

    def compose(self) -> ComposeResult:
        s = self.session
        sc = self.scenario
        yield Header()
        with Horizontal(id="task-body"):
            with VerticalScroll(id="task-text"):
                yield Markdown(f"# {sc.title}\n\n{sc.task}", id="task-md")
                hints = Markdown("", id="hints-md", classes="-hidden")
                hints.border_title = "Hints"
                yield hints
                yield Label("Last check", id="check-title", classes="-hidden")
                yield CheckTable(id="check-table", classes="-hidden")
            with Vertical(id="sidebar"):
                yield Countdown(s.deadline, s.time_limit, self.app.clock,
                                notices=EXAM_NOTICES if s.mode == "exam" else (), id="countdown")
                yield Static(self.facts(), id="facts")
                yield Static("", id="task-status")
        yield Footer()

    @property
    def login_name(self) -> str:
        """Where the learner's shell opens: ``student`` (as ``candidate``) on a jump host."""
        if self.scenario.cluster.jump_host:
            return f"{JUMP_HOST}[/] as [b]{CANDIDATE}"
        return "controlplane"

    def facts(self) -> str:
        s = self.session
        sc = self.scenario
        lines = [
            f"[b]{escape(sc.domain)}[/] · {sc.difficulty}",
            f"{s.mode} mode · {s.driver}",
            f"cluster [b]{s.cluster_name}[/]",
            f"node [b]{self.login_name}[/]",
            f"seed {s.seed}",
        ]
        if s.mode == "practice" and sc.hints:
            lines.append(f"hints {s.hints_shown}/{len(sc.hints)}")
        return "\n".join(lines)

    def on_mount(self) -> None:
        if self.session.mode == "exam" and self.session.remaining(self.app.clock()) <= 0:
            self.notify("Time ran out while you were away: grading now", title="Time",
                        severity="error")
            self.call_after_refresh(self.action_submit)
        if self.session.hints_shown:
            self.hints = self.scenario.hints[: self.session.hints_shown]
            self.show_hints()

    def set_status(self, text: str) -> None:
        self.query_one("#task-status", Static).update(text)

    def show_hints(self) -> None:
        md = self.query_one("#hints-md", Markdown)
        md.remove_class("-hidden")
        md.update("\n".join(f"{i}. {h}" for i, h in enumerate(self.hints, 1)))
        self.query_one("#facts", Static).update(self.facts())

    # -- clock events --------------------------------------------------------------------

    def on_countdown_notice(self, message: Countdown.Notice) -> None:
        self.notify(f"{message.minutes} minutes left", title="Time", severity="warning", timeout=10)

    def on_countdown_expired(self) -> None:
        if self.session.mode == "exam":
            self.notify("Time is up: grading now", title="Time", severity="error")
            self.action_submit()
        else:
            self.notify("Time is up. Practice mode: keep going, the overtime is recorded.",
                        title="Time", severity="warning", timeout=10)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in ("check", "hint", "reset") and self.session.mode == "exam")

    def action_shell(self) -> None:
        if self.busy:
            return
        from simulator.errors import SimError

        try:
            node = login_node(self.session.cluster())
            argv = node.shell_argv()
        except SimError as exc:
            self.app.show_error(exc.message, exc.hint)
            return
        countdown = self.query_one(Countdown)
        countdown.pause()
        left = fmt.clock(self.session.remaining(self.app.clock()))
        try:
            error = run_shell(self.app, argv, f"cka-sim: shell on {node.name} ({left} left) "
                                              "- type `exit` to return to the task")
        finally:
            countdown.resume()
        if error:
            self.app.show_error(error)

    def action_check(self) -> None:
        if self.busy or self.session.mode == "exam":
            return
        self.busy = "check"
        self.set_status("[yellow]checking…[/]")
        self.run_check()

    @work(thread=True, exit_on_error=False, group="task")
    def run_check(self) -> None:
        messages.post_outcome(self, lambda: self.session.check(self.app.catalog), self.Checked, self.Failed)

    def on_task_screen_checked(self, message: Checked) -> None:
        self.busy = ""
        report = message.report
        self.query_one("#check-title").remove_class("-hidden")
        self.query_one("#check-title", Label).update(
            f"Last check: {report.score}/{report.max_score} ({report.percent:.0f}%) — the clock keeps running")
        table = self.query_one(CheckTable)
        table.remove_class("-hidden")
        table.show(report.results)
        self.set_status(f"checked: {report.score}/{report.max_score}")
        self.query_one("#task-text").scroll_end(animate=False)

    def on_task_screen_failed(self, message: Failed) -> None:
        self.busy = ""
        self.set_status("")
        self.app.show_error(message.message, message.hint)

    def action_hint(self) -> None:
        if self.busy or self.session.mode == "exam":
            return
        from simulator.errors import SimError

        try:
            number, text = self.session.next_hint(self.app.catalog)
        except SimError as exc:
            self.app.show_error(exc.message, exc.hint)
            return
        if number > len(self.hints):
            self.hints.append(text)
        else:
            self.notify("that was the last hint", timeout=4)
        self.show_hints()
        self.query_one("#task-text").scroll_end(animate=False)

    def action_submit(self) -> None:
        if self.busy:
            return
        self.busy = "submit"
        self.set_status("[yellow]grading…[/]")
        self.run_submit()

    @work(thread=True, exit_on_error=False, group="task")
    def run_submit(self) -> None:
        messages.post_outcome(self, lambda: self.session.submit(self.app.catalog, self.app.history),
                              self.Submitted, self.Failed)

    def on_task_screen_submitted(self, message: Submitted) -> None:
        from simulator.tui.screens.results import ResultsScreen

        self.busy = ""
        self.app.switch_screen(ResultsScreen(self.session, message.report))

    def action_reset(self) -> None:
        if self.busy:
            return
        s = self.session
        self.app.switch_screen(self.app.practice_screen(s.scenario, driver=s.driver, mode=s.mode,
                                                        seed=s.seed, replace=s))

    def action_quit_task(self) -> None:
        if self.busy:
            return
        from simulator.tui.screens.dialogs import QuitDialog

        def chosen(choice: str | None) -> None:
            if choice == "keep":
                self.dismiss()
            elif choice == "stop":
                self.busy = "stop"
                self.set_status("[yellow]stopping the cluster…[/]")
                self.run_stop()

        self.app.push_screen(QuitDialog(self.session.scenario), chosen)

    @work(thread=True, exit_on_error=False, group="task")
    def run_stop(self) -> None:
        try:
            self.session.stop()
        finally:
            self.post_message(self.Stopped())

    def on_task_screen_stopped(self) -> None:
        self.busy = ""
        self.dismiss()
