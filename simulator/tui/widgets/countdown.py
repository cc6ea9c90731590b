"""A deadline clock: big digits, amber at 25 % left, red at 10 %, then overtime."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Digits, Label

from simulator.tui import fmt

AMBER_AT = 0.25
RED_AT = 0.10


class Countdown(Vertical):
    """Shows the time left before ``deadline``; reads ``clock`` each second, never counts ticks.

    Posts ``Countdown.Notice`` when the time left crosses one of ``notices`` (minutes) and
    ``Countdown.Expired`` once when the deadline passes.
    """

    remaining: reactive[float] = reactive(0.0, init=False)

    class Notice(Message):
        """The time left has just dropped to ``minutes`` minutes."""

        def __init__(self, minutes: int) -> None:
            super().__init__()
            self.minutes = minutes

    class Expired(Message):
        """The deadline has passed."""

    def __init__(self, deadline: float, total: float, clock: Callable[[], float], *,
                 notices: Iterable[int] = (), label: str = "Time left",
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.deadline = deadline
        self.total = max(total, 1.0)
        self.clock = clock
        self.label = label
        self._notices = sorted(set(notices), reverse=True)
        self._fired: set[int] = set()
        self._expired = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label(self.label, id="countdown-label")
        yield Digits("--:--", id="countdown-digits")
        yield Label("", id="countdown-note")

    def on_mount(self) -> None:
        left = self.deadline - self.clock()
        self._fired = {m for m in self._notices if left <= m * 60}
        self._expired = left <= 0
        self._timer = self.set_interval(1, self.tick)
        self.tick()

    def tick(self) -> None:
        """Re-read the clock."""
        self.remaining = self.deadline - self.clock()

    def pause(self) -> None:
        """Stop repainting (while the terminal belongs to a shell)."""
        if self._timer is not None:
            self._timer.pause()

    def resume(self) -> None:
        """Repaint again and catch up with the clock at once."""
        if self._timer is not None:
            self._timer.resume()
        self.tick()

    def watch_remaining(self, left: float) -> None:
        self.query_one(Digits).update(fmt.clock(left))
        fraction = left / self.total
        self.set_class(0 < fraction <= AMBER_AT and fraction > RED_AT, "-amber")
        self.set_class(fraction <= RED_AT, "-red")
        note = self.query_one("#countdown-note", Label)
        if left <= 0:
            note.update("overtime")
            self.query_one("#countdown-label", Label).update("Time is up")
        else:
            note.update(f"of {fmt.duration(self.total)}")
            self.query_one("#countdown-label", Label).update(self.label)
        for minutes in self._notices:
            if minutes not in self._fired and left <= minutes * 60:
                self._fired.add(minutes)
                if left > 0:
                    self.post_message(self.Notice(minutes))
        if left <= 0 and not self._expired:
            self._expired = True
            self.post_message(self.Expired())
