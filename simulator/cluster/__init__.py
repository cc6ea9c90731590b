"""Practice clusters: the Node API (``node.py``) and its drivers (``local``, ``kind``)."""

from __future__ import annotations

from simulator.cluster.node import Driver
from simulator.errors import ClusterError

DRIVERS = ("local", "kind")


def get_driver(name: str) -> Driver:
    """Return the driver registered under ``name`` (``local`` or ``kind``)."""
    if name == "local":
        from simulator.cluster.local.driver import LocalDriver

        return LocalDriver()
    if name == "kind":
        from simulator.cluster.kind.driver import KindDriver

        return KindDriver()
    raise ClusterError(
        f"unknown driver {name!r}",
        hint=f"choose one of: {', '.join(DRIVERS)}",
    )
