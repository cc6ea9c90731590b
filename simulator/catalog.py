"""The catalog: every scenario and exam cka-sim can offer, built-in and the user's own.

Where the files come from is ``simulator.sources``; a file that cannot be loaded does not
hide the others.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from pathlib import Path

from simulator import sources
from simulator.errors import CatalogError, ScenarioError
from simulator.scenario import (
    Exam,
    Problem,
    Scenario,
    did_you_mean,
    load_file,
    locate,
    validate_file,
)
from simulator.sources import ENV_VAR, builtin_dir

__all__ = ["ENV_VAR", "Catalog", "builtin_dir"]


@dataclasses.dataclass
class Catalog:
    """Scenarios and exams by id, the directories searched and the problems met on the way."""

    scenarios: dict[str, Scenario] = dataclasses.field(default_factory=dict)
    exams: dict[str, Exam] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    dirs: list[Path] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, extra_dirs: Iterable[Path | str] = (), *, builtin: bool = True,
             strict: bool = False) -> Catalog:
        """Load every source (see ``simulator.sources``).

        A broken file does not hide the rest: its problems go to ``problems`` and the file is
        skipped; with ``strict`` a ScenarioError listing all of them is raised after loading.
        Raises CatalogError when two files share an id (naming both) or when an explicitly
        given directory does not exist.
        """
        catalog = cls()
        catalog.dirs = sources.roots(extra_dirs, builtin=builtin)
        origin: dict[str, Path] = {}
        for path in sources.files(catalog.dirs):
            catalog._add(path, origin)
        catalog._check_exams()
        if strict:
            catalog.raise_problems()
        return catalog

    def _add(self, path: Path, origin: dict[str, Path]) -> None:
        try:
            item = load_file(path)
        except ScenarioError:
            self.problems += validate_file(path)
            return
        if item.id in origin:
            raise CatalogError(
                f"two files use the id {item.id!r}: {origin[item.id]} and {path}",
                hint="ids must be unique across the built-in pack and your directories; rename one")
        origin[item.id] = path
        if isinstance(item, Exam):
            self.exams[item.id] = item
        else:
            self.scenarios[item.id] = item

    def _check_exams(self) -> None:
        for exam_id, exam in list(self.exams.items()):
            file = str(exam.source)
            broken = False
            for i, task in enumerate(exam.tasks or []):
                if task not in self.scenarios:
                    line, column = locate(file, ("tasks", i))
                    self.problems.append(Problem(
                        file, line, column, f"tasks[{i}]",
                        f"no scenario has the id {task!r}" + did_you_mean(task, self.scenarios)))
                    broken = True
            if exam.sample is not None:
                domains = exam.sample.domains or None
                available = sum(1 for s in self.scenarios.values() if domains is None or s.domain in domains)
                if available < exam.sample.count:
                    line, column = locate(file, ("sample", "count"))
                    self.problems.append(Problem(
                        file, line, column, "sample.count",
                        f"samples {exam.sample.count} scenarios but only {available} are available"
                        + (f" in {', '.join(domains)}" if domains else "")))
                    broken = True
            if broken:
                del self.exams[exam_id]

    def raise_problems(self) -> None:
        """Raise a ScenarioError listing every problem met while loading, if there were any."""
        if self.problems:
            files = sorted({p.file for p in self.problems})
            raise ScenarioError(
                f"{len(self.problems)} problem(s) in {len(files)} scenario file(s)",
                hint="fix them, or check a single file with `cka-sim scenario validate FILE`",
                problems=[str(p) for p in self.problems])

    def get(self, scenario_id: str) -> Scenario:
        """The scenario ``scenario_id``; CatalogError with a did-you-mean hint otherwise."""
        try:
            return self.scenarios[scenario_id]
        except KeyError:
            raise self._unknown("scenario", scenario_id, self.scenarios) from None

    def get_exam(self, exam_id: str) -> Exam:
        """The exam ``exam_id``; CatalogError with a did-you-mean hint otherwise."""
        try:
            return self.exams[exam_id]
        except KeyError:
            raise self._unknown("exam", exam_id, self.exams) from None

    @staticmethod
    def _unknown(kind: str, wanted: str, known: dict[str, object]) -> CatalogError:
        close = difflib.get_close_matches(wanted, list(known), n=3)
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif known:
            hint = "`cka-sim list` shows every id"
        else:
            hint = f"no {kind}s were found; add a directory with --scenarios DIR"
        return CatalogError(f"no {kind} with the id {wanted!r}", hint=hint)

    def by_domain(self, domain: str) -> list[Scenario]:
        """Scenarios of one curriculum domain, sorted by id."""
        return sorted((s for s in self.scenarios.values() if s.domain == domain), key=lambda s: s.id)
