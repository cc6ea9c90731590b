"""The setup steps of a scenario, applied before the clock starts.

Each step kind maps onto the Node API or a registered fault, so setup works unchanged on
every driver. Values reach commands through argv and the environment, never a shell string.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from simulator import registry
from simulator.cluster import kubeadm
from simulator.cluster.node import Cluster
from simulator.errors import CheckError, ClusterError


def describe(step: Any) -> str:
    """A short line naming what the step does, for progress displays."""
    if step.apply is not None:
        return "applying objects"
    if step.snapshot is not None:
        return f"taking an etcd snapshot to {step.snapshot.path}"
    if step.fault is not None:
        return f"injecting fault {step.fault}"
    if step.run is not None:
        return "running a setup script"
    if step.file is not None:
        return f"writing {step.file.path}"
    if step.record is not None:
        return f"recording {step.record}"
    return "setup"


def _context(step: Any, cluster: Cluster, values: dict[str, Any],
             state: dict[str, Any]) -> registry.Context:
    return registry.Context(cluster, node_name=step.node or cluster.nodes[0].name,
                            vars=values, state=state)


def apply(step: Any, cluster: Cluster, values: dict[str, Any], state: dict[str, Any]) -> None:
    """Carry out one setup step; ClusterError naming the step when it fails."""
    ctx = _context(step, cluster, values, state)
    if step.apply is not None:
        registry.get_fault("kube.apply")(ctx, objects=step.apply)
    elif step.snapshot is not None:
        take_snapshot(ctx, step.snapshot.path)
    elif step.fault is not None:
        fn = registry.get_fault(step.fault)
        registry.check_params(fn, "fault", step.fault, step.with_)
        fn(ctx, **step.with_)
    elif step.run is not None:
        ctx.run(["bash", "-c", step.run], env=dict(step.env or {}), timeout=120).check()
    elif step.file is not None:
        ctx.node.write_file(step.file.path, step.file.content.encode(), step.file.mode)
    elif step.record is not None:
        record(ctx, step.record)


def take_snapshot(ctx: registry.Context, path: str) -> None:
    """Save an etcd snapshot at ``path`` on the node, as a learner would."""
    ctx.run(["mkdir", "-p", posixpath.dirname(path) or "/"]).check()
    kubeadm.etcdctl(ctx.node, "snapshot", "save", path, timeout=60).check()


def etcd_revision(ctx: registry.Context) -> int:
    """The current revision of the etcd the node's static pod serves."""
    done = kubeadm.etcdctl(ctx.node, "endpoint", "status", "-w", "json").check()
    try:
        return int(json.loads(done.out)[0]["Status"]["header"]["revision"])
    except (ValueError, KeyError, IndexError) as exc:
        raise ClusterError("could not read etcd's revision",
                           hint=f"etcdctl endpoint status printed: {done.out[:200]!r}") from exc


def record(ctx: registry.Context, what: str) -> None:
    """Record a fact about the fresh cluster in the attempt state for checkers."""
    if what == "revision":
        ctx.state["setup_revision"] = etcd_revision(ctx)
    else:
        raise CheckError(f"cannot record {what!r}", hint="record: revision")


def problems(scenario: Any) -> list[str]:
    """Names in setup steps that no registered fault answers to."""
    out = []
    for i, step in enumerate(scenario.setup):
        names = [step.fault] if step.fault is not None else []
        if step.apply is not None:
            names.append("kube.apply")
        for name in names:
            try:
                fn = registry.get_fault(name)
                if name == step.fault:
                    registry.check_params(fn, "fault", name, step.with_)
            except CheckError as exc:
                out.append(f"setup[{i}]: {exc.message} ({exc.hint})")
        if step.record is not None and step.record != "revision":
            out.append(f"setup[{i}]: cannot record {step.record!r} (known: revision)")
    return out
