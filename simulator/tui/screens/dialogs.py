"""Small modal questions."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class QuitDialog(ModalScreen[str | None]):
    """Leave a task: keep its cluster (resume later), stop it, or stay."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "choose('keep')", "Keep"),
        Binding("s", "choose('stop')", "Stop"),
        Binding("escape", "choose(None)", "Stay"),
    ]

    def __init__(self, what: str, *, question: str = "", detail: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.what = what
        self.question = question or f"Leave [b]{escape(what)}[/]?"
        self.detail = detail or ("Keep the cluster to resume later (F5 in the catalog), or stop it "
                                 "and drop this attempt.")

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="dialog-question")
            yield Label(self.detail, id="dialog-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("Keep cluster (k)", id="keep", variant="primary")
                yield Button("Stop cluster (s)", id="stop", variant="error")
                yield Button("Stay (Esc)", id="stay")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "choose(True)", "Yes"),
        Binding("n,escape", "choose(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="dialog-question")
            if self.detail:
                yield Label(self.detail, id="dialog-text")
            with Horizontal(id="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_choose(self, choice: bool) -> None:
        self.dismiss(choice)
