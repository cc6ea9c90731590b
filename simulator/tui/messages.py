"""What the screens' worker threads post back to the app thread, and how they report errors.

A screen subclasses these inside itself (``class Failed(messages.Failed): pass``) so its
handlers keep their names (``on_task_screen_failed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from simulator.grading import Report


class Failed(Message):
    """Blocking work failed: what went wrong, and what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__()
        self.message = message
        self.hint = hint


class Reported(Message):
    """A grading report is ready."""

    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


def post_outcome(target: MessagePump, work: Callable[[], Any], done: Callable[[Any], Message],
                 failed: type[Failed], *, hint: str = "") -> None:
    """Run ``work`` (in a worker thread) and post ``done(result)`` to ``target``.

    A SimError is posted as ``failed`` with its message and hint; any other exception as
    ``failed`` with an "internal error" message and ``hint``: shown to the learner, never a
    crash.
    """
    from simulator.errors import SimError

    try:
        result = work()
    except SimError as exc:
        target.post_message(failed(exc.message, exc.hint))
        return
    except Exception as exc:
        target.post_message(failed(f"internal error: {type(exc).__name__}: {exc}", hint))
        return
    target.post_message(done(result))
