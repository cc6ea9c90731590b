"""Checkers of the running etcd: health, keys, which data directory it serves, members,
and its static-pod manifest."""

from __future__ import annotations

import base64
import json
import posixpath
import re
from typing import Any

import yaml

from simulator.cluster import kubeadm
from simulator.registry import CheckResult, Context, checker


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


@checker("etcd.healthy")
def healthy(ctx: Context, endpoint: str = kubeadm.ETCD_ENDPOINT) -> CheckResult:
    """etcd answers a health check over TLS with the kubeadm certificates."""
    done = kubeadm.etcdctl(ctx.node, "endpoint", "health", "--command-timeout=3s",
                           endpoint=endpoint, timeout=15)
    if done.ok:
        return CheckResult(True, f"etcd at {endpoint} is healthy")
    return CheckResult(False, f"etcd at {endpoint} is not healthy ({_first_line(done.err or done.out)}); "
                              "look at `crictl ps -a` and `crictl logs` on the node")


def get_key(ctx: Context, key: str) -> tuple[bool, str | None, str]:
    """(answered, value or None when absent, error text) for one etcd key."""
    done = kubeadm.etcdctl(ctx.node, "get", key, "-w", "json", "--dial-timeout=2s",
                           "--command-timeout=3s", timeout=15)
    if not done.ok:
        return False, None, _first_line(done.err or done.out)
    kvs = json.loads(done.out).get("kvs") or []
    if not kvs:
        return True, None, ""
    return True, base64.b64decode(kvs[0].get("value", "")).decode(errors="replace"), ""


@checker("etcd.key")
def key(ctx: Context, key: str, present: bool = True, value: str | None = None) -> CheckResult:
    """A key is present in (or absent from) the running etcd, optionally with a value."""
    answered, found, error = get_key(ctx, key)
    if not answered:
        return CheckResult(False, f"could not read {key} from etcd: {error}")
    if not present:
        if found is None:
            return CheckResult(True, f"{key} is absent, as expected")
        return CheckResult(False, f"{key} is still in etcd (expected it gone)")
    if found is None:
        return CheckResult(False, f"{key} is not in etcd")
    if value is not None and found != value:
        return CheckResult(False, f"{key} is {found[:80]!r}, expected {value!r}")
    return CheckResult(True, f"{key} is in etcd" + (f" with value {value!r}" if value is not None else ""))


def load_pod(ctx: Context, component: str) -> dict[str, Any] | None:
    try:
        return yaml.safe_load(ctx.node.read_file(f"{kubeadm.MANIFESTS}/{component}.yaml"))
    except FileNotFoundError:
        return None
    except yaml.YAMLError:
        return {}


def flag_value(command: list[str], flag: str) -> str | None:
    prefix = f"--{flag.lstrip('-')}="
    for arg in command:
        if arg.startswith(prefix):
            return arg[len(prefix):]
    return None


def effective_data_dir(pod: dict[str, Any]) -> tuple[str | None, str]:
    """(directory on the node backing etcd's --data-dir, explanation) from its manifest.

    The directory is None when no hostPath volume backs --data-dir: etcd then keeps its
    data inside the container, empty at every start and invisible from the node.
    """
    container = pod["spec"]["containers"][0]
    command = [*container.get("command", []), *container.get("args", [])]
    data_dir = posixpath.normpath(flag_value(command, "data-dir") or "/default.etcd")
    volumes = {v.get("name"): (v.get("hostPath") or {}).get("path") for v in pod["spec"].get("volumes", [])}
    best = None
    for mount in container.get("volumeMounts", []):
        mount_path = posixpath.normpath(mount.get("mountPath", ""))
        if data_dir == mount_path or data_dir.startswith(mount_path.rstrip("/") + "/"):
            if best is None or len(mount_path) > len(best[0]):
                best = (mount_path, mount.get("name"))
    if best is None or not volumes.get(best[1]):
        return None, f"--data-dir={data_dir} is not on a hostPath volume (it lives inside the container)"
    mount_path, name = best
    host = posixpath.normpath(posixpath.join(volumes[name], posixpath.relpath(data_dir, mount_path)))
    return host, f"--data-dir={data_dir} is volume {name} mounted at {mount_path}, hostPath {volumes[name]}"


@checker("etcd.data_dir")
def data_dir(ctx: Context, expected: str, component: str = "etcd") -> CheckResult:
    """The node directory that really backs the running etcd's data (through the hostPath)."""
    pod = load_pod(ctx, component)
    if pod is None:
        return CheckResult(False, f"{kubeadm.MANIFESTS}/{component}.yaml is missing: etcd is not running")
    if not pod:
        return CheckResult(False, f"{kubeadm.MANIFESTS}/{component}.yaml is not valid YAML")
    try:
        host, why = effective_data_dir(pod)
    except (KeyError, IndexError, TypeError):
        return CheckResult(False, f"{kubeadm.MANIFESTS}/{component}.yaml has no etcd container")
    want = posixpath.normpath(expected)
    if host is None:
        return CheckResult(False, f"etcd's data is not on the node: {why}, so etcd starts empty; "
                                  f"expected it served from {want} through the etcd-data hostPath")
    if host != want:
        return CheckResult(False, f"etcd's data comes from {host} ({why}); expected {want}")
    probe = ctx.run(["test", "-d", posixpath.join(want, "member")])
    if not probe.ok:
        return CheckResult(False, f"etcd is set to use {want}, but {want}/member does not exist: "
                                  "was the snapshot restored there?")
    return CheckResult(True, f"etcd serves its data from {want} ({why})")


@checker("etcd.members")
def members(ctx: Context, count: int | None = None, names: list[str] | None = None) -> CheckResult:
    """The etcd cluster has ``count`` members (with these ``names``), all of them healthy."""
    done = kubeadm.etcdctl(ctx.node, "member", "list", "-w", "json", timeout=15)
    if not done.ok:
        return CheckResult(False, f"could not list etcd members: {_first_line(done.err or done.out)}")
    found = sorted(m.get("name", "") for m in json.loads(done.out).get("members", []))
    if count is not None and len(found) != count:
        return CheckResult(False, f"etcd has {len(found)} member(s) {found}, expected {count}")
    if names is not None and sorted(names) != found:
        return CheckResult(False, f"etcd members are {found}, expected {sorted(names)}")
    health = kubeadm.etcdctl(ctx.node, "endpoint", "health", "--cluster", "--command-timeout=3s", timeout=30)
    if not health.ok:
        return CheckResult(False, f"not every member is healthy: {_first_line(health.err or health.out)}")
    return CheckResult(True, f"{len(found)} healthy member(s): {', '.join(found)}")


_SELECTOR = re.compile(r"^(?P<key>[^\[]+)(\[(?P<sel>[^\]]+)\])?$")


def get_field(obj: Any, path: str) -> Any:
    """``spec.volumes[name=etcd-data].hostPath.path`` or ``spec.containers[0].image``."""
    for part in path.split("."):
        m = _SELECTOR.match(part)
        if not m or obj is None:
            return None
        obj = obj.get(m["key"]) if isinstance(obj, dict) else None
        sel = m["sel"]
        if sel is not None:
            if not isinstance(obj, list):
                return None
            if sel.isdigit():
                obj = obj[int(sel)] if int(sel) < len(obj) else None
            else:
                k, _, v = sel.partition("=")
                obj = next((item for item in obj if isinstance(item, dict) and str(item.get(k)) == v), None)
    return obj


@checker("etcd.manifest")
def manifest(ctx: Context, component: str = "etcd", flag: str | None = None,
             field: str | None = None, equals: Any = None, contains: str | None = None) -> CheckResult:
    """A flag or a field of a static pod manifest has a value (or contains a text)."""
    pod = load_pod(ctx, component)
    path = f"{kubeadm.MANIFESTS}/{component}.yaml"
    if pod is None:
        return CheckResult(False, f"{path} is missing")
    if not pod:
        return CheckResult(False, f"{path} is not valid YAML")
    if flag is not None:
        container = (pod.get("spec", {}).get("containers") or [{}])[0]
        found = flag_value([*container.get("command", []), *container.get("args", [])], flag)
        what = f"--{flag.lstrip('-')}"
    else:
        found = get_field(pod, field or "")
        what = field
    if found is None:
        return CheckResult(False, f"{path} has no {what}")
    if equals is not None and str(found) != str(equals):
        return CheckResult(False, f"{what} is {found!r} in {path}, expected {equals!r}")
    if contains is not None and contains not in str(found):
        return CheckResult(False, f"{what} is {found!r} in {path}, expected it to contain {contains!r}")
    return CheckResult(True, f"{what} is {found!r}")
