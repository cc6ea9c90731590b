"""The setup steps of a scenario, applied before the clock starts.

Each step kind maps onto the Node API or a registered fault, so setup works unchanged on
every driver. Values reach commands through argv and the environment, never a shell string.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
from typing import Any

from simulator import registry
from simulator.cluster import kubeadm
from simulator.cluster.node import Cluster, Node
from simulator.errors import CheckError, ClusterError
from simulator.scenario import ApplyStep, FaultStep, FileStep, RecordStep, RunStep, Scenario, SetupStep, SnapshotStep


def describe(step: SetupStep) -> str:
    """A short line naming what the step does, for progress displays."""
    if isinstance(step, ApplyStep):
        return "applying objects"
    if isinstance(step, SnapshotStep):
        return f"taking an etcd snapshot to {step.snapshot.path}"
    if isinstance(step, FaultStep):
        return f"injecting fault {step.fault}"
    if isinstance(step, RunStep):
        return "running a setup script"
    if isinstance(step, FileStep):
        return f"writing {step.file.path}"
    return f"recording {step.record}"


def node_address(node: Node) -> str:
    """The address ``node`` goes by in its cluster: the first address other than a loopback
    one that the node's ``/etc/hosts`` gives its name (every driver lists every node there,
    as the exam's clusters do)."""
    try:
        text = node.read_file("/etc/hosts").decode(errors="replace")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or node.name not in fields[1:]:
            continue
        try:
            if not ipaddress.ip_address(fields[0]).is_loopback:
                return fields[0]
        except ValueError:
            continue
    raise ClusterError(f"node {node.name} has no address for its name in /etc/hosts",
                       hint="the driver lists every node there; run `cka-sim doctor`, "
                            "then start the task again")


def bind_cluster_vars(scenario: Scenario, cluster: Cluster, values: dict[str, Any]) -> None:
    """Read the vars that come from the cluster (``node_ip``) into ``values`` and substitute
    them in ``scenario`` (an instantiated one), in place."""
    wanted = {name: node for name, node in scenario.cluster_vars.items() if name not in values}
    for name, node in wanted.items():
        values[name] = node_address(cluster.node(node))
    scenario.bind(values)


def _context(step: SetupStep, cluster: Cluster, values: dict[str, Any],
             state: dict[str, Any]) -> registry.Context:
    return registry.Context(cluster, node_name=step.node or cluster.nodes[0].name,
                            vars=values, state=state)


def apply(step: SetupStep, cluster: Cluster, values: dict[str, Any], state: dict[str, Any]) -> None:
    """Carry out one setup step; ClusterError naming the step when it fails."""
    ctx = _context(step, cluster, values, state)
    if isinstance(step, ApplyStep):
        registry.get_fault("kube.apply")(ctx, objects=step.apply)
    elif isinstance(step, SnapshotStep):
        take_snapshot(ctx, step.snapshot.path)
    elif isinstance(step, FaultStep):
        fn = registry.get_fault(step.fault)
        registry.check_params(fn, "fault", step.fault, step.with_)
        fn(ctx, **step.with_)
    elif isinstance(step, RunStep):
        ctx.run(["bash", "-c", step.run], env=dict(step.env), timeout=float(step.timeout)).check()
    elif isinstance(step, FileStep):
        ctx.run(["mkdir", "-p", posixpath.dirname(step.file.path)]).check()
        ctx.node.write_file(step.file.path, step.file.content.encode(), step.file.mode)
    elif isinstance(step, RecordStep):
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


def problems(scenario: Scenario) -> list[str]:
    """Names in setup steps that no registered fault answers to, or bad fault parameters."""
    out = []
    for i, step in enumerate(scenario.setup):
        if not isinstance(step, FaultStep):
            continue
        try:
            fn = registry.get_fault(step.fault)
            registry.check_params(fn, "fault", step.fault, step.with_)
        except CheckError as exc:
            out.append(f"setup[{i}]: {exc.message} ({exc.hint})")
    return out
