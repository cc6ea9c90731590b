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


@fault("kube.delete")
def delete(ctx: Context, kind: str, name: str, namespace: str | None = None,
           wait: bool = True) -> None:
    """Delete one object by kind and name (namespaces included), waiting until it is gone."""
    argv = [*KUBECTL, "delete", kind, name, f"--wait={'true' if wait else 'false'}"]
    if namespace:
        argv += ["-n", namespace]
    ctx.run(argv, timeout=120).check()
