"""The graded checks of an attempt: pass or fail, points and what the checker found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


def check_table(results: Sequence[Any]) -> Table:
    """A Rich table of check outcomes (anything with name, passed, points, max_points, detail)."""
    table = Table(expand=True, box=None, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("", width=6, no_wrap=True)
    table.add_column("Points", width=6, justify="right", no_wrap=True)
    table.add_column("Check", ratio=2)
    table.add_column("Detail", ratio=3, style="dim")
    for r in results:
        mark = Text("PASS", style="bold green") if r.passed else Text("FAIL", style="bold red")
        table.add_row(mark, f"{r.points}/{r.max_points}", r.name, r.detail or "")
    return table


class CheckTable(Static):
    """A table of check outcomes that wraps long details instead of cutting them."""

    def __init__(self, results: Sequence[Any] = (), *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.results = list(results)

    def on_mount(self) -> None:
        self.show(self.results)

    def show(self, results: Sequence[Any]) -> None:
        """Replace the rows with ``results``."""
        self.results = list(results)
        self.update(check_table(self.results) if self.results else "No checks graded yet.")
