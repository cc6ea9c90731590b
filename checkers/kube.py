"""Checkers through the Kubernetes API: readiness, nodes, and single objects by name.

Every call is ``kubectl`` inside the node with ``/etc/kubernetes/admin.conf`` and a short
request timeout, so an API server that is down gives a quick verdict that says why.
Objects are fetched by name, never listed: after an etcd restore the API server's watch
cache can lag behind etcd on lists, while a GET by name reads etcd (REFERENCE.md).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import yaml

from checkers.etcd import get_field
from simulator.cluster import kubeadm
from simulator.cluster.node import Completed, kube_nodes
from simulator.registry import CheckResult, Context, checker

REQUEST_TIMEOUT = "5s"
KUBECTL = ("kubectl", f"--kubeconfig={kubeadm.ADMIN_CONF}", f"--request-timeout={REQUEST_TIMEOUT}")
CRICTL_HINT = "`crictl ps -a` and `crictl logs <id>` on the node show why"


_UNREACHABLE = ("unable to connect to the server", "was refused", "connection refused",
                "connection reset", "i/o timeout", "deadline exceeded", "timeout exceeded",
                "no route to host")


def kubectl(ctx: Context, *args: str) -> Completed:
    """Run kubectl in the node as the cluster admin, giving up on the API after 5 s.

    Within one grading (a context with ``seen``), once the API server could not be
    reached from this node, later calls get that same failure at once: kubectl retries a
    connection the API server resets until its timeout, and every check would wait those
    5 s again for the same verdict."""
    key = ("kubectl unreachable", ctx.node_name)
    if ctx.seen is not None and key in ctx.seen:
        return ctx.seen[key]
    done = ctx.run([*KUBECTL, *args], timeout=30)
    if (ctx.seen is not None and not done.ok
            and any(word in (done.err or done.out).lower() for word in _UNREACHABLE)):
        ctx.seen[key] = done
    return done


def api_server(ctx: Context) -> str:
    """The API server URL in admin.conf (``the API server`` when unreadable)."""
    try:
        doc = yaml.safe_load(ctx.node.read_file(kubeadm.ADMIN_CONF))
        return str(doc["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return "the API server"


def explain_failure(ctx: Context, done: Completed) -> str:
    """Why a kubectl call failed, in words that say where to look."""
    text = (done.err or done.out).strip()
    low = text.lower()
    if "admin.conf" in low and "no such file" in low:
        return f"{kubeadm.ADMIN_CONF} is missing, so kubectl cannot reach the cluster"
    server = api_server(ctx)
    where = f"the API server at {server}" if server.startswith("http") else "the API server"
    if "refused" in low and "connection" in low:
        return f"{where} refuses connections: is kube-apiserver running? ({CRICTL_HINT})"
    if "timeout" in low or "deadline exceeded" in low or "timed out" in low:
        return (f"{where} did not answer within {REQUEST_TIMEOUT}: it may be starting or unable "
                f"to reach etcd (check --etcd-servers in {kubeadm.APISERVER_MANIFEST}; {CRICTL_HINT})")
    if "x509" in low or "certificate" in low:
        return f"TLS with {where} fails ({_last_line(text)}): check the certificates in {kubeadm.PKI}"
    if "connection reset" in low or "eof" in low.split():
        return f"{where} dropped the connection: it is starting or restarting ({CRICTL_HINT})"
    if "forbidden" in low:
        return (f"{where} answers Forbidden for the admin user of {kubeadm.ADMIN_CONF}: it is still "
                f"starting (its RBAC roles are not loaded yet) or cannot read them from etcd")
    if "unauthorized" in low:
        return f"{where} rejects the credentials of {kubeadm.ADMIN_CONF} ({_last_line(text)})"
    if "no route to host" in low or "no such host" in low:
        return f"{where} cannot be reached ({_last_line(text)})"
    return f"kubectl failed: {_last_line(text) or f'exit code {done.returncode}'}"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _failed_readyz(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"\[-\]([^\s\]]+) failed", text.replace("\\n", "\n"))]


@checker("kube.ready")
def ready(ctx: Context) -> CheckResult:
    """The API server answers ``/readyz`` with ok (asked with admin.conf)."""
    done = kubectl(ctx, "get", "--raw", "/readyz?verbose")
    if done.ok and ("readyz check passed" in done.out or done.out.strip() == "ok"):
        return CheckResult(True, f"the API server at {api_server(ctx)} is ready")
    failed = _failed_readyz(done.out + done.err)
    if failed:
        why = ", ".join(failed)
        hint = (f": it cannot use etcd; check --etcd-servers and the etcd certificate flags in "
                f"{kubeadm.APISERVER_MANIFEST} and that etcd is healthy") if "etcd" in why else ""
        return CheckResult(False, f"the API server answers but is not ready: {why} failed{hint}")
    return CheckResult(False, explain_failure(ctx, done))


def _object_name(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def get_object(ctx: Context, kind: str, name: str,
               namespace: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) when found; (None, None) when NotFound; (None, why) when the API
    cannot answer. One GET by name."""
    args = ["get", kind, name, "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    done = kubectl(ctx, *args)
    if done.ok:
        try:
            return json.loads(done.out), None
        except json.JSONDecodeError:
            return None, f"kubectl printed something that is not JSON: {done.out[:200]!r}"
    err = done.err
    if "(NotFound)" in err:
        return None, None
    if "doesn't have a resource type" in err:
        return None, (f"the API server has no resource type {kind!r} "
                      "(`kubectl api-resources` lists the kinds)")
    return None, explain_failure(ctx, done)


def _terminating(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata", {})
    since = meta.get("deletionTimestamp")
    if not since:
        return None
    finalizers = list(meta.get("finalizers") or []) + list((obj.get("spec") or {}).get("finalizers") or [])
    tail = f", waiting on finalizers {', '.join(finalizers)}" if finalizers else ""
    return f"is being deleted (Terminating since {since}{tail})"


@checker("kube.exists")
def exists(ctx: Context, kind: str, name: str, namespace: str | None = None) -> CheckResult:
    """The object exists (fetched by name) and is not being deleted."""
    what = _object_name(kind, name, namespace)
    obj, problem = get_object(ctx, kind, name, namespace)
    if problem:
        return CheckResult(False, f"could not look up {what}: {problem}")
    if obj is None:
        return CheckResult(False, f"{what} does not exist")
    terminating = _terminating(obj)
    if terminating:
        return CheckResult(False, f"{what} exists but {terminating}")
    created = obj.get("metadata", {}).get("creationTimestamp")
    return CheckResult(True, f"{what} exists" + (f" (created {created})" if created else ""))


@checker("kube.absent")
def absent(ctx: Context, kind: str, name: str, namespace: str | None = None) -> CheckResult:
    """The object does not exist (a GET by name answers NotFound)."""
    what = _object_name(kind, name, namespace)
    obj, problem = get_object(ctx, kind, name, namespace)
    if problem:
        return CheckResult(False, f"could not look up {what}: {problem}")
    if obj is None:
        return CheckResult(True, f"{what} does not exist, as expected")
    terminating = _terminating(obj)
    if terminating:
        return CheckResult(False, f"{what} still exists: it {terminating}")
    return CheckResult(False, f"{what} still exists (expected it gone)")


_MISSING = object()


def _normalize_path(path: str) -> str:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    return path.lstrip(".")


def _same(found: Any, expected: Any) -> bool:
    if isinstance(expected, (dict, list)) or isinstance(found, (dict, list)):
        return found == expected
    if isinstance(expected, bool) or isinstance(found, bool):
        return str(found).lower() == str(expected).lower()
    return str(found) == str(expected)


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@checker("kube.field")
def field(ctx: Context, kind: str, name: str, path: str, namespace: str | None = None,
          equals: Any = _MISSING, contains: Any = None) -> CheckResult:
    """A field of the object (fetched by name) equals a value or contains a text or item.

    ``path`` is dotted with optional selectors: ``spec.replicas``,
    ``spec.containers[0].image``, ``spec.containers[name=web].image``,
    ``metadata.labels.app``. Without ``equals``/``contains`` the field must merely exist.
    """
    what = _object_name(kind, name, namespace)
    obj, problem = get_object(ctx, kind, name, namespace)
    if problem:
        return CheckResult(False, f"could not look up {what}: {problem}")
    if obj is None:
        return CheckResult(False, f"{what} does not exist, so it has no {path}")
    found = get_field(obj, _normalize_path(path))
    if found is None:
        return CheckResult(False, f"{what} has no {path}")
    if equals is not _MISSING and not _same(found, equals):
        return CheckResult(False, f"{path} of {what} is {_show(found)}, expected {_show(equals)}")
    if contains is not None:
        if isinstance(found, list):
            ok = any(_same(item, contains) for item in found)
        elif isinstance(found, dict):
            ok = str(contains) in found
        else:
            ok = str(contains) in str(found)
        if not ok:
            return CheckResult(False, f"{path} of {what} is {_show(found)}, expected it to contain "
                                      f"{_show(contains)}")
    return CheckResult(True, f"{path} of {what} is {_show(found)}")


def _ready_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


@checker("kube.nodes_ready")
def nodes_ready(ctx: Context, count: int | None = None) -> CheckResult:
    """The cluster's nodes are registered and Ready (fetched by name).

    Without ``count`` every node of the cluster must be Ready; with it, at least ``count``.
    """
    names = [n.name for n in kube_nodes(ctx.cluster)]
    done = kubectl(ctx, "get", "nodes", *names, "-o", "json")
    if not done.ok and "(NotFound)" not in done.err:
        return CheckResult(False, f"could not look up the nodes: {explain_failure(ctx, done)}")
    try:
        doc = json.loads(done.out) if done.out.strip() else {}
    except json.JSONDecodeError:
        return CheckResult(False, f"kubectl printed something that is not JSON: {done.out[:200]!r}")
    items = doc.get("items", [doc] if doc.get("kind") == "Node" else [])
    seen = {item.get("metadata", {}).get("name"): item for item in items}
    ready_names, problems = [], []
    for name in names:
        node = seen.get(name)
        if node is None:
            problems.append(f"{name} is not registered (is its kubelet running?)")
            continue
        cond = _ready_condition(node)
        if cond and cond.get("status") == "True":
            ready_names.append(name)
        elif cond is None:
            problems.append(f"{name} has no Ready condition yet")
        else:
            why = cond.get("message") or cond.get("reason") or "no reason given"
            problems.append(f"{name} is NotReady ({why})")
    wanted = len(names) if count is None else count
    if len(ready_names) >= wanted and (count is not None or not problems):
        return CheckResult(True, f"{len(ready_names)} node(s) Ready: {', '.join(ready_names)}")
    expected = "all" if count is None else f"at least {count}"
    return CheckResult(False, f"{len(ready_names)} of {len(names)} node(s) Ready, expected {expected}"
                              + (f": {'; '.join(problems)}" if problems else ""))


RUNTIME_GRACE = 15.0
"""How long :func:`pods_running` waits for the nodes' runtimes to start pods the API already
lists as Running (restored from a backup with their old status): a kubelet needs a moment."""


def _running_uids(node: Any) -> set[str] | None:
    """Pod uids with a running container on ``node``, as its runtime lists them (``crictl``)."""
    done = node.run(["crictl", "ps", "-o", "json"], timeout=20)
    if not done.ok:
        return None
    try:
        listed = json.loads(done.out).get("containers") or []
    except (json.JSONDecodeError, AttributeError):
        return None
    return {str((c.get("labels") or {}).get("io.kubernetes.pod.uid", "")) for c in listed
            if c.get("state") == "CONTAINER_RUNNING"}


@checker("kube.pods_running")
def pods_running(ctx: Context, kind: str, name: str, namespace: str = "default",
                 count: int | None = None) -> CheckResult:
    """The pods of a Deployment, ReplicaSet, StatefulSet or DaemonSet run: at least ``count``
    (default: its ``spec.replicas``, 1 for a DaemonSet) are Running and Ready through the API
    and have a running container in their node's runtime (``crictl ps``), so a status that
    only says Running does not pass."""
    obj, why = get_object(ctx, kind, name, namespace)
    what = _object_name(kind, name, namespace)
    if obj is None:
        return CheckResult(False, why or f"{what} does not exist")
    spec = obj.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return CheckResult(False, f"{what} has no spec.selector.matchLabels to find its pods by")
    wanted = count if count is not None else int(spec.get("replicas", 1) if "replicas" in spec else 1)
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    deadline = time.monotonic() + RUNTIME_GRACE
    while True:
        done = kubectl(ctx, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")
        if not done.ok:
            return CheckResult(False, f"could not list the pods of {what}: {explain_failure(ctx, done)}")
        try:
            items = json.loads(done.out).get("items") or []
        except (json.JSONDecodeError, AttributeError):
            return CheckResult(False, f"kubectl printed something that is not JSON: {done.out[:200]!r}")
        listed = [p for p in items if not (p.get("metadata") or {}).get("deletionTimestamp")
                  and (p.get("status") or {}).get("phase") == "Running"
                  and any(c.get("type") == "Ready" and c.get("status") == "True"
                          for c in (p.get("status") or {}).get("conditions") or [])]
        runtimes: dict[str, set[str] | None] = {}
        confirmed = []
        for p in listed:
            node = str((p.get("spec") or {}).get("nodeName") or "")
            if node not in runtimes:
                member = next((n for n in kube_nodes(ctx.cluster) if n.name == node), None)
                runtimes[node] = _running_uids(member) if member is not None else None
            if p["metadata"].get("uid") in (runtimes[node] or set()):
                confirmed.append(p["metadata"]["name"])
        if len(confirmed) >= wanted:
            return CheckResult(True, f"{len(confirmed)} pod(s) of {what} run: {', '.join(sorted(confirmed))}")
        if len(listed) <= len(confirmed) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    states = sorted({_pod_state(p) for p in items}) or ["none"]
    unconfirmed = len(listed) - len(confirmed)
    extra = (f"; {unconfirmed} listed as Running have no running container on their node"
             if unconfirmed else "")
    return CheckResult(False, f"{len(confirmed)} of {wanted} pod(s) of {what} run "
                              f"(pods: {len(items)}, states: {', '.join(states)}){extra}")


def _pod_state(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason") or "Waiting")
    return str(status.get("phase") or "Unknown")
