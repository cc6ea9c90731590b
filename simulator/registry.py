"""Checker and fault registries, filled through entry points.

A checker is ``fn(ctx, **params) -> CheckResult`` registered under a dotted name
(``snapshot.valid``); a fault is ``fn(ctx, **params) -> None``. Built-ins register through
the same entry-point groups third-party packs use: ``cka_sim.checkers`` and
``cka_sim.faults``. An entry point names a module (or callable); importing it runs the
``@checker`` / ``@fault`` decorators.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import threading
import tomllib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from simulator.cluster.node import Cluster, Completed, Node
from simulator.errors import CheckError

CHECKER_GROUP = "cka_sim.checkers"
FAULT_GROUP = "cka_sim.faults"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What a checker found: ``passed`` and a ``detail`` a learner can act on."""

    passed: bool
    detail: str = ""


@dataclasses.dataclass
class Context:
    """What a checker or fault gets: the cluster, the target node, the attempt's values.

    ``state`` is the attempt's scratch space, persisted with the session: a fault or
    setup step records facts there (``state["setup_revision"]``) for checkers to use.
    ``seen``, given by a grading to all its checks, lives as long as that grading: what
    one check learnt about the cluster that the next would wait for again (an API server
    that does not answer). Without it (faults, setup steps) every call asks afresh.
    """

    cluster: Cluster
    node_name: str = "controlplane"
    vars: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    seen: dict[Any, Any] | None = None

    @property
    def node(self) -> Node:
        return self.cluster.node(self.node_name)

    def on(self, node_name: str | None) -> Context:
        """The same context aimed at another node (``None`` keeps this one)."""
        if not node_name or node_name == self.node_name:
            return self
        return dataclasses.replace(self, node_name=node_name)

    def run(self, argv: list[str], *, env: dict[str, str] | None = None,
            timeout: float = 30, input: bytes | None = None) -> Completed:
        return self.node.run(argv, env=env, timeout=timeout, input=input)


Checker = Callable[..., CheckResult]
Fault = Callable[..., None]

_checkers: dict[str, Checker] = {}
_faults: dict[str, Fault] = {}
_loaded: set[str] = set()
_loading = threading.RLock()


def checker(name: str) -> Callable[[Checker], Checker]:
    """Register ``fn`` as the checker ``name``."""

    def register(fn: Checker) -> Checker:
        _checkers[name] = fn
        return fn

    return register


def fault(name: str) -> Callable[[Fault], Fault]:
    """Register ``fn`` as the fault ``name``."""

    def register(fn: Fault) -> Fault:
        _faults[name] = fn
        return fn

    return register


def _load(group: str) -> None:
    # Under a lock, and marked loaded only once loaded: threads grading side by side (the
    # gate plays several attempts at once) must not see a half-filled table.
    with _loading:
        if group in _loaded:
            return
        found = entry_points(group=group)
        for ep in found:
            ep.load()
        if not found:
            for target in _declared_entry_points(group):
                importlib.import_module(target.partition(":")[0])
        _loaded.add(group)


def _declared_entry_points(group: str) -> list[str]:
    """The targets pyproject.toml declares for ``group``: a source checkout run without
    installing the distribution has no entry-point metadata, and the built-ins load so."""
    try:
        with _PYPROJECT.open("rb") as fh:
            return list(tomllib.load(fh)["project"]["entry-points"][group].values())
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []


def checkers() -> dict[str, Checker]:
    """All registered checkers by name."""
    _load(CHECKER_GROUP)
    return dict(_checkers)


def faults() -> dict[str, Fault]:
    """All registered faults by name."""
    _load(FAULT_GROUP)
    return dict(_faults)


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
    try:
        return table[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, table, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known {kind}s: {', '.join(sorted(table))}"
        raise CheckError(f"unknown {kind} {name!r}", hint=hint) from None


def get_checker(name: str) -> Checker:
    return _lookup(checkers(), "checker", name)


def get_fault(name: str) -> Fault:
    return _lookup(faults(), "fault", name)


def check_params(fn: Callable[..., Any], kind: str, name: str, params: Mapping[str, Any]) -> None:
    """Raise CheckError when ``params`` do not fit ``fn``'s keyword parameters."""
    sig = inspect.signature(fn)
    accepted = [p for p in list(sig.parameters.values())[1:]]
    if any(p.kind is p.VAR_KEYWORD for p in accepted):
        return
    names = {p.name for p in accepted}
    unknown = sorted(set(params) - names)
    missing = sorted(p.name for p in accepted
                     if p.default is p.empty and p.kind is not p.VAR_POSITIONAL and p.name not in params)
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown parameter(s) {', '.join(unknown)}")
        if missing:
            parts.append(f"missing parameter(s) {', '.join(missing)}")
        raise CheckError(f"{kind} {name!r}: {'; '.join(parts)}",
                         hint=f"{name} takes: {', '.join(sorted(names)) or 'no parameters'}")
