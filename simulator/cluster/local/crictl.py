#!/usr/bin/env python3
"""crictl for practice nodes: lists and inspects the static-pod containers of this node.

Standalone on purpose: the embedded driver copies this file into each node as
/usr/local/bin/crictl, where only the host's Python standard library is available. It
reads the state the node's supervisor writes (``$CRICTL_STATE_DIR``, default
``/run/cka-sim``): ``containers/<id>.json`` per container and ``pods.json``.

Supported: ps [-a] [--name RE] [-q] [--state S] [-p POD] [-l] [--no-trunc] [-o json],
pods [--name RE] [--namespace RE] [-q], logs [-f] [--tail N] [-t] [-p] ID,
inspect ID..., inspectp ID, images [-q], stop [-t SECONDS] ID..., rm [-f] [-a] ID...,
exec [-i] [-t] ID CMD..., stats [-a] [--name RE] [ID], info, version, stopp POD...,
rmp [-f] [-a] POD.... Output follows the
real crictl (cri-tools) v1.34 against containerd, byte for byte where it is stable.

``stop`` signals the container's process as containerd does (SIGTERM and SIGKILL after the
timeout; SIGKILL at once with the default timeout of 0) and waits until the supervisor has
recorded the exit. The supervisor then restarts the container as the kubelet would, since a
static pod's restartPolicy is Always. ``exec`` enters the container's mount namespace and
root (``nsenter -m -r -w``, from the node's util-linux) with the container's environment.
``stopp`` and ``rmp`` ask the supervisor (a file in ``$CRICTL_STATE_DIR/requests``): a
stopped sandbox stays listed as NotReady and its pod gets a new one, as the kubelet does.

Why one module of ~1000 lines: it is copied into every node as a single program and runs
there with the host's Python and nothing else, so it cannot import helpers from the
package; each subcommand is a small function over the same records and output helpers.
"""

from __future__ import annotations

import calendar
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time

STATE_DIR = os.environ.get("CRICTL_STATE_DIR", "/run/cka-sim")
TRUNC = 13
USAGE = """NAME:
   crictl - client for CRI

USAGE:
   crictl [global options] command [command options]

COMMANDS:
   exec                Run a command in a running container
   images, image, img  List images
   info                Display information of the container runtime
   inspect             Display the status of one or more containers
   inspectp            Display the status of one or more pods
   logs                Fetch the logs of a container
   pods                List pods
   ps                  List containers
   rm                  Remove one or more containers
   rmp                 Remove one or more pods
   stats               List container(s) resource usage statistics
   stop                Stop one or more running containers
   stopp               Stop one or more running pods
   version             Display runtime version information
   help, h             Shows a list of commands or help for one command
"""


class UsageError(Exception):
    """A bad command line; printed with the usage."""


class NotFound(Exception):
    """An ID that matches no container or pod."""


def human_duration(seconds: float) -> str:
    """Go's units.HumanDuration, which crictl uses for the CREATED column."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(ns: int) -> str:
    return human_duration(time.time() - ns / 1e9) + " ago"


def human_size(size: float, precision: int = 3) -> str:
    """Go's units.HumanSizeWithPrecision(size, precision): 3 for crictl images, 4 for stats."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def rfc3339(ns: int) -> str:
    """Go's time.Format(RFC3339Nano) in UTC: trailing zeros of the fraction dropped."""
    secs, frac = divmod(int(ns), 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    fraction = f"{frac:09d}".rstrip("0")
    return base + (f".{fraction}" if fraction else "") + "Z"


def table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth 20, padding 3) as crictl uses it; the last cell is not padded."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + 3, 20)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]
        lines.append("".join(cells))
    return "\n".join(lines) + ("\n" if lines else "")


def load_containers() -> list[dict]:
    records = []
    for path in glob.glob(os.path.join(STATE_DIR, "containers", "*.json")):
        try:
            with open(path) as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            continue
    records.sort(key=lambda r: r.get("createdAt", 0), reverse=True)
    return records


def load_pods() -> list[dict]:
    """The node's sandboxes: each pod's current one, and those ``stopp`` left NotReady."""
    try:
        with open(os.path.join(STATE_DIR, "pods.json")) as f:
            state = json.load(f)
        return list(state.get("pods", [])) + list(state.get("stopped", []))
    except (OSError, ValueError):
        return []


def pod_ready(p: dict) -> bool:
    return p.get("status") not in ("Terminating", "NotReady")


def find(records: list[dict], prefix: str, what: str) -> dict:
    if not prefix:
        raise UsageError("ID cannot be empty")
    exact = [r for r in records if r.get("id") == prefix]
    matches = exact or [r for r in records if r.get("id", "").startswith(prefix)]
    if len(matches) != 1:
        problem = "not found" if not matches else "ambiguous ID"
        raise NotFound(
            f'rpc error: code = NotFound desc = an error occurred when try to find {what} "{prefix}": {problem}'
        )
    return matches[0]


def state_word(state: str) -> str:
    return {"CONTAINER_RUNNING": "Running", "CONTAINER_EXITED": "Exited", "CONTAINER_CREATED": "Created"}.get(
        state, "Unknown"
    )


def parse_flags(args: list[str], spec: dict[str, str]) -> tuple[dict[str, object], list[str]]:
    """Parse flags by ``spec`` ({"-a": "all", "--name=": "name"}: a trailing = takes a value)."""
    opts: dict[str, object] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1 :]
            break
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            if name in spec:
                opts[spec[name]] = True
                if eq:
                    raise UsageError(f"flag {name} does not take a value")
            elif name + "=" in spec:
                if not eq:
                    if i + 1 >= len(args):
                        raise UsageError(f"flag needs an argument: {name}")
                    i += 1
                    value = args[i]
                opts[spec[name + "="]] = value
            else:
                raise UsageError(f"flag provided but not defined: {name}")
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def compile_re(pattern: object) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(str(pattern))
    except re.error as exc:
        raise UsageError(f"invalid regular expression {pattern!r}: {exc}") from None


def cmd_ps(args: list[str]) -> int:
    opts, rest = parse_flags(args, {
        "-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "-l": "latest", "--latest": "latest",
        "--no-trunc": "notrunc", "-v": "verbose", "--verbose": "verbose",
        "--name=": "name", "--state=": "state", "-s=": "state", "-p=": "pod", "--pod=": "pod",
        "--namespace=": "namespace", "-o=": "output", "--output=": "output", "--id=": "id", "--image=": "image",
        "--last=": "last", "-n=": "last",
    })
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}")
    records = load_containers()
    state = str(opts.get("state", "")).lower()
    if state:
        wanted = {"running": "CONTAINER_RUNNING", "exited": "CONTAINER_EXITED", "created": "CONTAINER_CREATED"}
        if state not in wanted and state != "unknown":
            raise UsageError("--state should be one of created, running, exited or unknown")
        records = [r for r in records if r.get("state") == wanted.get(state)]
    elif not opts.get("all") and not opts.get("latest") and not opts.get("last"):
        records = [r for r in records if r.get("state") == "CONTAINER_RUNNING"]
    name_re, ns_re = compile_re(opts.get("name")), compile_re(opts.get("namespace"))
    records = [r for r in records if (not name_re or name_re.search(r.get("name", "")))
               and (not ns_re or ns_re.search(r.get("podNamespace", "")))]
    if opts.get("pod"):
        records = [r for r in records if r.get("podSandboxId", "").startswith(str(opts["pod"]))]
    if opts.get("id"):
        records = [r for r in records if r.get("id", "").startswith(str(opts["id"]))]
    if opts.get("image"):
        records = [r for r in records if r.get("image") == opts["image"] or r.get("imageRef") == opts["image"]]
    if opts.get("latest"):
        records = records[:1]
    elif opts.get("last"):
        try:
            records = records[: int(str(opts["last"]))]
        except ValueError:
            raise UsageError("--last needs a number") from None
    if opts.get("output") == "json":
        print(json.dumps({"containers": [container_json(r) for r in records]}, indent=2))
        return 0
    if opts.get("quiet"):
        for r in records:
            print(r["id"])
        return 0
    trunc = (lambda s: s) if opts.get("notrunc") else (lambda s: s[:TRUNC])
    rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE"]]
    for r in records:
        image = r.get("imageRef", "")
        image = trunc(image.split(":", 1)[1]) if image.startswith("sha256:") else r.get("image", "")
        rows.append([
            trunc(r["id"]), image, ago(r.get("createdAt", 0)), state_word(r.get("state", "")), r.get("name", ""),
            str(r.get("attempt", 0)), trunc(r.get("podSandboxId", "")), r.get("podName", "unknown"),
            r.get("podNamespace", "unknown"),
        ])
    sys.stdout.write(table(rows))
    return 0


def container_json(r: dict) -> dict:
    return {
        "id": r["id"],
        "podSandboxId": r.get("podSandboxId", ""),
        "metadata": {"name": r.get("name", ""), "attempt": r.get("attempt", 0)},
        "image": {"image": r.get("image", ""), "annotations": {}, "userSpecifiedImage": r.get("image", "")},
        "imageRef": r.get("imageRef", ""),
        "state": r.get("state", "CONTAINER_UNKNOWN"),
        "createdAt": str(r.get("createdAt", 0)),
        "labels": labels(r),
        "annotations": {"io.kubernetes.container.restartCount": str(r.get("attempt", 0))},
    }


def labels(r: dict) -> dict[str, str]:
    return {
        "io.kubernetes.container.name": r.get("name", ""),
        "io.kubernetes.pod.name": r.get("podName", ""),
        "io.kubernetes.pod.namespace": r.get("podNamespace", ""),
        "io.kubernetes.pod.uid": r.get("podUid", ""),
    }


def inspect_json(r: dict) -> dict:
    running = r.get("state") == "CONTAINER_RUNNING"
    mounts = [
        {"containerPath": m.get("containerPath", ""), "hostPath": m.get("hostPath", ""),
         "propagation": "PROPAGATION_PRIVATE", "readonly": bool(m.get("readonly")), "selinuxRelabel": False,
         "uidMappings": [], "gidMappings": [], "recursiveReadOnly": False, "image": None}
        for m in r.get("mounts", [])
    ]
    command = list(r.get("command", []))
    env = [e.partition("=") for e in r.get("env", [])]
    return {
        "status": {
            "id": r["id"],
            "metadata": {"attempt": r.get("attempt", 0), "name": r.get("name", "")},
            "state": r.get("state", "CONTAINER_UNKNOWN"),
            "createdAt": rfc3339(r.get("createdAt", 0)),
            "startedAt": rfc3339(r.get("startedAt", 0)),
            "finishedAt": rfc3339(0 if running else r.get("finishedAt", 0)),
            "exitCode": 0 if running else r.get("exitCode", 0),
            "image": {"annotations": {}, "image": r.get("image", ""), "runtimeHandler": "",
                      "userSpecifiedImage": r.get("image", "")},
            "imageRef": r.get("imageRef", ""),
            "reason": "" if running else r.get("reason", ""),
            "message": r.get("message", ""),
            "labels": labels(r),
            "annotations": {"io.kubernetes.container.restartCount": str(r.get("attempt", 0)),
                            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                            "io.kubernetes.pod.terminationGracePeriod": "30"},
            "mounts": mounts,
            "logPath": r.get("logPath", ""),
            "resources": None,
            "user": {"linux": {"gid": "0", "supplementalGroups": ["0"], "uid": "0"}},
        },
        "info": {
            "sandboxID": r.get("podSandboxId", ""),
            "pid": r.get("pid", 0) if running else 0,
            "removing": False,
            "snapshotKey": r["id"],
            "snapshotter": "overlayfs",
            "runtimeType": "io.containerd.runc.v2",
            "runtimeOptions": {"systemd_cgroup": True},
            "config": {
                "metadata": {"name": r.get("name", ""), "attempt": r.get("attempt", 0)},
                "image": {"image": r.get("image", "")},
                "command": command,
                "envs": [{"key": k, "value": v} for k, _, v in env],
                "working_dir": r.get("workingDir", "/"),
                "mounts": [{"container_path": m["containerPath"], "host_path": m["hostPath"],
                            "readonly": m["readonly"]} for m in mounts],
                "labels": labels(r),
                "log_path": "/".join(r.get("logPath", "").split("/")[-2:]),
            },
            "runtimeSpec": {
                "ociVersion": "1.1.0",
                "process": {"args": command, "env": r.get("env", []), "cwd": r.get("workingDir", "/")},
                "root": {"path": "rootfs"},
                "hostname": "",
                "mounts": [{"destination": m["containerPath"], "type": "bind", "source": m["hostPath"],
                            "options": ["rbind", "rprivate", "ro" if m["readonly"] else "rw"]} for m in mounts],
            },
        },
    }


def cmd_inspect(args: list[str]) -> int:
    opts, ids = parse_flags(args, {"-o=": "output", "--output=": "output", "-q": "quiet", "--quiet": "quiet"})
    if not ids:
        raise UsageError("ID cannot be empty")
    records = load_containers()
    found = [find(records, i, "container") for i in ids]
    for r in found:
        data = inspect_json(r)
        if opts.get("quiet"):
            data = data["status"]
        print(json.dumps(data, indent=2))
    return 0


def cmd_inspectp(args: list[str]) -> int:
    _, ids = parse_flags(args, {"-o=": "output", "--output=": "output"})
    if not ids:
        raise UsageError("ID cannot be empty")
    pods = load_pods()
    for p in [find([dict(q, id=q.get("id", "")) for q in pods], i, "sandbox") for i in ids]:
        print(json.dumps({"status": pod_json(p)}, indent=2))
    return 0


def pod_json(p: dict) -> dict:
    return {
        "id": p.get("id", ""),
        "metadata": {"attempt": p.get("attempt", 0), "name": p.get("name", ""), "namespace": p.get("namespace", ""),
                     "uid": p.get("uid", "")},
        "state": "SANDBOX_READY" if pod_ready(p) else "SANDBOX_NOTREADY",
        "createdAt": rfc3339(p.get("createdAt", 0)),
        "network": {"additionalIps": [], "ip": ""},
        "labels": {"io.kubernetes.pod.name": p.get("name", ""),
                   "io.kubernetes.pod.namespace": p.get("namespace", ""), "io.kubernetes.pod.uid": p.get("uid", "")},
        "annotations": {"kubernetes.io/config.source": "file", "kubernetes.io/config.hash": p.get("uid", "")},
        "runtimeHandler": "",
    }


def cmd_pods(args: list[str]) -> int:
    opts, rest = parse_flags(args, {
        "-q": "quiet", "--quiet": "quiet", "--no-trunc": "notrunc", "--name=": "name", "--namespace=": "namespace",
        "--state=": "state", "-s=": "state", "-o=": "output", "--output=": "output", "--id=": "id",
    })
    if rest:
        raise UsageError(f"unexpected argument {rest[0]!r}")
    pods = sorted(load_pods(), key=lambda p: p.get("createdAt", 0), reverse=True)
    name_re, ns_re = compile_re(opts.get("name")), compile_re(opts.get("namespace"))
    pods = [p for p in pods if (not name_re or name_re.search(p.get("name", "")))
            and (not ns_re or ns_re.search(p.get("namespace", "")))]
    if opts.get("id"):
        pods = [p for p in pods if p.get("id", "").startswith(str(opts["id"]))]
    state = str(opts.get("state", "")).lower()
    if state:
        if state not in ("ready", "notready"):
            raise UsageError("--state should be ready or notready")
        pods = [p for p in pods if pod_ready(p) == (state == "ready")]
    if opts.get("output") == "json":
        print(json.dumps({"items": [pod_json(p) for p in pods]}, indent=2))
        return 0
    if opts.get("quiet"):
        for p in pods:
            print(p.get("id", ""))
        return 0
    trunc = (lambda s: s) if opts.get("notrunc") else (lambda s: s[:TRUNC])
    rows = [["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]]
    for p in pods:
        ready = "Ready" if pod_ready(p) else "NotReady"
        rows.append([trunc(p.get("id", "")), ago(p.get("createdAt", 0)), ready, p.get("name", ""),
                     p.get("namespace", ""), str(p.get("attempt", 0)), "(default)"])
    sys.stdout.write(table(rows))
    return 0


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 time (``2026-01-02T13:23:37Z``, fraction and offset optional) in ns."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(text)
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        secs -= sign * (int(m.group(3)[1:3]) * 3600 + int(m.group(3)[4:6]) * 60)
    return secs * 1_000_000_000 + int((m.group(2) or "").ljust(9, "0"))


def parse_since(value: str) -> int:
    """crictl logs --since: an RFC 3339 time or a Go duration back from now (``42m``)."""
    if value and _DURATION.sub("", value) == "":
        back = sum(float(n) * _UNIT_NS[u] for n, u in _DURATION.findall(value))
        return time.time_ns() - int(back)
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise UsageError(f'failed to parse --since "{value}": not an RFC 3339 time or a duration (e.g. 42m)') from None


def _line_time(line: bytes) -> int:
    try:
        return parse_rfc3339(line.split(b" ", 1)[0].decode())
    except (ValueError, UnicodeDecodeError):
        return 0


def _emit(line: bytes, timestamps: bool) -> None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return
    ts, stream, tag = parts[0], parts[1], parts[2]
    body = parts[3] if len(parts) == 4 else b""
    out = sys.stderr.buffer if stream == b"stderr" else sys.stdout.buffer
    if timestamps:
        out.write(ts + b" ")
    out.write(body + (b"" if tag == b"P" else b"\n"))
    out.flush()


def cmd_logs(args: list[str]) -> int:
    opts, ids = parse_flags(args, {
        "-f": "follow", "--follow": "follow", "-t": "timestamps", "--timestamps": "timestamps",
        "-p": "previous", "--previous": "previous", "--tail=": "tail", "--since=": "since",
        "--limit-bytes=": "limit",
    })
    if len(ids) != 1:
        raise UsageError("ID cannot be empty" if not ids else "only one container ID is accepted")
    record = find(load_containers(), ids[0], "container")
    path = record.get("logPath", "")
    if opts.get("previous"):
        attempt = int(record.get("attempt", 0))
        if attempt == 0:
            print(f"previous terminated container \"{record.get('name')}\" in pod not found", file=sys.stderr)
            return 1
        path = os.path.join(os.path.dirname(path), f"{attempt - 1}.log")
    tail = -1
    if "tail" in opts:
        try:
            tail = int(str(opts["tail"]))
        except ValueError:
            raise UsageError("--tail needs a number") from None
    timestamps = bool(opts.get("timestamps"))
    since = parse_since(str(opts["since"])) if "since" in opts else None
    try:
        f = open(path, "rb")
    except OSError as exc:
        print(f"failed to try resolving symlinks in path \"{path}\": {exc.strerror}", file=sys.stderr)
        return 1
    with f:
        lines = f.readlines()
        if since is not None:
            lines = [line for line in lines if _line_time(line) >= since]
        if tail >= 0:
            lines = lines[max(0, len(lines) - tail):] if tail else []
        for line in lines:
            _emit(line, timestamps)
        if not opts.get("follow"):
            return 0
        pending = b""
        try:
            while True:
                chunk = f.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith(b"\n"):
                        _emit(pending, timestamps)
                        pending = b""
                    continue
                current = _reload(record["id"])
                if current is None or current.get("state") != "CONTAINER_RUNNING":
                    rest = f.read()
                    for line in (pending + rest).splitlines(keepends=True):
                        _emit(line, timestamps)
                    return 0
                time.sleep(0.2)
        except KeyboardInterrupt:
            return 0


def _reload(cid: str) -> dict | None:
    try:
        with open(os.path.join(STATE_DIR, "containers", f"{cid}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _binary_size(command: list[str]) -> int:
    if not command:
        return 0
    name = command[0]
    dirs = [""] if "/" in name else "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".split(":")
    for d in dirs:
        try:
            return os.stat(os.path.join(d, name)).st_size
        except OSError:
            continue
    return 0


def _is_container_process(pid: int, cid: str) -> bool:
    """Whether ``pid`` still runs the container ``cid``: its root is the container's own
    directory (``.../k8s.io/<id>/rootfs``), so a recycled pid is never signalled."""
    try:
        return f"/{cid}/" in os.readlink(f"/proc/{pid}/root") + "/"
    except OSError:
        return False


def _exited(cid: str) -> bool:
    record = _reload(cid)
    return record is None or record.get("state") != "CONTAINER_RUNNING"


def cmd_stop(args: list[str], quiet: bool = False) -> int:
    opts, ids = parse_flags(args, {"-t=": "timeout", "--timeout=": "timeout"})
    if not ids:
        raise UsageError("ID cannot be empty")
    try:
        timeout = int(str(opts.get("timeout", 0)))
    except ValueError:
        raise UsageError(f"invalid value {opts.get('timeout')!r} for flag -t: parse error") from None
    records = load_containers()
    for prefix in ids:
        record = find(records, prefix, "container")
        cid, pid = record["id"], int(record.get("pid") or 0)
        if record.get("state") == "CONTAINER_RUNNING" and pid > 0 and _is_container_process(pid, cid):
            signals = [(15, timeout), (9, 10)] if timeout > 0 else [(9, 10)]
            for sig, wait in signals:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and _is_container_process(pid, cid):
                    time.sleep(0.05)
                if not _is_container_process(pid, cid):
                    break
            # the supervisor reaps the process and records the exit within moments
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not _exited(cid):
                time.sleep(0.05)
        if not quiet:
            print(prefix)
    return 0


def cmd_rm(args: list[str]) -> int:
    opts, ids = parse_flags(args, {"-f": "force", "--force": "force", "-a": "all", "--all": "all"})
    records = load_containers()
    if opts.get("all"):
        ids = [r["id"] for r in records]
    elif not ids:
        raise UsageError("ID cannot be empty")
    failed = False
    for prefix in ids:
        record = find(records, prefix, "container")
        cid = record["id"]
        if record.get("state") == "CONTAINER_RUNNING":
            if not opts.get("force"):
                print(f'container "{cid}" is running, please stop it first', file=sys.stderr)
                failed = True
                continue
            cmd_stop([cid], quiet=True)
        # the supervisor writes a record only when the container's state changes, and it
        # has recorded the exit by now; its garbage collection removes the root later
        for path in (os.path.join(STATE_DIR, "containers", f"{cid}.json"),
                     f"/var/log/containers/{record.get('podName')}_{record.get('podNamespace')}_"
                     f"{record.get('name')}-{cid}.log"):
            try:
                os.unlink(path)
            except OSError:
                pass
        print(prefix)
    return 1 if failed else 0


STOPP_HELP = """NAME:
   crictl stopp - Stop one or more running pods

USAGE:
   crictl stopp [command options] POD-ID [POD-ID...]

COMMANDS:
   help, h  Shows a list of commands or help for one command

OPTIONS:
   --help, -h  show help
"""
RMP_HELP = """NAME:
   crictl rmp - Remove one or more pods

USAGE:
   crictl rmp [command options] POD-ID [POD-ID...]

COMMANDS:
   help, h  Shows a list of commands or help for one command

OPTIONS:
   --all, -a    Remove all pods (default: false)
   --force, -f  Force removal of the pod sandbox, disregarding if running (default: false)
   --help, -h   show help
"""


def _fatal(message: str) -> int:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f'time="{stamp}" level=fatal msg="{json.dumps(message)[1:-1]}"', file=sys.stderr)
    return 1


def _ask_supervisor(verb: str, sandbox: str) -> None:
    """Ask the node agent to stop or remove a sandbox; wait until it has."""
    requests = os.path.join(STATE_DIR, "requests")
    os.makedirs(requests, exist_ok=True)
    path = os.path.join(requests, f"{verb}-{sandbox}")
    with open(path, "w"):
        pass
    deadline = time.monotonic() + 15
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


def cmd_stopp(args: list[str]) -> int:
    opts, ids = parse_flags(args, {"-h": "help", "--help": "help"})
    if not ids or opts.get("help"):
        sys.stdout.write(STOPP_HELP)
        return 0
    pods = load_pods()
    for prefix in ids:
        try:
            pod = find(pods, prefix, "sandbox")
        except NotFound as exc:
            return _fatal(f'stopping the pod sandbox "{prefix}": {exc}')
        if pod_ready(pod):
            _ask_supervisor("stopp", pod["id"])
        print(f"Stopped sandbox {prefix}")
    return 0


def cmd_rmp(args: list[str]) -> int:
    opts, ids = parse_flags(args, {"-f": "force", "--force": "force", "-a": "all", "--all": "all",
                                   "-h": "help", "--help": "help"})
    pods = load_pods()
    if opts.get("all"):
        ids = [p["id"] for p in pods]
    if not ids or opts.get("help"):
        sys.stdout.write(RMP_HELP)
        return 0
    failed = False
    for prefix in ids:
        try:
            pod = find(pods, prefix, "sandbox")
        except NotFound:
            print(f'getting sandbox status of pod "{prefix}": rpc error: code = NotFound desc = '
                  "an error occurred when try to find sandbox: not found", file=sys.stderr)
            failed = True
            continue
        if pod_ready(pod):
            if not opts.get("force"):
                print(f'pod sandbox "{prefix}" is running, please stop it first', file=sys.stderr)
                failed = True
                continue
            _ask_supervisor("stopp", pod["id"])
            print(f"Stopped sandbox {prefix}")
        _ask_supervisor("rmp", pod["id"])
        print(f"Removed sandbox {prefix}")
    return 1 if failed else 0


IMAGE_PROGRAMS = {
    "etcd": ("/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl"),
    **{name: (f"/usr/local/bin/{name}", "/go-runner")
       for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")},
}
"""What the distroless control-plane images of registry.k8s.io ship besides certificates
and time zones: no shell, no ``ls``, no ``tar``. A practice container's root holds the
node's /usr, so an exec checks a command against this list first, as runc would fail it."""


def exec_env(record: dict, tty: bool) -> dict[str, str]:
    """The environment of a command exec'd in a container: the runtime's PATH and HOSTNAME,
    then the container's own variables, and TERM with a terminal."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOSTNAME": os.uname().nodename}
    for item in record.get("env", []):
        key, _, value = str(item).partition("=")
        env[key] = value
    if tty:
        env.setdefault("TERM", os.environ.get("TERM", "xterm"))
    return env


def exec_refusal(command: list[str], image: str, cid: str) -> str:
    """Why runc cannot start ``command`` in a container of ``image``, as containerd says it
    (``""`` when it can, or when the image is not one of the known distroless ones)."""
    repository = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    programs = IMAGE_PROGRAMS.get(repository)
    if programs is None or not command:
        return ""
    name = command[0]
    if "/" in name:
        if os.path.normpath(name) in programs:
            return ""
        reason = f'exec: "{name}": stat {name}: no such file or directory'
    else:
        if any(p == f"/usr/local/bin/{name}" for p in programs):
            return ""
        reason = f'exec: "{name}": executable file not found in $PATH'
    exec_id = hashlib.sha256(f"{cid}{time.time_ns()}".encode()).hexdigest()
    return (f'failed to exec in container: failed to start exec "{exec_id}": OCI runtime exec '
            f"failed: exec failed: unable to start container process: {reason}: unknown")


def cmd_exec(args: list[str]) -> int:
    opts: dict[str, object] = {}
    i = 0
    flags = {"-i": "stdin", "--interactive": "stdin", "-t": "tty", "--tty": "tty", "-s": "sync", "--sync": "sync"}
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        arg = args[i]
        if arg in flags:
            opts[flags[arg]] = True
        elif arg.startswith("--timeout"):
            if "=" not in arg:
                i += 1
        elif re.fullmatch(r"-[its]+", arg):
            for ch in arg[1:]:
                opts[flags["-" + ch]] = True
        else:
            raise UsageError(f"flag provided but not defined: {arg.split('=', 1)[0]}")
        i += 1
    if i < len(args) and args[i] == "--":
        i += 1
    if i >= len(args):
        raise UsageError("ID cannot be empty")
    cid_given, command = args[i], args[i + 1:]
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("command cannot be empty")
    record = find(load_containers(), cid_given, "container")
    cid, pid = record["id"], int(record.get("pid") or 0)
    if record.get("state") != "CONTAINER_RUNNING" or pid <= 0 or not _is_container_process(pid, cid):
        print(f"execing command in container {cid}: rpc error: code = Unknown desc = "
              f"container is in {record.get('state', 'CONTAINER_UNKNOWN')} state", file=sys.stderr)
        return 1
    refusal = exec_refusal(command, str(record.get("image", "")), cid)
    if refusal:
        print(f"execing command in container {cid}: rpc error: code = Unknown desc = {refusal}",
              file=sys.stderr)
        return 1
    env = exec_env(record, bool(opts.get("tty")))
    argv = ["nsenter", "--target", str(pid), "--mount", "--net", "--uts", "--ipc", "--root", "--wd", "--", *command]
    try:
        done = subprocess.run(argv, env=env, stdin=None if opts.get("stdin") else subprocess.DEVNULL)
    except FileNotFoundError:
        print("crictl exec needs nsenter on the node (util-linux)", file=sys.stderr)
        return 1
    if done.returncode != 0:
        code = done.returncode if done.returncode > 0 else 128 - done.returncode
        print(f"execing command in container {cid}: command terminated with exit code {code}", file=sys.stderr)
        return 1
    return 0


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _layer_usage(cid: str) -> tuple[int, int]:
    """Bytes and inodes of the container's own root (its writable layer)."""
    root = f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{cid}/rootfs"
    size, inodes = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            inodes += 1
            size += st.st_blocks * 512
    return size, inodes


def cmd_stats(args: list[str]) -> int:
    opts, ids = parse_flags(args, {"-a": "all", "--all": "all", "--name=": "name", "--id=": "id",
                                   "-p=": "pod", "--pod=": "pod", "-o=": "output", "--output=": "output"})
    records = load_containers()
    if not opts.get("all"):
        records = [r for r in records if r.get("state") == "CONTAINER_RUNNING"]
    name_re = compile_re(opts.get("name"))
    wanted = [str(x) for x in ids] + ([str(opts["id"])] if opts.get("id") else [])
    records = [r for r in records if (not name_re or name_re.search(r.get("name", "")))
               and (not wanted or any(r.get("id", "").startswith(w) for w in wanted))
               and (not opts.get("pod") or r.get("podSandboxId", "").startswith(str(opts["pod"])))]
    records.sort(key=lambda r: r.get("id", ""))
    running = [r for r in records if r.get("state") == "CONTAINER_RUNNING" and int(r.get("pid") or 0) > 0]
    before = {r["id"]: _cpu_ticks(int(r["pid"])) for r in running}
    start = time.monotonic()
    time.sleep(0.5 if running else 0)
    elapsed = max(time.monotonic() - start, 1e-3)
    ticks = os.sysconf("SC_CLK_TCK")
    rows = [["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP"]]
    for r in records:
        pid = int(r.get("pid") or 0)
        live = r["id"] in before
        cpu = (_cpu_ticks(pid) - before[r["id"]]) / ticks / elapsed * 100 if live else 0.0
        disk, inodes = _layer_usage(r["id"])
        rows.append([r["id"][:TRUNC], r.get("name", ""), f"{cpu:.2f}", human_size(_rss(pid) if live else 0, 4),
                     human_size(disk, 4), str(inodes), "0B"])
    # crictl v1.34 clears the screen before its table, as its --watch mode does
    sys.stdout.write("\x1b[2J\x1b[H" + table(rows))
    return 0


def cmd_info(args: list[str]) -> int:
    parse_flags(args, {"-o=": "output", "--output=": "output", "-q": "quiet", "--quiet": "quiet"})
    conditions = [{"message": "", "reason": "", "status": True, "type": t} for t in ("RuntimeReady", "NetworkReady")]
    info = {
        "config": {
            "containerd": {"defaultRuntimeName": "runc", "snapshotter": "overlayfs"},
            "containerdEndpoint": "/run/containerd/containerd.sock",
            "containerdRootDir": "/var/lib/containerd",
            "rootDir": "/var/lib/containerd/io.containerd.grpc.v1.cri",
            "sandboxImage": "registry.k8s.io/pause:3.10.1",
            "stateDir": "/run/containerd/io.containerd.grpc.v1.cri",
        },
        "lastCNILoadStatus": "OK",
        "status": {"conditions": conditions},
    }
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def cmd_version(args: list[str]) -> int:
    parse_flags(args, {"-o=": "output", "--output=": "output"})
    print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  cka-sim-node-agent\nRuntimeApiVersion:  v1")
    return 0


def cmd_images(args: list[str]) -> int:
    opts, rest = parse_flags(args, {"-q": "quiet", "--quiet": "quiet", "--no-trunc": "notrunc",
                                    "--digests": "digests", "-o=": "output", "--output=": "output"})
    images: dict[str, int] = {}
    for r in load_containers():
        images[r.get("image", "")] = max(images.get(r.get("image", ""), 0), _binary_size(r.get("command", [])))
    for p in load_pods():
        for c in p.get("containers", []):
            images.setdefault(c.get("image", ""), 0)
    images.pop("", None)
    if rest:
        images = {k: v for k, v in images.items() if k in rest or k.rsplit(":", 1)[0] in rest}
    rows = [["IMAGE", "TAG", "IMAGE ID", "SIZE"]]
    for image in sorted(images):
        image_id = hashlib.sha256(image.encode()).hexdigest()
        if opts.get("quiet"):
            print("sha256:" + image_id)
            continue
        repo, tag = image, "<none>"
        if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
            repo, tag = image.rsplit(":", 1)
        elif "@" not in image:
            tag = "latest"
        rows.append([repo, tag, image_id if opts.get("notrunc") else image_id[:TRUNC], human_size(images[image])])
    if not opts.get("quiet"):
        sys.stdout.write(table(rows))
    return 0


COMMANDS = {
    "ps": cmd_ps,
    "pods": cmd_pods,
    "logs": cmd_logs,
    "inspect": cmd_inspect,
    "inspectp": cmd_inspectp,
    "images": cmd_images,
    "image": cmd_images,
    "stop": cmd_stop,
    "rm": cmd_rm,
    "stopp": cmd_stopp,
    "rmp": cmd_rmp,
    "exec": cmd_exec,
    "stats": cmd_stats,
    "info": cmd_info,
    "version": cmd_version,
    "img": cmd_images,
}

GLOBAL_WITH_VALUE = {"-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout", "-c", "--config"}


def main(argv: list[str]) -> int:
    """Run one crictl command; return its exit code."""
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args[0].split("=", 1)[0]
        if flag in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if flag in GLOBAL_WITH_VALUE and "=" not in args[0]:
            args = args[2:]
        else:
            args = args[1:]
    if not args or args[0] in ("help", "h"):
        sys.stdout.write(USAGE)
        return 0 if args else 1
    command = COMMANDS.get(args[0])
    if command is None:
        sys.stderr.write(f"No help topic for '{args[0]}'\n\n{USAGE}")
        return 1
    try:
        return command(args[1:])
    except UsageError as exc:
        print(f"crictl {args[0]}: {exc}", file=sys.stderr)
        return 1
    except NotFound as exc:
        print(f"E{time.strftime('%m%d %H:%M:%S')} {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
