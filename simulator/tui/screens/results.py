"""Results of a submitted attempt: every check, the time, why it broke, the solution."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Header, Label, Markdown, Static

from simulator.cluster.node import login_node
from simulator.tui import fmt
from simulator.tui.widgets.check_table import CheckTable

if TYPE_CHECKING:
    from simulator.grading import Report
    from simulator.session import Session
    from simulator.tui.app import CkaSimApp


def score_line(report: Report) -> str:
    """``Score 3/4 (75%) · 5m12s of 8m`` with the overtime when there was any."""
    colour = "green" if report.percent >= 100 else ("yellow" if report.percent >= 66 else "red")
    line = (f"[b {colour}]Score {report.score}/{report.max_score} ({report.percent:.0f}%)[/]"
            f"  ·  time used {fmt.duration(report.time_used)} of "
            f"{fmt.duration(report.time_limit)}")
    if report.overtime > 0:
        line += f"  ·  [red]{fmt.duration(report.overtime)} over the limit[/]"
    return line


class ResultsScreen(Screen):
    """The graded attempt. The cluster stays up until the next start (s opens a shell)."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("n", "new", "New values"),
        Binding("s", "shell", "Shell"),
        Binding("o", "toggle_solution", "Solution"),
        Binding("escape,b", "back", "Catalog"),
    ]

    def __init__(self, session: Session, report: Report) -> None:
        super().__init__()
        self.session = session
        self.report = report
        self.scenario = session.scenario_model(self.app.catalog)

    def compose(self) -> ComposeResult:
        sc = self.scenario
        yield Header()
        with VerticalScroll(id="results-body"):
            yield Label(f"[b]{escape(sc.title)}[/]  [dim]{self.session.mode} mode · "
                        f"seed {self.session.seed}[/]", id="results-title")
            yield Static(score_line(self.report), id="results-score")
            yield CheckTable(self.report.results, id="results-checks")
            if sc.explanation:
                yield Markdown(f"## Why it broke\n\n{sc.explanation}", id="results-explanation")
            with Collapsible(title="Reference solution (o)", collapsed=True, id="solution"):
                yield Markdown(f"```bash\n{sc.solution.rstrip()}\n```", id="solution-md")
        yield Footer()

    def action_toggle_solution(self) -> None:
        box = self.query_one(Collapsible)
        box.collapsed = not box.collapsed

    def action_back(self) -> None:
        self.dismiss()

    def _again(self, seed: int | None) -> None:
        s = self.session
        self.app.switch_screen(self.app.practice_screen(s.scenario, driver=s.driver,
                                                        mode=s.mode, seed=seed))

    def action_retry(self) -> None:
        self._again(self.session.seed)

    def action_new(self) -> None:
        self._again(None)

    def action_shell(self) -> None:
        from simulator.errors import SimError
        from simulator.tui.terminal import run_shell

        try:
            argv = login_node(self.session.cluster()).shell_argv()
        except SimError as exc:
            self.app.show_error(exc.message, exc.hint)
            return
        error = run_shell(self.app, argv, "cka-sim: the graded cluster - type `exit` to return")
        if error:
            self.app.show_error(error)
