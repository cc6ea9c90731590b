#!/usr/bin/env python3
"""crictl for practice nodes: lists and inspects the static-pod containers of this node.

Standalone on purpose: the embedded driver copies this file into each node as
/usr/local/bin/crictl, where only the host's Python standard library is available. It
reads the state the node's supervisor writes (``$CRICTL_STATE_DIR``, default
``/run/cka-sim``): ``containers/<id>.json`` per container and ``pods.json``.

Supported: ps [-a] [--name RE] [-q] [--state S] [-p POD] [-l] [--no-trunc] [-o json],
pods [--name RE] [--namespace RE] [-q], logs [-f] [--tail N] [-t] [-p] ID,
inspect ID..., inspectp ID, images [-q]. Output follows the real crictl (cri-tools).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
import time

STATE_DIR = os.environ.get("CRICTL_STATE_DIR", "/run/cka-sim")
TRUNC = 13
USAGE = """NAME:
   crictl - client for CRI

USAGE:
   crictl [global options] command [command options]

COMMANDS:
   images, image, img  List images
   inspect             Display the status of one or more containers
   inspectp            Display the status of one or more pods
   logs                Fetch the logs of a container
   pods                List pods
   ps                  List containers
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


def human_size(size: float) -> str:
    """Go's units.HumanSizeWithPrecision(size, 3), as crictl images prints sizes."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


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
    try:
        with open(os.path.join(STATE_DIR, "pods.json")) as f:
            return list(json.load(f).get("pods", []))
    except (OSError, ValueError):
        return []


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
        "metadata": {"attempt": 0, "name": p.get("name", ""), "namespace": p.get("namespace", ""),
                     "uid": p.get("uid", "")},
        "state": "SANDBOX_NOTREADY" if p.get("status") == "Terminating" else "SANDBOX_READY",
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
        pods = [p for p in pods if (p.get("status") != "Terminating") == (state == "ready")]
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
        ready = "NotReady" if p.get("status") == "Terminating" else "Ready"
        rows.append([trunc(p.get("id", "")), ago(p.get("createdAt", 0)), ready, p.get("name", ""),
                     p.get("namespace", ""), "0", "(default)"])
    sys.stdout.write(table(rows))
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
    try:
        f = open(path, "rb")
    except OSError as exc:
        print(f"failed to try resolving symlinks in path \"{path}\": {exc.strerror}", file=sys.stderr)
        return 1
    with f:
        lines = f.readlines()
        if tail >= 0:
            lines = lines[len(lines) - tail:] if tail else []
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
