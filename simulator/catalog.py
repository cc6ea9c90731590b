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
from simulator.scenario.problems import format_path
from simulator.sources import ENV_VAR, builtin_dir

__all__ = ["ENV_VAR", "LEVELS", "Catalog", "builtin_dir"]

LEVELS = {"easy": 0, "medium": 1, "hard": 2}
"""Difficulty ranks, easy first: the order of the difficulty path."""


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
        catalog._check_prerequisites()
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

    def _check_prerequisites(self) -> None:
        """A scenario naming an unknown prerequisite, or one in a cycle, is reported and skipped."""
        known = set(self.scenarios)
        broken: set[str] = set()
        for sc_id, sc in self.scenarios.items():
            for i, before in enumerate(sc.prerequisites):
                if before not in known:
                    self._problem(sc, ("prerequisites", i),
                                  f"no scenario has the id {before!r}" + did_you_mean(before, known))
                    broken.add(sc_id)
        for sc_id in sorted(known - broken):
            loop = self._cycle_from(sc_id)
            if loop and sc_id not in broken:
                sc = self.scenarios[sc_id]
                index = sc.prerequisites.index(loop[1])
                self._problem(sc, ("prerequisites", index),
                              "prerequisites go round in a circle: " + " -> ".join(loop))
                broken.update(loop)
        for sc_id in broken:
            del self.scenarios[sc_id]

    def _cycle_from(self, start: str) -> list[str] | None:
        """A path of prerequisites from ``start`` back to itself, if there is one."""
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            current, path = stack.pop()
            for before in self.scenarios[current].prerequisites:
                if before == start:
                    return [*path, start]
                if before in self.scenarios and before not in seen:
                    seen.add(before)
                    stack.append((before, [*path, before]))
        return None

    def _problem(self, item: Scenario | Exam, loc: tuple[str | int, ...], message: str) -> None:
        file = str(item.source)
        line, column = locate(file, loc)
        self.problems.append(Problem(file, line, column, format_path(loc), message))

    def path(self) -> list[Scenario]:
        """The difficulty path: every scenario, easy to hard, each after its prerequisites.

        Among the scenarios whose prerequisites are all placed, the easiest comes next (then
        by domain and id), so a hard prerequisite pulls its followers after it.
        """
        placed: list[Scenario] = []
        done: set[str] = set()
        waiting = dict(self.scenarios)
        while waiting:
            ready = [s for s in waiting.values()
                     if all(p in done or p not in self.scenarios for p in s.prerequisites)]
            if not ready:  # only after a cycle slipped through: place the rest as they are
                ready = list(waiting.values())
            nxt = min(ready, key=lambda s: (LEVELS.get(s.difficulty, 9), s.domain, s.id))
            placed.append(nxt)
            done.add(nxt.id)
            del waiting[nxt.id]
        return placed

    def _check_exams(self) -> None:
        for exam_id, exam in list(self.exams.items()):
            file = str(exam.source)
            broken = False
            for i, task in enumerate(exam.task_ids):
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
