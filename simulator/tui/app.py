"""The Textual app: the catalog, one attempt at a time, results, history and exams.

The app drives the session engine (``simulator.session``, ``simulator.exam``) and never a
driver. Blocking engine calls run in thread workers that post messages back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from simulator.tui.prefs import Prefs

if TYPE_CHECKING:
    from simulator.catalog import Catalog
    from simulator.cluster.node import Step
    from simulator.history import History
    from simulator.session import Session
    from simulator.tui.screens.provisioning import ProvisioningScreen


class CkaSimApp(App[None]):
    """cka-sim's terminal UI.

    ``clock`` is the wall clock every countdown reads (tests freeze it); ``catalog`` and
    ``history`` default to the user's.
    """

    CSS_PATH = "app.tcss"
    TITLE = "cka-sim"
    SUB_TITLE = "CKA practice on real etcd"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True, show=False)]

    def __init__(self, scenario_dirs: Iterable[Path | str] = (), *,
                 clock: Callable[[], float] = time.time, catalog: Catalog | None = None,
                 history: History | None = None, probe_docker: bool = True) -> None:
        super().__init__()
        self.scenario_dirs = [Path(d) for d in scenario_dirs]
        self.clock = clock
        self._catalog = catalog
        self._history = history
        self.prefs = Prefs.load()
        self.drivers = ["local"]
        self.probe_docker = probe_docker
        self.exams: list = []
        if self.prefs.driver not in self.drivers and not probe_docker:
            self.prefs.driver = "local"

    @property
    def catalog(self) -> Catalog:
        """Every scenario and exam (loaded on first use)."""
        if self._catalog is None:
            from simulator.catalog import Catalog

            self._catalog = Catalog.load(self.scenario_dirs)
        return self._catalog

    @property
    def history(self) -> History:
        """The attempts store."""
        if self._history is None:
            from simulator.history import History

            self._history = History()
        return self._history

    def practice_screen(self, scenario_id: str, *, driver: str, mode: str,
                        seed: int | None = None, replace: Session | None = None
                        ) -> ProvisioningScreen:
        """A provisioning screen that starts one attempt and then shows its task.

        ``replace`` is a session to stop first (reset and retry). The app builds it, so the
        screens that lead to a task and the task screen need not import each other.
        """
        from simulator.session import Session
        from simulator.tui.screens.provisioning import ProvisioningScreen
        from simulator.tui.screens.task import TaskScreen

        catalog = self.catalog

        def start(progress: Callable[[Step], None]) -> Session:
            if replace is not None:
                from simulator.cluster.node import Step

                progress(Step("nodes", 0, 1, "removing the previous cluster"))
                replace.stop()
            return Session.start(catalog, scenario_id, driver=driver, seed=seed, mode=mode,
                                 progress=progress)

        scenario = catalog.get(scenario_id)
        return ProvisioningScreen(
            scenario.title, start, ready=lambda session: TaskScreen(session),
            cancel=lambda session: session.stop(),
            subtitle=f"{scenario.id} · {mode} mode · {driver} driver")

    def get_default_screen(self):
        from simulator.tui.screens.catalog import CatalogScreen

        return CatalogScreen()

    async def action_quit(self) -> None:
        """Quit; a cluster still being made is cleaned up first (a running one is kept)."""
        from simulator.tui.screens.provisioning import ProvisioningScreen

        for screen in self.screen_stack:
            if isinstance(screen, ProvisioningScreen) and screen.state in ("running", "cancelling"):
                screen.quit_after = True
                screen.action_cancel()
                self.notify("Removing the cluster being made, then quitting…", timeout=30)
                return
        self.exit()

    def show_error(self, message: str, hint: str = "") -> None:
        """A user-facing error as a toast: the message, then the hint."""
        from rich.markup import escape

        text = escape(message) + (f"\n[dim]hint: {escape(hint)}[/]" if hint else "")
        self.notify(text, title="Error", severity="error", timeout=8, markup=True)


    def stop_exams(self) -> None:
        """Remove the clusters of exams left running (an exam lives only in this process)."""
        for exam in self.exams:
            if exam.status != "stopped":
                exam.stop()
        self.exams.clear()


def run_app(scenario_dirs: Iterable[Path | str] = ()) -> None:
    """Open the TUI on the user's catalog; returns when the learner quits.

    A practice session survives the app (resume it later); exam clusters do not. Raises
    SimError (CatalogError) when the scenario directories cannot be loaded.
    """
    from simulator.catalog import Catalog

    dirs = list(scenario_dirs)
    app = CkaSimApp(dirs, catalog=Catalog.load(dirs))  # a SimError here is printed by the CLI
    try:
        app.run()
    finally:
        app.stop_exams()
