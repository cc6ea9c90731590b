"""Checkers of the running etcd: health, keys, which data directory it serves, members,
and its static-pod manifest."""

from __future__ import annotations

import base64
import json
import posixpath
import re
import urllib.parse
from typing import Any

from simulator.cluster import etcdunit, kubeadm, staticpod
from simulator.errors import CheckError, ClusterError
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
                              "look at `crictl ps -a` and `crictl logs` on the node "
                              "(`systemctl status etcd` where etcd runs as a service)")


def _get_kv(ctx: Context, key: str) -> tuple[bool, dict[str, Any] | None, str]:
    """(answered, etcdctl's JSON of the key or None when absent, error text)."""
    done = kubeadm.etcdctl(ctx.node, "get", key, "-w", "json", "--dial-timeout=2s",
                           "--command-timeout=3s", timeout=15)
    if not done.ok:
        return False, None, _first_line(done.err or done.out)
    kvs = json.loads(done.out).get("kvs") or []
    return True, (kvs[0] if kvs else None), ""


def get_key(ctx: Context, key: str) -> tuple[bool, str | None, str]:
    """(answered, value or None when absent, error text) for one etcd key."""
    answered, kv, error = _get_kv(ctx, key)
    if kv is None:
        return answered, None, error
    return True, base64.b64decode(kv.get("value", "")).decode(errors="replace"), ""


@checker("etcd.key")
def key(ctx: Context, key: str, present: bool = True, value: str | None = None,
        created_before_setup: bool = False, json_field: str | None = None,
        equals: Any = None) -> CheckResult:
    """A key is present in (or absent from) the running etcd, optionally with a value.

    With ``json_field`` (dotted, as in ``snapshot.contains``) the stored object must have
    that field, equal to ``equals`` when given: built-in kinds are read from the protobuf
    the API server stores, others from JSON. With ``created_before_setup`` the key must
    also have been created no later than the revision recorded at setup (``record:
    revision``): the object that existed when the task began, brought back by a restore,
    and not one made again since.
    """
    from checkers.snapshot import recorded_revision, stored_field

    wanted = recorded_revision(ctx, "etcd.key") if created_before_setup else None
    answered, kv, error = _get_kv(ctx, key)
    if not answered:
        return CheckResult(False, f"could not read {key} from etcd: {error}")
    if not present:
        if kv is None:
            return CheckResult(True, f"{key} is absent, as expected")
        return CheckResult(False, f"{key} is still in etcd (expected it gone)")
    if kv is None:
        return CheckResult(False, f"{key} is not in etcd")
    raw = base64.b64decode(kv.get("value", ""))
    found = raw.decode(errors="replace")
    if value is not None and found != value:
        return CheckResult(False, f"{key} is {found[:80]!r}, expected {value!r}")
    if json_field is not None:
        read = stored_field(raw, key, json_field, equals)
        if not read.passed or wanted is None:
            return read
    if wanted is not None:
        created = int(kv.get("create_revision", 0))
        if created > wanted:
            return CheckResult(False, f"{key} was created at revision {created}, after the task began "
                                      f"(revision {wanted}): it is a new object made again, not the "
                                      "original one brought back from the backup")
        return CheckResult(True, f"{key} is in etcd, created at revision {created}, before the task began")
    return CheckResult(True, f"{key} is in etcd" + (f" with value {value!r}" if value is not None else ""))


@checker("etcd.dir_keys")
def dir_keys(ctx: Context, data_dir: str, present: list[str] | None = None,
             absent: list[str] | None = None) -> CheckResult:
    """The etcd data directory ``data_dir`` on the node holds every key of ``present`` and
    none of ``absent`` in its latest state, read from its ``member/snap/db`` without etcd.

    Meant for a directory etcd no longer serves (the one a restore moved away from): it
    shows what had been done to the cluster before the restore.
    """
    from checkers.bbolt import SnapshotFormatError, read_snapshot

    db = posixpath.join(data_dir, "member", "snap", "db")
    try:
        data = ctx.node.read_file(db)
    except FileNotFoundError:
        return CheckResult(False, f"{db} does not exist: the data etcd ran on before the restore is gone "
                                  f"(keep {data_dir} as it was)")
    except OSError as exc:
        return CheckResult(False, f"cannot read {db}: {exc.strerror or exc}")
    try:
        latest = read_snapshot(data, require_hash=False).kv_latest()
    except SnapshotFormatError as exc:
        return CheckResult(False, f"{db} is not a readable etcd database: {exc.detail}")
    missing = [k for k in present or [] if k.encode() not in latest]
    still = [k for k in absent or [] if k.encode() in latest]
    problems = ([f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in it"] if missing else []) + \
               ([f"{', '.join(still)} {'is' if len(still) == 1 else 'are'} still in it"] if still else [])
    if problems:
        return CheckResult(False, f"the etcd data in {data_dir}: " + "; ".join(problems))
    shown = [f"holds {', '.join(present)}"] if present else []
    shown += [f"no longer holds {', '.join(absent)}"] if absent else []
    return CheckResult(True, f"the etcd data in {data_dir} " + " and ".join(shown))


def endpoint_status(ctx: Context) -> tuple[dict[str, Any] | None, str]:
    """(the ``Status`` that ``etcdctl endpoint status -w json`` reports for the etcd at the
    default endpoint, or None with the error text)."""
    done = kubeadm.etcdctl(ctx.node, "endpoint", "status", "-w", "json", "--dial-timeout=2s",
                           "--command-timeout=3s", timeout=15)
    if not done.ok:
        return None, _first_line(done.err or done.out)
    try:
        return dict(json.loads(done.out)[0]["Status"]), ""
    except (ValueError, LookupError, TypeError):
        return None, f"unexpected answer from etcdctl endpoint status: {done.out[:120]!r}"


def serving_container(ctx: Context, component: str) -> tuple[staticpod.Container | None, str]:
    """(the one running ``component`` container on the node, or None with the reason)."""
    try:
        found = staticpod.listed(ctx.node, component)
        running = [staticpod.inspect(ctx.node, c) for c in found if c.get("state") == "CONTAINER_RUNNING"]
    except ClusterError as exc:
        return None, exc.message
    if not running:
        if not found:
            return None, (f"no {component} container has run on {ctx.node_name}: is its manifest in "
                          f"{kubeadm.MANIFESTS}? (crictl ps -a)")
        latest = found[0]
        attempt = (latest.get("metadata") or {}).get("attempt", 0)
        return None, (f"{component} is not running on {ctx.node_name}: its latest container "
                      f"(attempt {attempt}) has exited; look at crictl logs {latest['id'][:13]}")
    pods = sorted({c.pod for c in running})
    if len(pods) > 1:
        return None, (f"{len(pods)} static pods run {component} at once ({', '.join(pods)}): "
                      f"keep one manifest for it in {kubeadm.MANIFESTS}")
    return running[0], ""


@checker("etcd.data_dir")
def data_dir(ctx: Context, expected: str, component: str = "etcd",
             snapshot: str | None = None, service: str | None = None) -> CheckResult:
    """The node directory the running etcd really serves its data from.

    Judged on the container the runtime runs (its ``--data-dir`` and mounts, as
    ``crictl inspect`` reports them), whichever manifest it came from; with ``service``
    (``etcd.service``, an etcd run by systemd), on the process that service runs: its
    command line, environment and working directory as ``/proc`` shows them, whatever
    the unit file says now. With ``snapshot``, the served data must also be a restore of
    that snapshot: every key etcd last wrote at or before the snapshot's revision is in
    the snapshot, written at the same revision (an empty directory, or another backup
    restored there, is not).
    """
    want = posixpath.normpath(expected)
    if service is not None:
        process, why_not = etcdunit.running(ctx.node, service)
        if process is None:
            return CheckResult(False, why_not)
        host = process.data_dir
        why = f"{service}, PID {process.pid}"
        if host != want:
            return CheckResult(False, f"{service} runs etcd (PID {process.pid}) on data dir {host}; "
                                      f"expected {want} (after editing the unit, "
                                      "`systemctl daemon-reload` and a restart make it take effect)")
    else:
        running, why_not = serving_container(ctx, component)
        if running is None:
            return CheckResult(False, why_not)
        inside = staticpod.flag(running.argv, "data-dir") or "/default.etcd"
        host, why = staticpod.data_dir_on_host(inside, running.mounts)
        if host is None:
            return CheckResult(False, f"etcd's data is not on the node: --data-dir={inside}, but {why}, so "
                                      f"etcd starts empty; expected it served from {want} through the etcd-data hostPath")
        if host != want:
            return CheckResult(False, f"the running etcd serves its data from {host} ({why}); expected {want}")
    probe = ctx.run(["test", "-d", posixpath.join(want, "member")])
    if not probe.ok:
        return CheckResult(False, f"etcd runs on {want}, but {want}/member does not exist: "
                                  "was the snapshot restored there?")
    if snapshot is not None:
        from checkers.snapshot import load_snapshot

        info, failed = load_snapshot(ctx, snapshot)
        if failed is not None or info is None:
            return CheckResult(False, f"cannot tell whether {want} holds the restored snapshot: "
                                      f"{failed.detail if failed else 'unreadable'}")
        failed = _serves_snapshot(ctx, want, snapshot, info)
        if failed is not None:
            return failed
        return CheckResult(True, f"the running etcd serves its data from {want} ({why}), "
                                 f"restored from {snapshot}")
    return CheckResult(True, f"the running etcd serves its data from {want} ({why})")


def _serves_snapshot(ctx: Context, want: str, snapshot: str, info: Any) -> CheckResult | None:
    """None when the etcd at the default endpoint serves a restore of snapshot ``info``,
    else the failed result saying why.

    A restore keeps every key's revisions: each key the served etcd last wrote at or
    before the snapshot's revision must be in the snapshot, written at that same revision.
    A revision alone proves nothing: an etcd started on an empty directory under a live
    API server climbs past any snapshot's revision in a minute or two, and one restored
    from an older backup does at once. Neither keeps the snapshot's keys' revisions."""
    found = _keys(ctx, want)
    if isinstance(found, CheckResult):
        return found
    revision, served = found
    if revision < info.revision:
        return CheckResult(False, f"etcd runs on {want}, but serves revision {revision}, below the "
                                  f"snapshot's {info.revision}: that directory was not restored from "
                                  f"{snapshot} (an empty data directory starts a new, empty etcd)")
    stored = info.kv_latest()
    failed = _state_at_snapshot(ctx, want, snapshot, info.revision, stored)
    if failed is not None:
        return failed
    kept = 0
    for key, modified in served.items():
        if modified > info.revision:
            continue  # written since the restore
        there = stored.get(key)
        if there is None or there.mod_revision != modified:
            was = (f"the snapshot holds it as written at revision {there.mod_revision}"
                   if there is not None else "the snapshot does not hold it")
            return CheckResult(False, f"etcd runs on {want}, but that data is not a restore of "
                                      f"{snapshot}: etcd serves {key.decode(errors='replace')} as "
                                      f"written at revision {modified}, and {was} (an empty data "
                                      "directory or another backup restored there?)")
        kept += 1
    if not kept and stored:
        return CheckResult(False, f"etcd runs on {want}, but serves none of the keys of {snapshot} as "
                                  "the snapshot wrote them: that directory was not restored from it")
    return None


def _keys(ctx: Context, want: str,
          revision: int | None = None) -> tuple[int, dict[bytes, int]] | CheckResult | None:
    """Every key the etcd at the default endpoint serves (at ``revision``, or now), each
    with the revision that last wrote it, and etcd's revision: ``(revision, {key:
    mod_revision})``. None when ``revision`` has been compacted away; the failed result
    when etcd does not answer, or not as etcdctl should."""
    at = [f"--rev={revision}"] if revision is not None else []
    done = kubeadm.etcdctl(ctx.node, "get", "", "--prefix", "--keys-only", "-w", "json", *at,
                           "--dial-timeout=2s", "--command-timeout=10s", timeout=30)
    if not done.ok:
        if revision is not None and "compacted" in (done.err + done.out):
            return None
        return CheckResult(False, f"etcd runs on {want} but does not answer yet: "
                                  f"{_first_line(done.err or done.out)}")
    try:
        answer = json.loads(done.out)
        return (int(answer["header"]["revision"]),
                {base64.b64decode(kv["key"]): int(kv.get("mod_revision", 0))
                 for kv in answer.get("kvs", [])})
    except (ValueError, LookupError, TypeError, AttributeError):
        return CheckResult(False, f"unexpected answer from etcdctl get: {done.out[:120]!r}")


def _state_at_snapshot(ctx: Context, want: str, snapshot: str, revision: int,
                       stored: dict[bytes, Any]) -> CheckResult | None:
    """None when the served etcd's state at the snapshot's revision is the snapshot's, or
    when etcd has compacted that revision away; else the failed result saying why.

    A restore keeps the snapshot's history, so until the API server compacts it (every
    five minutes) ``etcdctl get --rev`` at the snapshot's revision lists exactly the
    snapshot's keys, written at the same revisions, even those deleted since. Data that
    reached that revision another way (an older backup the API server has written on
    since) lacks keys the snapshot holds, or holds others."""
    found = _keys(ctx, want, revision)
    if found is None:
        return None  # that history is gone: the latest keys are all there is to judge
    if isinstance(found, CheckResult):
        return found
    _, then = found
    missing = sorted(key for key in stored if key not in then)
    extra = sorted(key for key, modified in then.items()
                   if key not in stored or stored[key].mod_revision != modified)
    if not missing and not extra:
        return None
    said = []
    if missing:
        said.append(f"lacks {len(missing)} key(s) the snapshot holds, such as "
                    f"{missing[0].decode(errors='replace')}")
    if extra:
        said.append(f"holds {len(extra)} key(s) the snapshot does not hold as written, such as "
                    f"{extra[0].decode(errors='replace')}")
    return CheckResult(False, f"etcd runs on {want}, but that data is not a restore of {snapshot}: "
                              f"at the snapshot's revision {revision} it {' and '.join(said)} "
                              "(another backup restored there, or an empty data directory?)")


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


def _urls(value: str) -> list[urllib.parse.SplitResult]:
    return [urllib.parse.urlsplit(part.strip()) for part in value.split(",") if part.strip()]


@checker("etcd.manifest")
def manifest(ctx: Context, component: str = "etcd", flag: str | None = None,
             field: str | None = None, equals: Any = None, includes: str | None = None,
             port: int | None = None, scheme: str | None = None) -> CheckResult:
    """A flag or a field of the static pod the kubelet runs for ``component``.

    The pod is the one the kubelet picks, whichever file in the manifests directory defines
    it first. Flags are read as the component parses them (``--f=v`` or ``--f v``, the
    last one winning). ``equals`` compares the whole value, ``includes`` one item of a
    comma-separated list, and ``port``/``scheme`` every URL of such a list.
    """
    if flag is None and field is None:
        raise CheckError("etcd.manifest needs a flag or a field", hint="with: {flag: data-dir, equals: ...}")
    effective = staticpod.node_pods(ctx.node)
    pod = effective.pod(component)
    if pod is None:
        skipped = [f"{file}: {why}" for file, why in effective.skipped]
        return CheckResult(False, f"the kubelet runs no {component} pod from {kubeadm.MANIFESTS}"
                                  + (f" ({'; '.join(skipped)})" if skipped else ""))
    path = pod.file
    if flag is not None:
        container = pod.container(component) or pod.container()
        found = staticpod.flag(container.argv, flag) if container else None
        what = f"--{flag.lstrip('-')}"
    else:
        found = get_field(pod.doc, field or "")
        what = field
    if found is None:
        return CheckResult(False, f"{path} has no {what}")
    text = str(found)
    if equals is not None and text != str(equals):
        return CheckResult(False, f"{what} is {found!r} in {path}, expected {equals!r}")
    items = [part.strip() for part in text.split(",")]
    if includes is not None and includes not in items:
        return CheckResult(False, f"{what} is {found!r} in {path}, expected it to list {includes!r}")
    if port is not None or scheme is not None:
        try:
            urls = _urls(text)
            ports = [u.port for u in urls]
        except ValueError:
            return CheckResult(False, f"{what} is {found!r} in {path}: not a list of URLs")
        if not urls:
            return CheckResult(False, f"{what} is empty in {path}")
        if port is not None and any(p != int(port) for p in ports):
            return CheckResult(False, f"{what} is {found!r} in {path}: expected port {port} in every URL")
        if scheme is not None and any(u.scheme != scheme for u in urls):
            return CheckResult(False, f"{what} is {found!r} in {path}: expected {scheme}:// URLs")
    return CheckResult(True, f"{what} is {found!r} in {path}")
