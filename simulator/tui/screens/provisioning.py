"""Provisioning: named steps with a progress bar and elapsed time; Esc cancels and cleans up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, Static

from simulator.tui import fmt, messages

if TYPE_CHECKING:
    from simulator.cluster.node import Step
    from simulator.tui.app import CkaSimApp

PHASES = ["nodes", "certificates", "etcd", "apiserver", "setup", "faults", "ready"]

Starter = Callable[[Callable[["Step"], None]], Any]


class ProvisioningScreen(Screen):
    """Runs ``start(progress)`` in a thread and shows its steps.

    On success the screen is replaced by ``ready(result)``; on failure it shows the message
    and hint and offers a retry. Esc while running waits for the current call to end, then
    runs ``cancel(result)`` (tearing the cluster down) and goes back.
    """

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
    ]

    class Progressed(Message):
        def __init__(self, step: Step) -> None:
            super().__init__()
            self.step = step

    class Ready(Message):
        def __init__(self, result: Any) -> None:
            super().__init__()
            self.result = result

    class Failed(messages.Failed):
        pass

    class CleanedUp(Message):
        pass

    def __init__(self, title: str, start: Starter, ready: Callable[[Any], Screen],
                 cancel: Callable[[Any], None], *, subtitle: str = "",
                 autostart: bool = True) -> None:
        super().__init__()
        self.autostart = autostart
        self.quit_after = False
        self.title_text = title
        self.subtitle = subtitle
        self.start = start
        self.ready = ready
        self.cancel = cancel
        self.state = "running"  # running -> cancelling | failed | done
        self.steps: dict[str, str] = {}
        self.current = ""
        self.began = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        with Center(id="prov-center"), Vertical(id="prov-box"):
            yield Label(f"Preparing [b]{escape(self.title_text)}[/]", id="prov-title")
            yield Label(escape(self.subtitle), id="prov-subtitle")
            yield ProgressBar(total=len(PHASES), show_eta=False, id="prov-bar")
            yield Static("", id="prov-steps")
            yield Label("", id="prov-elapsed")
            yield Static("", id="prov-error")
        yield Footer()

    def on_mount(self) -> None:
        self.began = self.app.clock()
        self.set_interval(1, self.show_elapsed)
        self.show_steps()
        self.show_elapsed()
        if self.autostart:
            self.run_start()

    def show_elapsed(self) -> None:
        if self.state in ("running", "cancelling"):
            seconds = max(0.0, self.app.clock() - self.began)
            note = " · cancelling: cleaning up when the current step ends" \
                if self.state == "cancelling" else " · Esc cancels"
            self.query_one("#prov-elapsed", Label).update(f"elapsed {fmt.duration(seconds)}{note}")

    def show_steps(self) -> None:
        names = [p for p in PHASES if p in self.steps or p in ("nodes", "etcd", "setup", "ready")]
        names += [n for n in self.steps if n not in names]
        order = {n: i for i, n in enumerate(names)}
        current = order.get(self.current, -1)
        lines = []
        for name in names:
            detail = escape(self.steps.get(name, ""))
            if self.state == "failed" and name == self.current:
                lines.append(f"[red]✘[/] [b]{name:<13}[/] {detail}")
            elif order[name] < current or (name == self.current and name == "ready"):
                lines.append(f"[green]✔[/] {name:<13} [dim]{detail}[/]")
            elif name == self.current:
                lines.append(f"[yellow]▶[/] [b]{name:<13}[/] {detail}")
            else:
                lines.append(f"[dim]·  {name}[/]")
        self.query_one("#prov-steps", Static).update("\n".join(lines))
        bar = self.query_one(ProgressBar)
        bar.update(total=len(names), progress=current + (1 if self.current == "ready" else 0))

    @work(thread=True, exit_on_error=False, group="provision")
    def run_start(self) -> None:
        messages.post_outcome(self, lambda: self.start(lambda step: self.post_message(self.Progressed(step))),
                              self.Ready, self.Failed, hint="run `cka-sim doctor`; report it if it persists")

    @work(thread=True, exit_on_error=False, group="provision")
    def run_cancel(self, result: Any) -> None:
        try:
            self.cancel(result)
        finally:
            self.post_message(self.CleanedUp())

    def on_provisioning_screen_progressed(self, message: Progressed) -> None:
        step = message.step
        name = "setup" if step.name == "setup" else step.name
        self.steps[name] = step.detail
        self.current = name
        self.show_steps()
        self.show_elapsed()

    def on_provisioning_screen_ready(self, message: Ready) -> None:
        if self.state == "cancelling":
            self.run_cancel(message.result)
            return
        self.state = "done"
        self.app.switch_screen(self.ready(message.result))

    def on_provisioning_screen_failed(self, message: Failed) -> None:
        if self.state == "cancelling":
            self.leave()
            return
        self.state = "failed"
        self.show_steps()
        elapsed = fmt.duration(self.app.clock() - self.began)
        self.query_one("#prov-elapsed", Label).update(f"failed after {elapsed}")
        text = f"[b red]Could not start[/]\n{escape(message.message)}"
        if message.hint:
            text += f"\n[dim]hint:[/] {escape(message.hint)}"
        text += "\n\n[dim]r retries · Esc goes back[/]"
        self.query_one("#prov-error", Static).update(text)
        self.query_one("#prov-error").add_class("-shown")
        self.refresh_bindings()

    def on_provisioning_screen_cleaned_up(self) -> None:
        self.leave()

    def leave(self) -> None:
        """Back to the previous screen, or out of the app when the learner asked to quit."""
        if self.quit_after:
            self.app.exit()
        else:
            self.dismiss()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.state == "failed"
        return True

    def action_cancel(self) -> None:
        if self.state == "running":
            self.state = "cancelling"
            self.show_elapsed()
            self.refresh_bindings()
        elif self.state == "failed":
            self.dismiss()

    def action_retry(self) -> None:
        if self.state != "failed":
            return
        self.state = "running"
        self.steps.clear()
        self.current = ""
        self.began = self.app.clock()
        self.query_one("#prov-error", Static).update("")
        self.query_one("#prov-error").remove_class("-shown")
        self.show_steps()
        self.refresh_bindings()
        self.run_start()
