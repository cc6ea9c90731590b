"""Faults that edit or move static-pod manifests."""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from simulator.cluster import kubeadm
from simulator.errors import CheckError
from simulator.registry import Context, fault


def manifest_path(component: str) -> str:
    return f"{kubeadm.MANIFESTS}/{component}.yaml"


def load_manifest(ctx: Context, component: str) -> dict[str, Any]:
    """The parsed static-pod manifest of ``component`` on the context's node."""
    try:
        return yaml.safe_load(ctx.node.read_file(manifest_path(component)))
    except FileNotFoundError:
        raise CheckError(f"{manifest_path(component)} does not exist on {ctx.node_name}",
                         hint="is the component name right (etcd, kube-apiserver, ...)?") from None


def save_manifest(ctx: Context, component: str, pod: dict[str, Any]) -> None:
    ctx.node.write_file(manifest_path(component),
                        yaml.safe_dump(pod, sort_keys=False).encode(), 0o600)


def set_flag(command: list[str], flag: str, value: str | None) -> list[str]:
    """``command`` with ``--flag=value`` replaced (added when absent, removed when value is None)."""
    prefix = f"--{flag.lstrip('-')}="
    out, found = [], False
    for arg in command:
        if arg.startswith(prefix):
            found = True
            if value is not None:
                out.append(prefix + value)
        else:
            out.append(arg)
    if not found and value is not None:
        out.append(prefix + value)
    return out


@fault("manifest.set")
def manifest_set(ctx: Context, component: str, flag: str | None = None, value: str | None = None,
                 volume: str | None = None, host_path: str | None = None) -> None:
    """Set a command-line flag of the component's container, or a volume's hostPath."""
    pod = load_manifest(ctx, component)
    if flag is not None:
        container = pod["spec"]["containers"][0]
        container["command"] = set_flag(list(container.get("command", [])), flag, value)
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
    save_manifest(ctx, component, pod)


@fault("manifest.move_out")
def manifest_move_out(ctx: Context, component: str, to: str = "/root",
                      leave_copy: str | None = None) -> None:
    """Move a manifest out of the manifests directory (its pod stops), optionally
    leaving a stray copy named ``leave_copy`` in the manifests directory."""
    src = manifest_path(component)
    dest = posixpath.join(to, posixpath.basename(src))
    ctx.run(["mkdir", "-p", to]).check()
    ctx.run(["mv", src, dest]).check()
    if leave_copy:
        ctx.run(["cp", dest, posixpath.join(kubeadm.MANIFESTS, leave_copy)]).check()
