"""The catalog: every scenario and exam with the learner's best score, filter and preview."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Markdown, Static

from simulator.tui import catalog_index, fmt
from simulator.tui.catalog_index import LEVELS

if TYPE_CHECKING:
    from simulator.tui.app import CkaSimApp

__all__ = ["LEVELS", "CatalogScreen", "exam_scores"]
DOMAIN_LABELS = {
    "cluster-architecture": "Architecture",
    "workloads-scheduling": "Workloads",
    "services-networking": "Networking",
    "storage": "Storage",
    "troubleshooting": "Troubleshoot",
    "exam": "Exam",
}
FIXED_COLUMNS = 12 + 6 + 6 + 5 + 5 + 6 * 2 + 4
NARROW = 100


class FilterInput(Input):
    """The filter; Enter starts the highlighted row (after the keys typed before it)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "submit", "Start")]


class CatalogTable(DataTable):
    """The rows; Enter starts the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Start")]


def exam_scores(attempts: list[Any], recorded: list[Any] = ()) -> dict[str, list[float]]:  # type: ignore[assignment]
    """Per exam id: the percent of each sitting. A sitting the history recorded (``recorded``,
    its weighted percent) counts as recorded; an older one, from its tasks' attempts (they
    share a start time), as the percent of all points."""
    sittings: dict[tuple[str, float], list[int]] = {}
    for a in attempts:
        if a.exam:
            total = sittings.setdefault((a.exam, a.started_at), [0, 0])
            total[0] += a.score
            total[1] += a.max_score
    out: dict[str, list[float]] = {}
    weighted = {(x.exam, x.started_at): x.percent for x in recorded}
    for (exam, started), (score, max_score) in sittings.items():
        out.setdefault(exam, []).append(weighted.get((exam, started), fmt.percent(score, max_score)))
    return out


class CatalogScreen(Screen):
    """Pick a scenario or an exam; Enter starts it on the remembered driver and mode."""

    app: CkaSimApp

    BINDINGS: ClassVar[list[BindingType]] = [
        # not a priority binding: Enter must reach the filter after the keys typed before
        # it (the filter's Submitted follows its Changed), or under load it starts the row
        # highlighted before the last keys applied. The filter and the table show it.
        Binding("enter", "start", "Start"),
        Binding("f2", "driver", "Driver"),
        Binding("f3", "mode", "Mode"),
        Binding("f4", "history", "History"),
        Binding("f5", "resume", "Resume"),
        # the app's Ctrl+Q, shown here: letters go to the filter, so `q` cannot quit
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("down", "cursor(1)", show=False),
        Binding("up", "cursor(-1)", show=False),
    ]

    class DockerFound(Message):
        """A Docker engine answered: the kind driver can be offered."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.active = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="catalog-body"):
            with Vertical(id="catalog-left"):
                yield FilterInput(placeholder="Type to filter: title, id, domain, level", id="filter",
                                  select_on_focus=False)
                yield CatalogTable(id="catalog-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="catalog-status")
            with VerticalScroll(id="preview"):
                yield Markdown("", id="preview-md")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Title", key="title", width=self.title_width())
        table.add_column("Domain", key="domain", width=12)
        table.add_column("Level", key="level", width=6)
        table.add_column("Time", key="time", width=6)
        table.add_column("Best", key="best", width=5)
        table.add_column("Tries", key="tries", width=5)
        table.focus()
        first = self.app.first_rows
        if first is not None and not self.app.catalog_loaded:
            self.reload()
            self.call_after_refresh(self.load_catalog)
            problems = first[1]
        else:
            self.reload()
            problems = len(self.app.catalog.problems)
        if problems:
            self.notify(f"skipped {problems} broken scenario file(s); "
                        "`cka-sim scenario validate FILE` explains", severity="warning")
        if self.app.probe_docker:
            self.probe_docker()

    def load_catalog(self) -> None:
        """Load the catalog for real after painting it from the index."""
        from simulator.errors import SimError

        try:
            self.app.catalog
        except SimError as exc:
            self.app.show_error(exc.message, exc.hint)
            return
        self.reload()

    def title_width(self) -> int:
        total = self.app.size.width
        left = total if total < NARROW else total * 2 // 3
        return max(16, left - FIXED_COLUMNS)

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < NARROW, "-narrow")
        table = self.query_one(DataTable)
        width = self.title_width()
        column = next(iter(table.columns.values()), None)
        if column is not None and column.width != width:
            column.width = width
            self.refilter()

    def on_screen_resume(self) -> None:
        self.reload()

    # -- data --------------------------------------------------------------------------

    def static_rows(self) -> list[dict[str, Any]]:
        """The rows without scores: from the index until the catalog is loaded."""
        if not self.app.catalog_loaded and self.app.first_rows is not None:
            return self.app.first_rows[0]
        return catalog_index.rows(self.app.catalog)

    def reload(self) -> None:
        """Rebuild the rows from the catalog (or the index) and history, and look for an
        active session."""
        from simulator.errors import SimError
        from simulator.session import Session

        static = self.static_rows()
        best = self.app.history.best_scores()
        exams = self.app.history.attempts() if best and any(r["kind"] == "exam" for r in static) else []
        sittings_by_exam = exam_scores(exams, self.app.history.exam_sittings() if exams else [])
        rows: list[dict[str, Any]] = []
        for row in static:
            if row["kind"] == "exam":
                sittings = sittings_by_exam.get(row["id"], [])
                rows.append({**row, "best": max(sittings) if sittings else None, "tries": len(sittings)})
            else:
                score = best.get(row["id"])
                rows.append({**row, "best": None if score is None else fmt.percent(score[0], score[1]),
                             "tries": score[2] if score else 0})
        self.rows = rows
        try:
            self.active = Session.load()
        except SimError as exc:
            self.active = None
            self.app.show_error(exc.message, exc.hint)
        self.refilter()
        if self.active is None or self.active.status == "submitted":
            self.app.keep_standby()
            self.show_status()
        self.show_status()

    def refilter(self) -> None:
        """Show the rows matching every word typed in the filter."""
        words = self.query_one("#filter", Input).value.lower().split()
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for row in self.rows:
            haystack = " ".join(str(row[k]) for k in ("id", "title", "domain", "level", "kind")).lower()
            if all(w in haystack for w in words):
                best = row["best"]
                table.add_row(
                    Text(row["title"], style="bold" if row["kind"] == "exam" else "",
                         overflow="ellipsis", no_wrap=True),
                    DOMAIN_LABELS.get(row["domain"], row["domain"]), row["level"],
                    Text(fmt.duration(row["time"]), justify="right"),
                    Text("-" if best is None else f"{best:.0f}%", justify="right",
                         style="green" if best == 100 else ("yellow" if best else "")),
                    Text(str(row["tries"]), justify="right"),
                    key=row["key"],
                )
        if table.row_count:
            table.move_cursor(row=min(max(keep, 0), table.row_count - 1))
        self.show_preview()

    def selected(self) -> dict[str, Any] | None:
        """The highlighted row, if any."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.rows if r["key"] == key), None)

    def show_preview(self) -> None:
        row = self.selected()
        md = self.query_one("#preview-md", Markdown)
        md.update("*Nothing matches the filter.*" if row is None else row["preview"])

    def show_status(self) -> None:
        prefs = self.app.prefs
        line = f"[b]{prefs.driver}[/] driver (F2) · [b]{prefs.mode}[/] mode (F3)"
        if len(self.app.drivers) == 1 and self.app.size.width >= NARROW:
            line += " [dim]· kind needs Docker[/]"
        standby = self.app.standby
        if standby is not None and prefs.driver == standby.driver:
            if standby.ready:
                line += " · [b]a cluster is ready[/]"
            elif standby.making:
                line += " [dim]· making a cluster in advance[/]"
        active = self.active
        if active is not None and active.status != "submitted":
            if active.status == "running":
                left = active.remaining(self.app.clock())
                when = f"{fmt.clock(left)} left" if left > 0 else "time is up"
                line += f"\n[reverse] ACTIVE [/] {active.scenario} · {active.mode} · {when} — F5 resumes"
            else:
                line += f"\n[reverse] ACTIVE [/] {active.scenario} is {active.status}"
        self.query_one("#catalog-status", Static).update(line)

    # -- events ------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.refilter()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.action_start()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.show_preview()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_start()

    def on_key(self, event: events.Key) -> None:
        table = self.query_one(DataTable)
        if self.focused is table and event.is_printable and event.character:
            field = self.query_one("#filter", Input)
            field.insert_text_at_cursor(event.character)
            # filter now, not when Input.Changed arrives: an Enter typed right after must
            # start a row of the filtered list, not the row highlighted before the filter
            self.refilter()
            field.focus()
            event.stop()
            event.prevent_default()

    @work(thread=True, exit_on_error=False, group="docker")
    def probe_docker(self) -> None:
        from simulator.tui.prefs import docker_answers

        if docker_answers():
            self.post_message(self.DockerFound())

    def on_catalog_screen_docker_found(self) -> None:
        if "kind" not in self.app.drivers:
            self.app.drivers.append("kind")
        self.show_status()

    # -- actions -----------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=table.cursor_row + delta)

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(DataTable).focus()

    def action_driver(self) -> None:
        drivers = self.app.drivers
        prefs = self.app.prefs
        prefs.driver = drivers[(drivers.index(prefs.driver) + 1) % len(drivers)] \
            if prefs.driver in drivers else drivers[0]
        prefs.save()
        self.show_status()

    def action_mode(self) -> None:
        prefs = self.app.prefs
        prefs.mode = "exam" if prefs.mode == "practice" else "practice"
        prefs.save()
        self.show_status()

    def action_history(self) -> None:
        from simulator.tui.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":
            return self.active is not None and self.active.status == "running"
        return True

    def action_resume(self) -> None:
        from simulator.tui.screens.task import TaskScreen

        if self.active is None or self.active.status != "running":
            return
        self.app.push_screen(TaskScreen(self.active))

    def action_start(self) -> None:
        row = self.selected()
        if row is None:
            return
        prefs = self.app.prefs
        if prefs.driver not in self.app.drivers:
            prefs.driver = "local"
        if row["kind"] == "exam":
            from simulator.tui.screens.exam import start_exam

            start_exam(self.app, row["id"], prefs.driver)
            return
        if self.active is not None and self.active.status in ("running", "provisioning"):
            self.app.show_error(f"a session is already active: {self.active.scenario}",
                                "F5 resumes it; quit it with q and choose to stop the cluster")
            return
        self.app.push_screen(self.app.practice_screen(row["id"], driver=prefs.driver,
                                                      mode=prefs.mode))
