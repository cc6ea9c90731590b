"""The catalog: every scenario and exam cka-sim can offer, built-in and the user's own.

Sources, in order: the built-in pack (``simulator/scenarios`` in the wheel, ``scenarios/``
in a source checkout), directories passed in (``--scenarios DIR``), the ``CKA_SIM_SCENARIOS``
environment variable (``os.pathsep``-separated) and ``paths.user_scenarios_dir()``.
Directories are searched recursively for ``*.yaml`` / ``*.yml``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from simulator import paths
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

ENV_VAR = "CKA_SIM_SCENARIOS"


def builtin_dir() -> Path | None:
    """The built-in scenario pack: inside the installed package, else the source checkout's."""
    shipped = resources.files("simulator") / "scenarios"
    if shipped.is_dir():
        return Path(str(shipped))
    checkout = Path(__file__).resolve().parent.parent / "scenarios"
    return checkout if checkout.is_dir() else None


def _env_dirs() -> list[Path]:
    raw = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _yaml_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield path


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
        """Load every source (see the module docstring).

        A broken file does not hide the rest: its problems go to ``problems`` and the file is
        skipped; with ``strict`` a ScenarioError listing all of them is raised after loading.
        Raises CatalogError when two files share an id (naming both) or when an explicitly
        given directory does not exist.
        """
        catalog = cls()
        given = [Path(d).expanduser() for d in extra_dirs]
        for source, dirs in (("--scenarios", given), (ENV_VAR, _env_dirs())):
            for d in dirs:
                if not d.exists():
                    raise CatalogError(f"scenario directory {d} does not exist (from {source})",
                                       hint="create it or fix the path")
        explicit = given + _env_dirs()
        roots: list[Path] = []
        if builtin and (shipped := builtin_dir()) is not None:
            roots.append(shipped)
        roots += explicit
        user = paths.user_scenarios_dir()
        if user.is_dir():
            roots.append(user)

        seen_dirs: set[Path] = set()
        seen_files: set[Path] = set()
        origin: dict[str, Path] = {}
        for root in roots:
            if root.resolve() in seen_dirs:
                continue
            seen_dirs.add(root.resolve())
            catalog.dirs.append(root)
            for path in _yaml_files(root):
                if path.resolve() in seen_files:
                    continue
                seen_files.add(path.resolve())
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
