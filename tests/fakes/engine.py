"""Stand-ins for the ``docker`` and ``kind`` commands, for tests of the kind driver.

They behave as the real commands do for the subset the driver uses, on real nodes: a
"kind cluster" is a cluster of the embedded driver (real namespaces, real etcd), each of
its nodes a "container" named as kind names them (``<cluster>-control-plane``,
``<cluster>-control-plane2``, ``<cluster>-worker``, plus ``<cluster>-external-load-balancer``
with several control planes). As on kind, the nodes have no etcdctl or etcdutl, and a
node's hostname is its container's name.

``docker exec`` enters the node's namespaces (nsenter + chroot) and execs the command, so
stdin, stdout, stderr and the exit status pass straight through. The engine "runs" while
``CKA_SIM_FAKE_DOCKER`` names a state directory; without it every docker call fails as
with a stopped daemon. Containers are recorded in ``$CKA_SIM_FAKE_DOCKER/containers.json``;
the embedded clusters live under ``$CKA_SIM_FAKE_DOCKER/local`` (their CKA_SIM_HOME).

Usage: ``engine.py docker ARGS...`` or ``engine.py kind ARGS...`` (see the wrappers).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
DAEMON_DOWN = ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?")
KIND_LOOKALIKE = """
hostname "$1" && printf '%s\\n' "$1" > /etc/hostname
for tool in etcdctl etcdutl; do
    umount "/usr/local/bin/$tool" 2>/dev/null
    rm -f "/usr/local/bin/$tool"
done
mount -o remount,size=256m /usr/local/bin
"""


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.exit(code)


def state_dir() -> Path | None:
    value = os.environ.get("CKA_SIM_FAKE_DOCKER")
    if not value:
        return None
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["CKA_SIM_HOME"] = str(path / "local")
    return path


def load(state: Path) -> dict:
    try:
        return json.loads((state / "containers.json").read_text())
    except (OSError, ValueError):
        return {}


def save(state: Path, containers: dict) -> None:
    tmp = state / f"containers.json.{os.getpid()}"
    tmp.write_text(json.dumps(containers, indent=2))
    os.replace(tmp, state / "containers.json")


def local_node(entry: dict):
    """The LocalNode behind a container, or None when its cluster is not running."""
    from simulator.cluster.local.driver import LocalDriver
    from simulator.errors import ClusterError

    if entry.get("node") is None:
        return None
    try:
        cluster = LocalDriver().attach(entry["cluster"])
        return cluster.node(entry["node"])
    except ClusterError:
        return None


def container_state(entry: dict) -> str:
    if entry.get("node") is None:
        from simulator.cluster.local.driver import LocalDriver

        running = {c.name for c in LocalDriver().list() if c.state == "running"}
        return "running" if entry["cluster"] in running else "exited"
    node = local_node(entry)
    return "running" if node is not None and node.alive() else "exited"


# -- docker -------------------------------------------------------------------------------


def render(template: str, name: str, entry: dict, state: str) -> str:
    def label(match: re.Match) -> str:
        return entry["labels"].get(match.group(1), "")

    text = re.sub(r'\{\{\s*\.Label\s+"([^"]+)"\s*\}\}', label, template)
    values = {"Names": name, "State": state, "ID": entry["id"], "Image": entry["image"],
              "Status": "Up" if state == "running" else "Exited (137)",
              "Labels": ",".join(f"{k}={v}" for k, v in entry["labels"].items())}
    text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), text)
    return text.replace("\\t", "\t")


def docker_ps(state: Path, args: list[str]) -> None:
    show_all = quiet = False
    template = None
    filters: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("-a", "--all"):
            show_all = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-f", "--filter"):
            filters.append(next(it))
        elif arg.startswith("--filter="):
            filters.append(arg.split("=", 1)[1])
        elif arg == "--format":
            template = next(it)
        elif arg.startswith("--format="):
            template = arg.split("=", 1)[1]
        elif arg == "--no-trunc":
            pass
        else:
            fail(f"unknown flag: {arg}\nSee 'docker ps --help'.", 125)
    rows = []
    for name, entry in sorted(load(state).items()):
        ok = True
        for item in filters:
            key, _, value = item.partition("=")
            if key == "name":
                ok = ok and value in name
            elif key == "label":
                lkey, has_value, lvalue = value.partition("=")
                have = entry["labels"].get(lkey)
                ok = ok and have is not None and (not has_value or have == lvalue)
            else:
                fail(f'Error response from daemon: invalid filter "{key}"')
        if not ok:
            continue
        status = container_state(entry)
        if status != "running" and not show_all:
            continue
        if quiet:
            rows.append(entry["id"])
        elif template is not None:
            rows.append(render(template, name, entry, status))
        else:
            rows.append(render("{{.ID}}\t{{.Image}}\t{{.Status}}\t{{.Names}}", name, entry,
                               status))
    if not quiet and template is None:
        print("CONTAINER ID\tIMAGE\tSTATUS\tNAMES")
    for row in rows:
        print(row)


def running_node(state: Path, name: str):
    entry = load(state).get(name)
    if entry is None:
        fail(f"Error response from daemon: No such container: {name}")
    node = local_node(entry)
    if node is None or not node.alive():
        if entry.get("node") is None:
            fail("OCI runtime exec failed: exec failed: unable to start container process: "
                 "the load balancer image runs no shell: unknown", 126)
        fail(f"Error response from daemon: container {entry['id']} is not running")
    return node


def docker_exec(state: Path, args: list[str]) -> None:
    from simulator.cluster.local import nodes as nodes_mod

    env: dict[str, str] = {}
    workdir = "/"
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("-e", "--env"):
            key, _, value = args[i + 1].partition("=")
            env[key] = value
            i += 2
        elif arg.startswith("--env="):
            key, _, value = arg.split("=", 1)[1].partition("=")
            env[key] = value
            i += 1
        elif arg in ("-w", "--workdir"):
            workdir = args[i + 1]
            i += 2
        elif arg in ("-u", "--user"):
            if args[i + 1] not in ("0", "root"):
                fail("fake docker: only root is supported", 125)
            i += 2
        elif re.fullmatch(r"-[it]+", arg) or arg in ("--interactive", "--tty"):
            i += 1
        else:
            fail(f"unknown flag: {arg}\nSee 'docker exec --help'.", 125)
    if len(args) - i < 2:
        fail('"docker exec" requires at least 2 arguments.', 1)
    node = running_node(state, args[i])
    argv = args[i + 1:]
    enter = [nodes_mod._tool("nsenter"), "-t", str(node.pid), "--user", "--mount", "--uts",
             "--ipc", "--net", "--pid", "--", nodes_mod._tool("chroot"), str(node.rootfs),
             "/usr/bin/env", "-C", workdir, "--", *argv]
    os.execve(enter[0], enter, node.login_env(env))


def docker_cp(state: Path, args: list[str]) -> None:
    args = [a for a in args if a not in ("-a", "--archive", "-L", "--follow-link", "-q")]
    if len(args) != 2:
        fail('"docker cp" requires exactly 2 arguments.', 1)
    src, dst = args
    if ":" in dst and ":" not in src:
        name, _, path = dst.partition(":")
        node = running_node(state, name)
        try:
            data = Path(src).read_bytes()
            mode = os.stat(src).st_mode & 0o7777
        except OSError as exc:
            fail(f"lstat {src}: {exc.strerror.lower()}")
        if path.endswith("/") or node.run(["test", "-d", path]).ok:
            path = path.rstrip("/") + "/" + os.path.basename(src)
        node.write_file(path, data, mode)
    elif ":" in src and ":" not in dst:
        name, _, path = src.partition(":")
        node = running_node(state, name)
        try:
            data = node.read_file(path)
        except FileNotFoundError:
            fail(f"Error response from daemon: Could not find the file {path} in container "
                 f"{name}")
        target = Path(dst)
        if target.is_dir():
            target = target / os.path.basename(path)
        target.write_bytes(data)
    else:
        fail("copying between containers is not supported", 1)


def docker_inspect(state: Path, args: list[str]) -> None:
    """``docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' NAME...``:
    the address of each container's node, the one template the driver asks for."""
    names = [a for a in args if not a.startswith("--format") and a != args[args.index("--format") + 1]] \
        if "--format" in args else args
    for name in names:
        print(f"{running_node(state, name).ip} ")


def docker(args: list[str]) -> None:
    state = state_dir()
    if not args:
        fail("Usage:  docker [OPTIONS] COMMAND", 0)
    command, rest = args[0], args[1:]
    if command == "version" and state is None:
        print("Client: fake")
        fail(DAEMON_DOWN)
    if state is None:
        fail(DAEMON_DOWN)
    if command == "info":
        template = rest[rest.index("--format") + 1] if "--format" in rest else None
        print("27.0.0-fake" if template and "ServerVersion" in template
              else "Server Version: 27.0.0-fake")
    elif command == "version":
        print("Client: fake\nServer: 27.0.0-fake")
    elif command == "ps":
        docker_ps(state, rest)
    elif command == "exec":
        docker_exec(state, rest)
    elif command == "cp":
        docker_cp(state, rest)
    elif command == "inspect":
        docker_inspect(state, rest)
    else:
        fail(f"fake docker: `docker {command}` is not implemented", 2)


# -- kind ---------------------------------------------------------------------------------


def options(args: list[str], known: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        key, eq, value = arg.partition("=")
        if key not in known:
            fail(f"ERROR: unknown flag: {key}")
        found[key] = value if eq else next(it, "")
    return found


def status(text: str) -> None:
    sys.stderr.write(f" \u2022 {text}  ...\n")
    sys.stderr.write(f" \u2713 {text}\n")
    sys.stderr.flush()


def kind_create(state: Path, args: list[str]) -> None:
    import yaml

    from simulator.cluster.local.driver import LocalDriver
    from simulator.cluster.node import ClusterSpec
    from simulator.errors import SimError

    opts = options(args, {"--name", "--config", "--wait", "--kubeconfig", "--image",
                          "--retain"})
    name = opts.get("--name", "kind")
    config_path = opts.get("--config")
    text = sys.stdin.read() if config_path == "-" else (
        Path(config_path).read_text() if config_path else "")
    config = yaml.safe_load(text) if text else {}
    if config and (config.get("kind") != "Cluster"
                   or config.get("apiVersion") != "kind.x-k8s.io/v1alpha4"):
        fail("ERROR: failed to create cluster: unknown apiVersion or kind in config")
    roles = [n.get("role", "control-plane") for n in (config or {}).get("nodes")
             or [{"role": "control-plane"}]]
    control, workers = roles.count("control-plane"), roles.count("worker")
    containers = load(state)
    if any(e["cluster"] == name for e in containers.values()):
        fail("ERROR: failed to create cluster: node(s) already exist for a cluster with "
             f'the name "{name}"')
    image = opts.get("--image") or "kindest/node:v1.34.0-fake"
    sys.stderr.write(f'Creating cluster "{name}" ...\n')
    status(f"Ensuring node image ({image})")
    try:
        cluster = LocalDriver().create(ClusterSpec(name, control, workers, ("etcd",)),
                                       lambda step: None)
    except SimError as exc:
        fail(f"ERROR: failed to create cluster: {exc.message}\n{exc.hint}")
    status("Preparing nodes")
    entries: dict[str, dict] = {}
    for node in cluster.nodes:
        role = "control-plane" if node.name.startswith("controlplane") else "worker"
        index = int(re.sub(r"\D", "", node.name) or 1)
        suffix = "control-plane" if role == "control-plane" else "worker"
        container = f"{name}-{suffix}{index if index > 1 else ''}"
        entries[container] = {"cluster": name, "node": node.name, "role": role}
        node.run(["sh", "-c", KIND_LOOKALIKE, "sh", container]).check()
    if control > 1:
        entries[f"{name}-external-load-balancer"] = {
            "cluster": name, "node": None, "role": "external-load-balancer"}
    for container, entry in entries.items():
        entry["id"] = os.urandom(6).hex()
        entry["image"] = "kindest/haproxy" if entry["node"] is None else image
        entry["labels"] = {CLUSTER_LABEL: name, ROLE_LABEL: entry["role"]}
        containers[container] = entry
    save(state, containers)
    status("Writing configuration")
    status("Starting control-plane")
    if workers:
        status("Joining worker nodes")
    if opts.get("--wait"):
        status(f"Waiting \u2264 {opts['--wait']} for control-plane = Ready")
    if opts.get("--kubeconfig"):
        Path(opts["--kubeconfig"]).write_text(f"# kind-{name} (fake: no API server)\n")
    sys.stderr.write(f'Set kubectl context to "kind-{name}"\n')


def kind_delete(state: Path, args: list[str]) -> None:
    from simulator.cluster.local.driver import LocalDriver

    opts = options(args, {"--name", "--kubeconfig"})
    name = opts.get("--name", "kind")
    sys.stderr.write(f'Deleting cluster "{name}" ...\n')
    LocalDriver().delete(name)
    containers = load(state)
    save(state, {c: e for c, e in containers.items() if e["cluster"] != name})


def kind(args: list[str]) -> None:
    state = state_dir()
    if args[:1] == ["version"]:
        print("kind v0.30.0-fake go1.24 linux/amd64")
        return
    if state is None:
        fail("ERROR: failed to list clusters: command \"docker ps -a --filter "
             "label=io.x-k8s.kind.cluster\" failed with error: exit status 1\n"
             f"Command Output: {DAEMON_DOWN}")
    if args[:2] == ["get", "clusters"]:
        names = sorted({e["cluster"] for e in load(state).values()})
        if not names:
            sys.stderr.write("No kind clusters found.\n")
        for name in names:
            print(name)
    elif args[:2] == ["create", "cluster"]:
        kind_create(state, args[2:])
    elif args[:2] == ["delete", "cluster"]:
        kind_delete(state, args[2:])
    else:
        fail(f"fake kind: `kind {' '.join(args[:2])}` is not implemented", 2)


if __name__ == "__main__":
    {"docker": docker, "kind": kind}[sys.argv[1]](sys.argv[2:])
