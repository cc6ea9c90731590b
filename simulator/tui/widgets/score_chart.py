"""Scores over time: a sparkline and one bar per recent attempt."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static

BAR_WIDTH = 14


def score_bars(attempts: Sequence[Any], limit: int = 8) -> Table:
    """The newest ``limit`` attempts (oldest first) as labelled horizontal bars."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True, style="dim")
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, justify="right")
    for a in list(attempts)[-limit:]:
        pct = a.percent
        filled = round(BAR_WIDTH * pct / 100)
        colour = "green" if pct >= 100 else ("yellow" if pct >= 66 else "red")
        bar = Text("█" * filled, style=colour) + Text("░" * (BAR_WIDTH - filled), style="dim")
        table.add_row(time.strftime("%m-%d %H:%M", time.localtime(a.started_at)), bar, f"{pct:.0f}%")
    return table


class ScoreChart(Vertical):
    """Percent scores of ``attempts`` in the order given (oldest first)."""

    def __init__(self, attempts: Sequence[Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.attempts = list(attempts)

    def compose(self) -> ComposeResult:
        yield Label("Scores over time", classes="section-title")
        if not self.attempts:
            yield Static("No attempts yet.", id="history-empty")
            return
        yield Sparkline([a.percent for a in self.attempts], id="history-spark")
        yield Static(score_bars(self.attempts), id="history-bars")
