"""History and stats: every attempt, averages per domain, scores over time, best times."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from simulator.tui import fmt
from simulator.tui.widgets.check_table import CheckTable
from simulator.tui.widgets.score_chart import ScoreChart

if TYPE_CHECKING:
    from simulator.history import Attempt
    from simulator.tui.app import CkaSimApp


def domain_averages(attempts: list[Attempt]) -> list[tuple[str, int, float]]:
    """Per domain: (domain, attempts, mean percent), sorted by domain."""
    from simulator.history import domain_progress

    return [(d.domain, d.attempts, d.average) for d in domain_progress(attempts)]


def best_times(attempts: list[Attempt]) -> list[tuple[str, float | None, float]]:
    """Per scenario: (scenario, fastest time with full marks or None, best percent)."""
    best: dict[str, tuple[float | None, float]] = {}
    for a in attempts:
        fastest, top = best.get(a.scenario, (None, 0.0))
        if a.max_score and a.score == a.max_score:
            fastest = a.time_used if fastest is None else min(fastest, a.time_used)
        best[a.scenario] = (fastest, max(top, a.percent))
    return [(s, f, p) for s, (f, p) in sorted(best.items())]


class HistoryScreen(Screen):
    """Past attempts, newest first, with the stats beside them."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,b", "back", "Catalog")]

    def compose(self) -> ComposeResult:
        attempts = self.app.history.attempts()
        self.attempts = attempts
        yield Header()
        with Horizontal(id="history-body"):
            with Vertical(id="history-main"):
                yield Label(f"Attempts ({len(attempts)})", classes="section-title")
                yield DataTable(id="history-attempts", cursor_type="row", zebra_stripes=True)
                yield Label("", id="history-checks-title", classes="section-title")
                yield CheckTable(id="history-checks")
            with VerticalScroll(id="history-side"):
                yield Label("Average by domain", classes="section-title")
                yield DataTable(id="history-domains", cursor_type="none")
                yield Label("Best time per scenario", classes="section-title")
                yield DataTable(id="history-best", cursor_type="none")
                yield ScoreChart(list(reversed(attempts)), id="history-chart-box")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#history-attempts", DataTable)
        table.add_columns("When", "Scenario", "Mode", "Score", "Time", "Hints", "Exam")
        for a in self.attempts:
            colour = "green" if a.percent >= 100 else ("yellow" if a.percent >= 66 else "red")
            used = fmt.duration(a.time_used) + "/" + fmt.duration(a.time_limit)
            table.add_row(
                time.strftime("%m-%d %H:%M", time.localtime(a.started_at)),
                a.scenario, a.mode,
                Text(f"{a.score}/{a.max_score} {a.percent:3.0f}%", style=colour),
                Text(used, style="red" if a.overtime > 0 else ""),
                str(a.hints_used), a.exam or "",
            )
        domains = self.query_one("#history-domains", DataTable)
        domains.add_columns("Domain", "Tries", "Average")
        for domain, n, avg in domain_averages(self.attempts):
            domains.add_row(domain, str(n), f"{avg:.0f}%")
        best = self.query_one("#history-best", DataTable)
        best.add_columns("Scenario", "Fastest 100%", "Best")
        for scenario, fastest, top in best_times(self.attempts):
            best.add_row(scenario, "-" if fastest is None else fmt.duration(fastest), f"{top:.0f}%")
        table.focus()

    @on(DataTable.RowHighlighted, "#history-attempts")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        attempt = self.attempts[event.cursor_row]
        self.query_one("#history-checks-title", Label).update(
            f"Checks of {attempt.scenario} (seed {attempt.seed})")
        self.query_one("#history-checks", CheckTable).show(attempt.checks)

    def action_back(self) -> None:
        self.dismiss()
