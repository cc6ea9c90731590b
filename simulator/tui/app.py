"""The Textual app: the catalog, one attempt at a time, results, history and exams.

The app drives the session engine (``simulator.session``, ``simulator.exam``) and never a
driver. Blocking engine calls run in thread workers that post messages back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import work
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
    ``history`` default to the user's. ``first_rows`` (rows and problem count from
    ``catalog_index``) lets the catalog screen paint before the catalog is loaded.
    """

    CSS_PATH = "app.tcss"
    TITLE = "cka-sim"
    SUB_TITLE = "CKA practice on real etcd"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True, show=False)]

    def __init__(self, scenario_dirs: Iterable[Path | str] = (), *,
                 clock: Callable[[], float] = time.time, catalog: Catalog | None = None,
                 history: History | None = None, probe_docker: bool = True,
                 first_rows: tuple[list[dict[str, Any]], int] | None = None,
                 standby: bool | None = None) -> None:
        super().__init__()
        from simulator import standby as standby_mod

        # a cluster made while the learner reads the catalog (simulator.standby)
        self.standby = (standby_mod.Standby() if (standby_mod.enabled() if standby is None else standby)
                        else None)
        self.scenario_dirs = [Path(d) for d in scenario_dirs]
        self.clock = clock
        self._catalog = catalog
        self.first_rows = first_rows
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
            from simulator.tui import catalog_index

            found = catalog_index.fingerprint(self.scenario_dirs)
            self._catalog = Catalog.load(self.scenario_dirs)
            catalog_index.save(found, self._catalog)
        return self._catalog

    @property
    def catalog_loaded(self) -> bool:
        """Whether ``catalog`` is at hand without loading it."""
        return self._catalog is not None

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
            from simulator.session import caveats

            for caveat in caveats(catalog.get(scenario_id), driver):  # in the provisioning thread
                self.call_from_thread(self.notify, caveat, title="Before you start",
                                      severity="warning", timeout=20)
            if replace is not None:
                from simulator.cluster.node import Step

                progress(Step("nodes", 0, 1, "removing the previous cluster"))
                replace.stop()
            return Session.start(catalog, scenario_id, driver=driver, seed=seed, mode=mode,
                                 progress=progress, standby=self.standby)

        scenario = catalog.get(scenario_id)
        return ProvisioningScreen(
            scenario.title, start, ready=lambda session: TaskScreen(session),
            cancel=lambda session: session.stop(),
            subtitle=f"{scenario.id} · {mode} mode · {driver} driver")

    def keep_standby(self) -> None:
        """Have a cluster made in advance for the next task, on the embedded driver, unless
        one is ready or on its way, an exam runs, or the standby is off."""
        if self.standby is None or self.prefs.driver != self.standby.driver:
            return
        if any(exam.status in ("new", "running") for exam in self.exams):
            return
        self.standby.on_change = self._standby_changed
        self.standby.prepare()

    def _standby_changed(self) -> None:
        try:
            self.call_from_thread(self._show_standby)
        except RuntimeError:  # the app has ended
            pass

    def _show_standby(self) -> None:
        from simulator.tui.screens.catalog import CatalogScreen

        if isinstance(self.screen, CatalogScreen):
            self.screen.show_status()

    def discard_standby(self) -> None:
        """Remove the cluster made in advance, if any (on quitting)."""
        if self.standby is not None:
            self.standby.discard()

    def on_unmount(self) -> None:
        self.discard_standby()

    def get_default_screen(self):
        from simulator.tui.screens.catalog import CatalogScreen

        return CatalogScreen()

    async def action_quit(self) -> None:
        """Quit. A cluster still being made is cleaned up first; a running task's is kept
        (resume it later); for a submitted task's graded cluster the learner chooses."""
        from simulator.tui.screens.dialogs import QuitDialog
        from simulator.tui.screens.provisioning import ProvisioningScreen

        for screen in self.screen_stack:
            if isinstance(screen, ProvisioningScreen) and screen.state in ("running", "cancelling"):
                screen.quit_after = True
                screen.action_cancel()
                self.notify("Removing the cluster being made, then quitting…", timeout=30)
                return
        if isinstance(self.screen, QuitDialog) and self.screen.id == "quit-app":
            self.exit()  # Ctrl+Q again: quit, keeping the cluster
            return
        graded = self._graded_session()
        if graded is None:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "keep":
                self.exit()
            elif choice == "stop":
                self.notify("Removing the graded cluster, then quitting…", timeout=30)
                self._stop_then_exit(graded)

        self.push_screen(QuitDialog(
            graded.scenario, id="quit-app",
            question=f"Quit cka-sim? The graded cluster of [b]{escape(graded.scenario)}[/] is still running.",
            detail="Keep it to look around with `cka-sim shell` until `cka-sim stop`, or stop it "
                   "now. The attempt is saved either way."), chosen)

    def _graded_session(self) -> Session | None:
        """The active practice session if it was submitted (its cluster is still up)."""
        from simulator.errors import SimError
        from simulator.session import Session

        try:
            session = Session.load()
        except SimError:
            return None
        return session if session is not None and session.status == "submitted" else None

    @work(thread=True, exit_on_error=False, group="quit")
    def _stop_then_exit(self, session: Session) -> None:
        message = None
        try:
            session.stop()
        except Exception as exc:
            message = f"could not remove the cluster {session.cluster_name}: {exc}; run `cka-sim stop`"
        self.call_from_thread(self.exit, message=message)

    def show_error(self, message: str, hint: str = "") -> None:
        """A user-facing error as a toast: the message, then the hint."""
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
    from simulator.tui import catalog_index

    dirs = list(scenario_dirs)
    found = catalog_index.fingerprint(dirs)
    first_rows = catalog_index.load(found)
    if first_rows is not None:  # the same files loaded fine last time: load them after painting
        app = CkaSimApp(dirs, first_rows=first_rows)
    else:
        from simulator.catalog import Catalog

        catalog = Catalog.load(dirs)  # a SimError here is printed by the CLI
        catalog_index.save(found, catalog)
        app = CkaSimApp(dirs, catalog=catalog)
    try:
        app.run()
    finally:
        app.discard_standby()
        app.stop_exams()
