"""Faults that edit or move static-pod manifests."""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from simulator.cluster import kubeadm, staticpod
from simulator.errors import CheckError
from simulator.registry import Context, fault


def manifest_path(component: str) -> str:
    return f"{kubeadm.MANIFESTS}/{component}.yaml"


def running_manifest(ctx: Context, component: str) -> str:
    """The file the kubelet runs ``component``'s static pod from (``<component>.yaml`` unless
    another file defines that pod first)."""
    pod = staticpod.node_pods(ctx.node).pod(component)
    return pod.file if pod is not None else manifest_path(component)


def load_manifest(ctx: Context, component: str) -> tuple[str, dict[str, Any]]:
    """(file, parsed static-pod manifest) of ``component`` on the context's node."""
    path = running_manifest(ctx, component)
    try:
        return path, yaml.safe_load(ctx.node.read_file(path))
    except FileNotFoundError:
        raise CheckError(f"{path} does not exist on {ctx.node_name}",
                         hint="is the component name right (etcd, kube-apiserver, ...)?") from None


@fault("manifest.set")
def manifest_set(ctx: Context, component: str, flag: str | None = None, value: str | None = None,
                 volume: str | None = None, host_path: str | None = None) -> None:
    """Set a command-line flag of the component's container, or a volume's hostPath."""
    path, pod = load_manifest(ctx, component)
    if flag is not None:
        container = pod["spec"]["containers"][0]
        container["command"] = staticpod.set_flag(list(container.get("command", [])), flag, value)
    if volume is not None:
        for vol in pod["spec"].get("volumes", []):
            if vol.get("name") == volume:
                vol.setdefault("hostPath", {})["path"] = host_path
                break
        else:
            raise CheckError(f"{component} has no volume {volume!r}",
                             hint="volumes of etcd are etcd-data and etcd-certs")
    if flag is None and volume is None:
        raise CheckError("manifest.set needs a flag or a volume", hint="with: {flag: ..., value: ...}")
    ctx.node.write_file(path, yaml.safe_dump(pod, sort_keys=False).encode(), 0o600)


@fault("manifest.move_out")
def manifest_move_out(ctx: Context, component: str, to: str = "/root",
                      leave_copy: str | None = None) -> None:
    """Move a manifest out of the manifests directory (its pod stops), optionally
    leaving a stray copy named ``leave_copy`` in the manifests directory."""
    src = running_manifest(ctx, component)
    dest = posixpath.join(to, posixpath.basename(src))
    ctx.run(["mkdir", "-p", to]).check()
    ctx.run(["mv", src, dest]).check()
    if leave_copy:
        ctx.run(["cp", dest, posixpath.join(kubeadm.MANIFESTS, leave_copy)]).check()
