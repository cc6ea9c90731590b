"""Where scenario files come from, without reading them.

Sources, in order: the built-in pack (``simulator/scenarios`` in the wheel, ``scenarios/``
in a source checkout), directories passed in (``--scenarios DIR``), the ``CKA_SIM_SCENARIOS``
environment variable (``os.pathsep``-separated) and ``paths.user_scenarios_dir()``.
Directories are searched recursively for ``*.yaml`` / ``*.yml``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from simulator import paths
from simulator.errors import CatalogError

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


def yaml_files(root: Path) -> Iterator[Path]:
    """``root`` itself if it is a file, else every ``*.yaml`` / ``*.yml`` below it, sorted,
    skipping hidden files and directories."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield path


def roots(extra_dirs: Iterable[Path | str] = (), *, builtin: bool = True) -> list[Path]:
    """Every source directory in order, each once.

    Raises CatalogError when a directory given explicitly (``extra_dirs`` or the environment
    variable) does not exist.
    """
    given = [Path(d).expanduser() for d in extra_dirs]
    for source, dirs in (("--scenarios", given), (ENV_VAR, _env_dirs())):
        for d in dirs:
            if not d.exists():
                raise CatalogError(f"scenario directory {d} does not exist (from {source})",
                                   hint="create it or fix the path")
    found: list[Path] = []
    if builtin and (shipped := builtin_dir()) is not None:
        found.append(shipped)
    found += given + _env_dirs()
    user = paths.user_scenarios_dir()
    if user.is_dir():
        found.append(user)
    out: list[Path] = []
    seen: set[Path] = set()
    for root in found:
        if root.resolve() not in seen:
            seen.add(root.resolve())
            out.append(root)
    return out


def files(dirs: Iterable[Path]) -> Iterator[Path]:
    """Every scenario file under ``dirs`` in order, each once."""
    seen: set[Path] = set()
    for root in dirs:
        for path in yaml_files(root):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                yield path
