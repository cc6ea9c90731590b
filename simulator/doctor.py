"""The machine: what it supports, fetching what a driver needs, and the clean-up of
clusters a killed cka-sim left behind."""

from __future__ import annotations

from pathlib import Path

from simulator.cluster import DRIVERS, get_driver
from simulator.cluster.node import Progress
from simulator.errors import SimError


def setup(driver: str, progress: Progress, *, everything: bool = False) -> dict[str, Path]:
    """Fetch the programs ``driver`` needs (with ``everything``, also those only some
    tasks need); their paths by name. Raises BinaryMissing when one cannot be had."""
    return get_driver(driver).setup(progress, everything=everything)


def report() -> list[tuple[str, bool, str]]:
    """(name, ok, detail) lines for ``cka-sim doctor``, driver by driver; details of
    failures are hints."""
    lines: list[tuple[str, bool, str]] = []
    for name in DRIVERS:
        try:
            lines += get_driver(name).doctor()
        except SimError as exc:
            lines.append((f"{name} driver", False, f"{exc.message}; {exc.hint}"))
    return lines


def clean_leftovers() -> list[str]:
    """Remove every cluster but the active session's (a killed CLI or TUI, a half-made
    cluster, stray processes), and a session file whose local cluster is gone."""
    from simulator.session import Session, session_file

    drivers = [get_driver(name) for name in DRIVERS]
    try:
        session = Session.load()
    except SimError:
        session_file().unlink(missing_ok=True)
        return [line for d in drivers for line in d.clean()] + ["an unreadable session file"]
    keep = {session.cluster_name} if session is not None and session.status != "provisioning" else set()
    removed = [line for d in drivers for line in d.clean(keep=keep)]
    if session is not None and session.driver == "local":
        alive = {c.name for c in get_driver("local").list() if c.state == "running"}
        if session.cluster_name not in alive:
            session_file().unlink(missing_ok=True)
            removed.append(f"session {session.scenario} (its cluster {session.cluster_name} is gone)")
    return removed
