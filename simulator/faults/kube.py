"""Faults through the Kubernetes API (kubectl in the node with admin.conf)."""

from __future__ import annotations

import json
from typing import Any

from simulator.cluster import kubeadm
from simulator.registry import Context, fault

KUBECTL = ["kubectl", f"--kubeconfig={kubeadm.ADMIN_CONF}"]

_SHORTHAND_API = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Pod": "v1", "Service": "v1",
    "ServiceAccount": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
}


def expand(obj: dict[str, Any]) -> dict[str, Any]:
    """Turn the scenario shorthand ``{kind, name, namespace, ...}`` into a full object."""
    if "metadata" in obj:
        return obj
    rest = {k: v for k, v in obj.items() if k not in ("kind", "name", "namespace", "apiVersion")}
    meta = {"name": obj["name"]}
    if obj.get("namespace"):
        meta["namespace"] = obj["namespace"]
    return {"apiVersion": obj.get("apiVersion") or _SHORTHAND_API.get(obj["kind"], "v1"),
            "kind": obj["kind"], "metadata": meta, **rest}


@fault("kube.apply")
def apply(ctx: Context, objects: dict[str, Any] | list[dict[str, Any]]) -> None:
    """``kubectl apply`` the given objects (full manifests or ``{kind, name}`` shorthand)."""
    items = objects if isinstance(objects, list) else [objects]
    doc = {"apiVersion": "v1", "kind": "List", "items": [expand(o) for o in items]}
    ctx.run([*KUBECTL, "apply", "-f", "-"], input=json.dumps(doc).encode(), timeout=60).check()


# What the namespace controller does to a deleted namespace, without the 5 s it waits
# before starting (namespaceDeletionGracePeriod, there for HA API servers to see the
# deletion): every namespaced object in it is deleted (pods with 1 s of grace: the state
# left is the same, without waiting 30 s for a process that ignores SIGTERM), its pods are
# waited for, and the namespace is finalized. Values come through the environment.
_EMPTY_NAMESPACE = r"""
set -e
k() { kubectl --kubeconfig="$CONF" "$@"; }
k delete namespace "$NS" --wait=false
kinds=$(k api-resources --namespaced --verbs=delete -o name | paste -sd, -)
k delete "$kinds" --all -n "$NS" --wait=false --ignore-not-found --grace-period=1 >/dev/null
end=$((SECONDS + 60))
until [ -z "$(k get pods -n "$NS" -o name 2>/dev/null)" ]; do
    (( SECONDS < end )) || { echo "pods in namespace $NS did not stop within 60 s" >&2; exit 1; }
    sleep 0.2
done
# the namespace controller may have finished first: then the namespace is gone already
if ! said=$(k replace --raw "/api/v1/namespaces/$NS/finalize" -f - 2>&1 >/dev/null); then
    if k get namespace "$NS" >/dev/null 2>&1; then echo "$said" >&2; exit 1; fi
fi
until ! k get namespace "$NS" >/dev/null 2>&1; do
    (( SECONDS < end )) || { echo "namespace $NS is still there after 60 s" >&2; exit 1; }
    sleep 0.2
done
"""


@fault("kube.delete")
def delete(ctx: Context, kind: str, name: str, namespace: str | None = None,
           wait: bool = True) -> None:
    """Delete one object by kind and name (namespaces included), waiting until it is gone.

    A namespace is emptied and finalized as the namespace controller does, without the
    5 s that controller waits before it starts: the state left is the same (the namespace
    and everything in it gone), reached in about a second.
    """
    if wait and kind.lower() in ("namespace", "namespaces", "ns") and not namespace:
        finalize = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                    "spec": {"finalizers": []}}
        ctx.run(["bash", "-c", _EMPTY_NAMESPACE], input=json.dumps(finalize).encode(),
                env={"NS": name, "CONF": kubeadm.ADMIN_CONF}, timeout=120).check()
        return
    argv = [*KUBECTL, "delete", kind, name, f"--wait={'true' if wait else 'false'}"]
    if namespace:
        argv += ["-n", namespace]
    ctx.run(argv, timeout=120).check()
