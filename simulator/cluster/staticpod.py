"""Static pods as the kubelet sees them: the one reader for the node agent, checkers and faults.

The kubelet (``pkg/kubelet/config/file.go`` and ``config.go``) treats every regular file
in ``/etc/kubernetes/manifests`` whose name does not start with ``.`` as a pod, whatever
its extension; it reads them in name order, skips a file that does not parse or validate,
and when two files define the same pod (name + namespace) the first one wins. What runs
is therefore not always ``etcd.yaml``: a stray ``etcd.yaml.bak`` or ``00-etcd.yaml`` can
be the pod that runs. This module answers with what the kubelet would run:

- :func:`parse` validates one manifest as the kubelet does and gives a :class:`PodSpec`
  (containers with their expanded argv, env and hostPath/emptyDir mounts);
- :func:`effective` picks, from a directory's files, the pods that run and why others don't;
- :func:`flag` and :func:`set_flag` read and write ``--flag=value`` as well as
  ``--flag value`` (two list items), the last occurrence winning as in the components' flag
  parsing; :func:`data_dir_on_host` maps a path inside a container to the node directory
  behind it;
- :func:`node_pods`, :func:`listed`, :func:`inspect` and :func:`running` read a live node through the Node API: the
  effective manifests, and the containers the runtime actually runs (``crictl``), so that
  checkers judge the process that runs, on every driver.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from simulator.errors import ClusterError

MANIFESTS = "/etc/kubernetes/manifests"
KUBE_SYSTEM = "kube-system"
HOSTPATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice")


class ManifestError(ClusterError):
    """A static-pod manifest is not a pod the kubelet would run; the message reads like its log."""


@dataclasses.dataclass(frozen=True)
class Mount:
    """One volume as a container sees it: node directory ``source`` at ``target``."""

    source: str
    target: str
    read_only: bool = False
    type: str = ""


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """One container of a static pod, ready to launch."""

    name: str
    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    mounts: tuple[Mount, ...]
    pulled: bool = False  # a workload's: argv is its command, run with the image's config
    args: tuple[str, ...] = ()  # a workload's args


@dataclasses.dataclass(frozen=True)
class PodSpec:
    """A static pod read from one manifest file."""

    file: str  # path inside the node
    name: str  # metadata.name
    namespace: str
    full_name: str  # <name>-<node>, the mirror pod's name
    uid: str
    containers: tuple[ContainerSpec, ...]
    grace: float
    restart_policy: str
    doc: Mapping[str, Any] = dataclasses.field(compare=False, repr=False, default_factory=dict)
    host_network: bool = True  # False: a sandbox of its own with an IP of the node's pod CIDR

    def container(self, name: str | None = None) -> ContainerSpec | None:
        """The named container (the first when ``name`` is None), or None."""
        for c in self.containers:
            if name is None or c.name == name:
                return c
        return None


# --------------------------------------------------------------------------- parsing


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` from ``env`` as the kubelet does; ``$$`` is a literal ``$``."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "$" and i + 1 < len(value):
            if value[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if value[i + 1] == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2 : end]
                    out.append(env[name] if name in env else value[i : end + 1])
                    i = end + 1
                    continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _require(cond: object, problems: list[str], message: str) -> bool:
    if not cond:
        problems.append(message)
    return bool(cond)


def pod_uid(data: bytes, file: str, node_name: str) -> str:
    """The pod's uid: a hash of its content, node and file, so an edit makes a new pod."""
    h = hashlib.md5(usedforsecurity=False)
    for part in (data, node_name.encode(), file.encode()):
        h.update(part)
    return h.hexdigest()


def _volume_source(vol: Mapping[str, Any], uid: str) -> tuple[str, str] | None:
    if isinstance(vol.get("hostPath"), dict):
        return str(vol["hostPath"]["path"]), str(vol["hostPath"].get("type") or "")
    if "emptyDir" in vol:
        return f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~empty-dir/{vol['name']}", "DirectoryOrCreate"
    return None


def parse(data: bytes | str, file: str, node_name: str, *,
          warn: Any = None) -> PodSpec:
    """Read a static pod manifest (YAML or JSON) as the kubelet would; raise ManifestError.

    ``warn(message)`` hears about parts the simulator does not run (``valueFrom``,
    volumes that are neither hostPath nor emptyDir).
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{file}: couldn't parse as pod (invalid YAML{where}: {problem})",
                            hint="fix the indentation or quoting there; "
                                 "the pod stays down until the file parses") from None
    if not isinstance(doc, dict):
        raise ManifestError("couldn't parse as pod (not a YAML mapping)",
                            hint="a static-pod manifest is one Pod object")
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        raise ManifestError(
            f"invalid pod: expected apiVersion v1, kind Pod, got {doc.get('apiVersion')!r} {doc.get('kind')!r}",
            hint="only Pods run from /etc/kubernetes/manifests")
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    problems: list[str] = []
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        raise ManifestError("invalid pod: metadata and spec must be mappings")
    name = meta.get("name")
    _require(isinstance(name, str) and name, problems, "metadata.name: Required value")
    namespace = meta.get("namespace") or "default"
    volumes: dict[str, dict[str, Any]] = {}
    for i, vol in enumerate(spec.get("volumes") or []):
        if not _require(isinstance(vol, dict) and vol.get("name"), problems, f"spec.volumes[{i}].name: Required value"):
            continue
        hp = vol.get("hostPath")
        if hp is not None:
            if _require(isinstance(hp, dict) and str(hp.get("path", "")).startswith("/"), problems,
                        f"spec.volumes[{i}].hostPath.path: must be an absolute path"):
                _require((hp.get("type") or "") in HOSTPATH_TYPES, problems,
                         f"spec.volumes[{i}].hostPath.type: Unsupported value: {hp.get('type')!r}")
        volumes[vol["name"]] = vol
    raw_containers = spec.get("containers")
    _require(isinstance(raw_containers, list) and raw_containers, problems, "spec.containers: Required value")
    uid = pod_uid(raw, file, node_name)
    containers: list[ContainerSpec] = []
    seen: set[str] = set()
    for i, c in enumerate(raw_containers if isinstance(raw_containers, list) else []):
        where = f"spec.containers[{i}]"
        if not _require(isinstance(c, dict), problems, f"{where}: must be a mapping"):
            continue
        cname, image = c.get("name"), c.get("image")
        _require(isinstance(cname, str) and cname, problems, f"{where}.name: Required value")
        _require(cname not in seen, problems, f"{where}.name: Duplicate value: {cname!r}")
        seen.add(cname)
        _require(isinstance(image, str) and image, problems, f"{where}.image: Required value")
        command, args = c.get("command") or [], c.get("args") or []
        if not _require(isinstance(command, list) and isinstance(args, list), problems,
                        f"{where}.command: must be a list"):
            continue
        env: dict[str, str] = {}
        for j, e in enumerate(c.get("env") or []):
            if not _require(isinstance(e, dict) and e.get("name"), problems, f"{where}.env[{j}].name: Required value"):
                continue
            if "valueFrom" in e:
                if warn:
                    warn(f"pod {name}: {where}.env[{j}] valueFrom is not supported; variable left unset")
                continue
            env[str(e["name"])] = expand(str(e.get("value", "")), env)
        argv = [expand(str(a), env) for a in [*command, *args]]
        mounts: list[Mount] = []
        for j, m in enumerate(c.get("volumeMounts") or []):
            mwhere = f"{where}.volumeMounts[{j}]"
            if not _require(isinstance(m, dict) and m.get("name") in volumes, problems,
                            f"{mwhere}.name: Not found: {m.get('name') if isinstance(m, dict) else m!r}"):
                continue
            if not _require(str(m.get("mountPath", "")).startswith("/"), problems,
                            f"{mwhere}.mountPath: must be an absolute path"):
                continue
            source = _volume_source(volumes[m["name"]], uid)
            if source is None:
                if warn:
                    warn(f"pod {name}: volume {m['name']} is neither hostPath nor emptyDir; not mounted")
                continue
            path, type_ = source
            if m.get("subPath"):
                path = os.path.join(path, str(m["subPath"]))
                type_ = ""
            mounts.append(Mount(path, str(m["mountPath"]), bool(m.get("readOnly")), type_))
        if isinstance(cname, str) and isinstance(image, str):
            containers.append(ContainerSpec(cname, image, tuple(argv), tuple(env.items()),
                                            str(c.get("workingDir") or "/"), tuple(mounts)))
    if problems:
        raise ManifestError("invalid pod: [" + ", ".join(problems) + "]",
                            hint=f"fix {file}; the kubelet skips a pod that does not validate")
    grace = spec.get("terminationGracePeriodSeconds")
    grace = float(grace) if isinstance(grace, (int, float)) and grace >= 0 else 30.0
    return PodSpec(file=file, name=str(name), namespace=str(namespace), full_name=f"{name}-{node_name}",
                   uid=uid, containers=tuple(containers), grace=grace,
                   restart_policy=str(spec.get("restartPolicy") or "Always"), doc=doc)


@dataclasses.dataclass(frozen=True)
class Effective:
    """What the kubelet makes of a manifests directory: the pods it runs and the files it skips."""

    pods: tuple[PodSpec, ...]
    skipped: tuple[tuple[str, str], ...]  # (file, why)

    def pod(self, name: str, namespace: str = KUBE_SYSTEM) -> PodSpec | None:
        """The running pod whose metadata.name is ``name``, or None."""
        return next((p for p in self.pods if p.name == name and p.namespace == namespace), None)


def manifest_names(names: Iterable[str]) -> list[str]:
    """The file names the kubelet reads as pods, in the order it reads them."""
    return sorted(n for n in names if not n.startswith("."))


def effective(files: Iterable[tuple[str, bytes | PodSpec | ManifestError]], node_name: str,
              directory: str = MANIFESTS) -> Effective:
    """The pods the kubelet runs from ``files`` (name, content or an already parsed result).

    Files are taken in name order; the first file defining a pod (namespace + name) wins.
    """
    pods: list[PodSpec] = []
    skipped: list[tuple[str, str]] = []
    kept: dict[str, str] = {}
    for name, content in sorted(files, key=lambda item: item[0]):
        if name.startswith("."):
            continue
        file = posixpath.join(directory, name)
        if isinstance(content, ManifestError):
            skipped.append((file, content.message))
            continue
        try:
            pod = content if isinstance(content, PodSpec) else parse(content, file, node_name)
        except ManifestError as exc:
            skipped.append((file, exc.message))
            continue
        key = f"{pod.namespace}/{pod.full_name}"
        if key in kept:
            skipped.append((file, f"duplicate pod name {key}: {kept[key]} defines it first"))
            continue
        kept[key] = file
        pods.append(pod)
    return Effective(tuple(pods), tuple(skipped))


# --------------------------------------------------------------------------- flags and volumes


def flag(argv: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` in ``argv`` (``--name=value`` or ``--name value``), the last one
    winning as in the components' flag parsing; None when absent."""
    want = "--" + name.lstrip("-")
    found = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(want + "="):
            found = arg[len(want) + 1:]
        elif arg == want:
            found = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        i += 1
    return found


def set_flag(argv: Sequence[str], name: str, value: str | None) -> list[str]:
    """``argv`` with every ``--name`` replaced by one ``--name=value`` where the first was
    (appended when absent; removed when ``value`` is None)."""
    want = "--" + name.lstrip("-")
    out: list[str] = []
    placed = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == want or arg.startswith(want + "="):
            if arg == want:
                i += 1  # its value is the next item
            if not placed and value is not None:
                out.append(f"{want}={value}")
            placed = True
        else:
            out.append(arg)
        i += 1
    if not placed and value is not None:
        out.append(f"{want}={value}")
    return out


def data_dir_on_host(path: str, mounts: Iterable[Mount]) -> tuple[str | None, str]:
    """(node directory behind ``path`` inside a container, explanation).

    The directory is None when no volume backs ``path``: the data then lives inside the
    container, empty at every start and invisible from the node.
    """
    inside = posixpath.normpath(path)
    best: Mount | None = None
    for m in mounts:
        target = posixpath.normpath(m.target)
        if inside == target or inside.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(posixpath.normpath(best.target)):
                best = m
    if best is None:
        return None, f"{inside} is not on a hostPath volume (it lives inside the container)"
    target = posixpath.normpath(best.target)
    host = posixpath.normpath(posixpath.join(best.source, posixpath.relpath(inside, target)))
    return host, f"{inside} is mounted from {best.source} at {target}"


# --------------------------------------------------------------------------- a live node


def node_pods(node: Any, directory: str = MANIFESTS) -> Effective:
    """The static pods the kubelet of ``node`` runs from its manifests directory (Node API)."""
    listed = node.run(["find", "-L", directory, "-mindepth", "1", "-maxdepth", "1",
                       "-type", "f", "-printf", "%f\\0"])
    names = [n for n in listed.out.split("\0") if n] if listed.ok else []
    files: list[tuple[str, bytes | PodSpec | ManifestError]] = []
    for name in manifest_names(names):
        try:
            files.append((name, node.read_file(posixpath.join(directory, name))))
        except OSError as exc:
            files.append((name, ManifestError(f"cannot read: {exc}")))
    return effective(files, node.name, directory)


@dataclasses.dataclass(frozen=True)
class Container:
    """A container as the node's runtime reports it (``crictl inspect``)."""

    id: str
    name: str
    pod: str
    namespace: str
    state: str  # CONTAINER_RUNNING, CONTAINER_EXITED, ...
    attempt: int
    created: int
    argv: tuple[str, ...]
    mounts: tuple[Mount, ...]

    @property
    def running(self) -> bool:
        return self.state == "CONTAINER_RUNNING"


def _crictl_json(node: Any, *args: str) -> Any:
    done = node.run(["crictl", *args], timeout=30)
    if not done.ok:
        raise ClusterError(f"crictl {' '.join(args)} failed on {node.name}: "
                           f"{(done.err or done.out).strip()[-300:]}",
                           hint="is the container runtime up on the node?")
    return json.loads(done.out or "{}")


def listed(node: Any, name: str, namespace: str = KUBE_SYSTEM) -> list[dict[str, Any]]:
    """``crictl ps -a`` entries of the containers named ``name`` in ``namespace``, newest first."""
    entries = _crictl_json(node, "ps", "-a", "-o", "json").get("containers") or []
    found = [c for c in entries
             if (c.get("labels") or {}).get("io.kubernetes.container.name") == name
             and (c.get("labels") or {}).get("io.kubernetes.pod.namespace") == namespace]
    return sorted(found, key=lambda c: int(c.get("createdAt") or 0), reverse=True)


def inspect(node: Any, entry: dict[str, Any]) -> Container:
    """One listed container as ``crictl inspect`` reports it: its argv and mounts."""
    data = _crictl_json(node, "inspect", "-o", "json", entry["id"])
    status, info = data.get("status") or {}, data.get("info") or {}
    process = (info.get("runtimeSpec") or {}).get("process") or {}
    argv = process.get("args")
    if argv is None:
        config = info.get("config") or {}
        argv = [*(config.get("command") or []), *(config.get("args") or [])]
    labels = entry.get("labels") or {}
    return Container(
        id=entry["id"], name=labels.get("io.kubernetes.container.name", ""),
        pod=labels.get("io.kubernetes.pod.name", ""), namespace=labels.get("io.kubernetes.pod.namespace", ""),
        state=str(entry.get("state", "")), attempt=int((entry.get("metadata") or {}).get("attempt", 0)),
        created=int(entry.get("createdAt") or 0), argv=tuple(str(a) for a in argv),
        mounts=tuple(Mount(str(m.get("hostPath", "")), str(m.get("containerPath", "")), bool(m.get("readonly")))
                     for m in status.get("mounts") or []))


def running(node: Any, name: str, namespace: str = KUBE_SYSTEM) -> list[Container]:
    """The running containers named ``name`` on ``node`` (normally one per component);
    exited ones are not inspected."""
    return [inspect(node, entry) for entry in listed(node, name, namespace)
            if entry.get("state") == "CONTAINER_RUNNING"]
