"""The catalog screen's rows, kept between runs so the first paint needs no scenario loaded.

Loading every scenario means importing the models and validating each file; the catalog
screen only needs a title, a few facts and a preview per row. After a full load those rows
are written to ``catalog-index.json`` in the data dir, with a fingerprint of the sources:
the cka-sim version, every source directory, and the path, size and modification time of
every file in them. The next start paints from the index when the fingerprint still
matches, then loads the catalog for real.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator import __version__, paths, sources
from simulator.errors import CatalogError
from simulator.tui import fmt

if TYPE_CHECKING:
    from simulator.catalog import Catalog
    from simulator.scenario import Exam, Scenario

FILE_NAME = "catalog-index.json"
FORMAT = 2  # 2: previews say the difficulty path
LEVELS = {"easy": 0, "medium": 1, "hard": 2}


def preview(model: Scenario | Exam, step: tuple[int, int] | None = None) -> str:
    """The markdown shown beside the catalog for a scenario or an exam; ``step`` is the
    scenario's place on the difficulty path (number, length)."""
    if model.kind == "exam":
        tasks = model.tasks or []
        listing = "\n".join(f"{i}. `{t.scenario}`" + (f" · {t.weight}%" if t.weight else "")
                            for i, t in enumerate(tasks, 1)) if tasks else \
            f"{model.sample.count} tasks drawn at random" + (
                f" from {', '.join(model.sample.domains)}" if model.sample.domains else "")
        return (f"# {model.title}\n\n**Exam** · {fmt.duration(model.duration)} · "
                f"pass mark {model.pass_mark}%\n\n{model.description}\n\n## Tasks\n\n{listing}\n")
    tags = " ".join(f"`{t}`" for t in model.tags)
    path = ""
    if step is not None:
        after = ", ".join(f"`{p}`" for p in model.prerequisites)
        path = f"Path: step {step[0]} of {step[1]}" + (f" · after {after}" if after else "") + "  \n"
    return (f"# {model.title}\n\n**{model.domain}** · {model.difficulty} · "
            f"{fmt.duration(model.time_limit)} · {model.cluster.control_planes} "
            f"control plane(s)  \n{path}{tags}\n\n{fmt.unrendered(model.task)}")


def rows(catalog: Catalog) -> list[dict[str, Any]]:
    """One row per scenario (by domain, level, id), then per exam (by id): what the catalog
    screen shows, without the learner's scores. A scenario's preview says its step on the
    difficulty path and its suggested prerequisites."""
    out: list[dict[str, Any]] = []
    path = catalog.path()
    steps = {sc.id: number for number, sc in enumerate(path, 1)}
    for sc in sorted(catalog.scenarios.values(),
                     key=lambda s: (s.domain, LEVELS.get(s.difficulty, 9), s.id)):
        out.append({"key": f"scenario:{sc.id}", "kind": "scenario", "id": sc.id, "title": sc.title,
                    "domain": sc.domain, "level": sc.difficulty, "time": sc.time_limit,
                    "preview": preview(sc, (steps[sc.id], len(path)))})
    for ex in sorted(catalog.exams.values(), key=lambda e: e.id):
        out.append({"key": f"exam:{ex.id}", "kind": "exam", "id": ex.id, "title": ex.title,
                    "domain": "exam", "level": "exam", "time": ex.duration, "preview": preview(ex)})
    return out


def fingerprint(dirs: Iterable[Path | str]) -> dict[str, Any] | None:
    """What the index is valid for; None when the sources cannot be listed (a full load
    reports why)."""
    try:
        roots = sources.roots(dirs)
        files = []
        for path in sources.files(roots):
            st = path.stat()
            files.append([str(path), st.st_size, st.st_mtime_ns])
    except (CatalogError, OSError):
        return None
    return {"format": FORMAT, "version": __version__, "roots": [str(r) for r in roots],
            "files": files}


def load(found: dict[str, Any] | None) -> tuple[list[dict[str, Any]], int] | None:
    """The indexed rows and the number of problems the full load met, if the index was
    written for the fingerprint ``found``; otherwise None."""
    if found is None:
        return None
    try:
        data = json.loads((paths.data_dir() / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != found:
        return None
    return data["rows"], data["problems"]


def save(found: dict[str, Any] | None, catalog: Catalog) -> None:
    """Index ``catalog``, loaded from the sources ``found`` describes (taken before the
    load, so a file changed meanwhile is never indexed as read); an unwritable data dir is
    no error."""
    if found is None:
        return
    path = paths.data_dir() / FILE_NAME
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"fingerprint": found, "rows": rows(catalog),
                                   "problems": len(catalog.problems)}))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
