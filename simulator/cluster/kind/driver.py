"""The kind driver: practice clusters as kind clusters (kubeadm in Docker containers).

``create`` runs ``kind create cluster`` with a generated config, then makes each node look
like an exam node: ``etcdctl`` and ``etcdutl`` matching the cluster's etcd are copied into
every control plane's ``/usr/local/bin`` (kind ships neither), and root's shell gets the
session prompt of the embedded driver; every node lists the others under their exam names
in ``/etc/hosts`` and, where the image has OpenSSH's server (cka-sim's offline image does,
the official kindest/node does not), root may ``ssh node01`` with the cluster's key. Nodes
keep the exam's names (``controlplane``, ``node01``) for scenarios; Docker calls use the
container names kind gives them (``<cluster>-control-plane``, ``<cluster>-worker``). A
jump host (``spec.jump_host``) is the container ``<cluster>-student`` of
:mod:`simulator.cluster.kind.jumphost`, and the user ``candidate`` is added to every node.

A cluster made here is recorded in ``clusters_dir()/<name>/cluster.json`` (driver
``kind``), which is how :meth:`KindDriver.list` tells its clusters from other kind clusters
on the machine; the cluster's kubeconfig sits next to it, so the user's own
``~/.kube/config`` is never touched.

Why one module of ~700 lines: ``create`` is one ordered sequence (kind's run and its one
retry, the nodes' tools, names, ssh, the jump host, etcd under systemd, readiness) whose
steps share the cluster record and its clean-up on failure; the pieces that stand alone
are modules already (nodes, jumphost, etcdunit, candidate).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import os
import re
import select
import shutil
import subprocess
import tarfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import yaml

from simulator.cluster import binaries, candidate, etcdunit, kubeadm
from simulator.cluster.kind import jumphost
from simulator.cluster.kind.nodes import (
    DOCKER_HINT,
    ENGINE_HINT,
    KIND_HINT,
    KindNode,
    docker,
    tool,
    which,
)
from simulator.cluster.node import (
    JUMP_HOST,
    JUMP_HOST_ROLE,
    ClusterInfo,
    ClusterSpec,
    Progress,
    Step,
    find_node,
)
from simulator.cluster.shell import BASHRC, PROFILE, SESSION_ENV_PATH
from simulator.cluster.sshkeys import SSH_DIRS, ClusterKeys
from simulator.errors import ClusterError, DockerUnavailable
from simulator.paths import clusters_dir
from simulator.versions import KIND_NODE_IMAGE, KIND_VERSION

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
NODE_ROLES = ("control-plane", "worker", JUMP_HOST_ROLE)
CREATE_TIMEOUT = 1200.0
# kind failures that a second try gets past: a node container that died while kind set it
# up, or a kubelet that a loaded machine kept from answering within kubeadm's 4 minutes
TRANSIENT = re.compile(r"cannot exec in a stopped container|"
                       r"kubelet is not healthy after|failed to init node with kubeadm")
ETCD_TIMEOUT = 60.0
READY_TIMEOUT = 120.0
ETCD_TOOLS = ("etcdctl", "etcdutl")
TOOLS_DIR = "/usr/local/bin"
NODE_NAME_PATH = "/etc/cka-sim/node-name"
IMAGE_ENV = "CKA_SIM_KIND_IMAGE"

_CONTAINER_RE = re.compile(r"^(control-plane|worker)(\d*)$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL_PLANE_STEPS = ("Writing configuration", "Starting control-plane", "Installing CNI",
                        "Installing StorageClass", "Joining", "Waiting")
_NODE_STEPS = ("Ensuring node image", "Preparing nodes")

# Installs the keys (a tar on stdin), makes any host key the image lacks, starts sshd.
# Exit status 3: the image has no OpenSSH server (or no systemd running to start it).
_SSH_SETUP = r"""
if [ ! -x /usr/sbin/sshd ] || [ ! -d /run/systemd/system ]; then cat >/dev/null; exit 3; fi
tar -x -f - -C / && ssh-keygen -A >/dev/null && systemctl enable --now -q ssh.service
"""

_PROMPT_NAME = r"""
# cka-sim: the prompt names the node as the exam does, not after its container.
if [ -r /etc/cka-sim/node-name ]; then
    read -r __cka_sim_node < /etc/cka-sim/node-name
    [ -n "$__cka_sim_node" ] && PS1=${PS1//'\h'/$__cka_sim_node}
fi
"""


@dataclasses.dataclass
class KindCluster:
    """A kind cluster (implements the Cluster protocol)."""

    name: str
    nodes: list[KindNode]
    driver: str = "kind"

    def node(self, name: str) -> KindNode:
        """The node called ``name`` (exam name); ClusterError naming the known nodes otherwise."""
        return find_node(self.nodes, name)  # type: ignore[return-value]


def _name_patches(name: str, first: bool) -> list[str]:
    """kubeadm config patches that register a node as ``name``: kubeadm then names the
    Node object, the static pods (``etcd-<name>``), the etcd member and the kubelet's
    ``--hostname-override`` after it, as on an exam cluster."""
    kinds = ["InitConfiguration", "JoinConfiguration"] if first else ["JoinConfiguration"]
    return [yaml.safe_dump({"kind": kind, "nodeRegistration": {"name": name}})
            for kind in kinds]


def kind_config(spec: ClusterSpec) -> str:
    """The kind cluster config for ``spec``: its control planes, then its workers, each
    registered under the exam's name (``controlplane``, ``controlplane2``, ``node01``)."""
    nodes = []
    for index in range(1, spec.control_planes + 1):
        name = "controlplane" if index == 1 else f"controlplane{index}"
        nodes.append({"role": "control-plane",
                      "kubeadmConfigPatches": _name_patches(name, index == 1)})
    for index in range(1, spec.workers + 1):
        nodes.append({"role": "worker",
                      "kubeadmConfigPatches": _name_patches(f"node{index:02d}", False)})
    return yaml.safe_dump({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                           "nodes": nodes}, sort_keys=False)


def exam_name(cluster: str, container: str) -> str | None:
    """The exam's name of a kind node container (``<c>-control-plane2`` -> ``controlplane2``,
    ``<c>-worker`` -> ``node01``, ``<c>-student`` -> ``student``); None for other containers
    of the cluster."""
    if not container.startswith(cluster + "-"):
        return None
    if container == f"{cluster}-{jumphost.SUFFIX}":
        return JUMP_HOST
    match = _CONTAINER_RE.match(container[len(cluster) + 1:])
    if match is None:
        return None
    index = int(match.group(2) or 1)
    if match.group(1) == "control-plane":
        return "controlplane" if index == 1 else f"controlplane{index}"
    return f"node{index:02d}"


def etcd_version_of(manifest: bytes) -> str | None:
    """The etcd version of a kubeadm etcd static-pod manifest, read from its image tag
    (``registry.k8s.io/etcd:3.5.15-0`` -> ``3.5.15``); None when there is no such tag."""
    try:
        pod = yaml.safe_load(manifest)
        image = pod["spec"]["containers"][0]["image"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None
    image = str(image).split("@", 1)[0]
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    match = re.match(r"^v?(\d+\.\d+\.\d+)", tag)
    return match.group(1) if match else None


def etcd_tools(version: str | None) -> tuple[dict[str, Path], str]:
    """Host copies of etcdctl and etcdutl to put in the nodes, and a sentence about them.

    A copy of ``version`` is preferred (the cache's ``etcd-v<version>`` directory, then
    what :func:`binaries.find` returns); otherwise the one available is used and the
    sentence says that its version differs. Raises BinaryMissing when a tool is absent.
    """
    chosen: dict[str, Path] = {}
    found: dict[str, str] = {}
    for name in ETCD_TOOLS:
        candidates = []
        if version:
            candidates.append(binaries.etcd_cache_dir(version) / name)
        candidates.append(binaries.find(name))
        for path in candidates:
            if not (path.is_file() and os.access(path, os.X_OK)):
                continue
            have = binaries.etcd_version(path)
            if name not in chosen or have == version:
                chosen[name], found[name] = path.resolve(), have
            if have == version:
                break
    versions = sorted(set(found.values()))
    if version is None:
        return chosen, f"etcdctl/etcdutl {', '.join(versions)} (the cluster's etcd version is unknown)"
    if versions == [version]:
        return chosen, f"etcdctl/etcdutl {version}, as the cluster's etcd"
    return chosen, (f"etcdctl/etcdutl {', '.join(versions)}: no {version} here, the "
                    f"cluster runs etcd {version} (put etcd-v{version} tools in "
                    f"{binaries.etcd_cache_dir(version)} to match it)")


def _record_dir(name: str) -> Path:
    if not NAME_RE.match(name):
        raise ClusterError(f"invalid cluster name {name!r}",
                           hint="use lower-case letters, digits and dashes (at most 40)")
    return clusters_dir() / name


def _read_record(name: str) -> dict | None:
    try:
        record = json.loads((_record_dir(name) / "cluster.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("driver") == "kind" else None


def _write_record(directory: Path, record: dict) -> None:
    tmp = directory / "cluster.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, directory / "cluster.json")


def _clean_line(raw: bytes) -> str:
    text = _ANSI.sub("", raw.decode(errors="replace"))
    text = re.sub(r"[^\x20-\x7e\u2264]", "", text)
    return re.sub(r"\s+", " ", text).strip(" .")


def _step_of(line: str) -> Step | None:
    if any(key in line for key in _NODE_STEPS):
        return Step("nodes", 0, 3, line)
    if any(key in line for key in _CONTROL_PLANE_STEPS):
        return Step("control plane", 1, 3, line)
    return None


def _docker_engine() -> tuple[bool, str]:
    if not shutil.which("docker"):
        return False, "not installed; the kind driver needs Docker (https://docs.docker.com/engine/install/)"
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, "the Docker engine does not answer; is the daemon running?"
    if done.returncode != 0:
        return False, "the Docker client is installed but no engine runs; start it (systemctl start docker)"
    return True, f"engine {done.stdout.strip()}"


def _kind_cli() -> tuple[str, bool, str]:
    kind = which("kind")
    if kind is None:
        return ("kind", False, "not installed; " + KIND_HINT)
    try:
        said = subprocess.run([kind, "version"], capture_output=True, text=True, timeout=10)
        version = said.stdout.split()[1] if said.returncode == 0 and said.stdout.split()[1:] else "?"
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    note = "" if version == KIND_VERSION else f" (cka-sim is tested with {KIND_VERSION})"
    return ("kind", True, f"{kind}: {version}{note}")


# kind's documented limits (known issues, "Pod errors due to too many open files"): every
# node's systemd, kubelet and containerd take inotify instances, all under root's limit
INOTIFY_LIMITS = {"max_user_instances": 512, "max_user_watches": 524288}


def _inotify_line(root: Path = Path("/proc/sys/fs/inotify")) -> tuple[str, bool, str]:
    """Whether the kernel's inotify limits let several kind nodes start."""
    have: dict[str, int] = {}
    for key in INOTIFY_LIMITS:
        try:
            have[key] = int((root / key).read_text())
        except (OSError, ValueError):
            return ("inotify", True, f"cannot read {root / key}; kind asks for "
                                     f"{key} >= {INOTIFY_LIMITS[key]}")
    shown = ", ".join(f"{key} {value}" for key, value in have.items())
    low = [key for key, want in INOTIFY_LIMITS.items() if have[key] < want]
    if not low:
        return ("inotify", True, shown)
    fix = " ".join(f"fs.inotify.{key}={INOTIFY_LIMITS[key]}" for key in low)
    return ("inotify", False, f"{shown}: below what kind needs, so a cluster of several nodes "
                              "may leave one that never registers (its kubelet fails with "
                              f"\"too many open files\"); raise them: sudo sysctl -w {fix}")


class KindDriver:
    """Practice clusters made by kind in Docker (implements Driver)."""

    name = "kind"

    def __init__(self, image: str | None = None) -> None:
        self.image = image or os.environ.get(IMAGE_ENV) or KIND_NODE_IMAGE
        self.image_source = ("given" if image else f"from {IMAGE_ENV}"
                             if os.environ.get(IMAGE_ENV) else "pinned official image")

    # -- create -----------------------------------------------------------------------

    def check_engine(self) -> None:
        """Raise DockerUnavailable (with what to do) unless docker and kind are installed
        and the Docker engine answers."""
        tool("docker", DOCKER_HINT)
        tool("kind", KIND_HINT)
        done = docker(["info", "--format", "{{.ServerVersion}}"], timeout=30)
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            if said and "permission denied" in said[0].lower():
                raise DockerUnavailable("this user may not use the Docker engine",
                                        hint=f"{said[0]}\nAdd yourself to the docker group "
                                             "(`sudo usermod -aG docker $USER`, then log in "
                                             "again), or run cka-sim as root.")
            raise DockerUnavailable("the Docker engine does not answer",
                                    hint="\n".join([*said, ENGINE_HINT]))

    def create(self, spec: ClusterSpec, progress: Progress) -> KindCluster:
        """Create a kind cluster for ``spec`` and return once etcd answers ``etcdctl
        endpoint health`` on the first control plane. On failure the kind cluster and its
        record are removed."""
        directory = _record_dir(spec.name)
        if spec.control_planes < 1:
            raise ClusterError("a kind cluster needs at least one control plane",
                               hint="set cluster.control_planes to 1 or more")
        self.check_engine()
        for name in ETCD_TOOLS:
            binaries.find(name)
        if spec.jump_host and not jumphost.image_has_sshd(self.image):
            self._no_ssh_for_jump_host()
        if directory.exists() or spec.name in self._kind_clusters():
            raise ClusterError(f"a cluster named {spec.name} already exists",
                               hint="remove it with `cka-sim stop`, or "
                                    f"`kind delete cluster --name {spec.name}`")
        directory.mkdir(parents=True)
        record = {"name": spec.name, "driver": self.name, "state": "creating",
                  "created": time.time(), "kubeconfig": str(directory / "kubeconfig"),
                  "spec": {"control_planes": spec.control_planes, "workers": spec.workers,
                           "components": list(spec.components), "jump_host": spec.jump_host,
                           "etcd": spec.etcd},
                  "nodes": {}}
        _write_record(directory, record)
        try:
            return self._create(spec, progress, directory, record)
        except BaseException:
            self.delete(spec.name)
            raise

    def _create(self, spec: ClusterSpec, progress: Progress, directory: Path,
                record: dict) -> KindCluster:
        progress(Step("nodes", 0, 3, f"kind: {spec.control_planes} control plane(s), "
                                     f"{spec.workers} worker(s)"))
        try:
            self._kind_create(spec, progress, record["kubeconfig"])
        except ClusterError as exc:
            if not TRANSIENT.search(exc.hint or ""):
                raise
            # a node container that died under load, or a kubelet too slow for kubeadm's
            # 4 minutes: kind leaves half a cluster; remove it and try once more
            progress(Step("nodes", 0, 3, f"kind could not create {spec.name} "
                                         f"({TRANSIENT.search(exc.hint or '').group(0)}); "
                                         "trying once more"))
            self._kind_delete(spec.name)
            self._kind_create(spec, progress, record["kubeconfig"])
        cluster = self._cluster(spec.name)
        if len(cluster.nodes) != spec.control_planes + spec.workers:
            raise ClusterError(f"kind made {len(cluster.nodes)} node(s) for {spec.name}, "
                               f"expected {spec.control_planes + spec.workers}",
                               hint="check `docker ps -a` and kind's output")
        control = [n for n in cluster.nodes if n.role == "control-plane"]
        if spec.jump_host:
            progress(Step("nodes", 1, 3, f"jump host {JUMP_HOST}"))
            cluster.nodes.append(jumphost.start(spec.name, self.image, control[0].container))
        manifest = control[0].read_file(kubeadm.ETCD_MANIFEST)
        tools, detail = etcd_tools(etcd_version_of(manifest))
        progress(Step("tools", 2, 3, detail))
        for node in cluster.nodes:
            self._prepare(node, tools if node.role == "control-plane" else {})
        addresses = self._name_hosts(cluster.nodes)
        keys = ClusterKeys.generate(addresses, candidate=spec.jump_host)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            # sshd starts on every node while etcd and the nodes become ready
            ssh = pool.submit(self._start_ssh, cluster.nodes, keys)
            self._wait_healthy(control[0])
            if spec.etcd == "systemd":
                progress(Step("tools", 2, 3, f"etcd as {etcdunit.SERVICE} on {control[0].name}"))
                etcdunit.convert(control[0])
                self._wait_healthy(control[0])
            self._wait_ready(control[0], progress)
            record["ssh"] = ssh.result()
        if spec.jump_host:
            if not record["ssh"]:
                self._no_ssh_for_jump_host()
            candidate.add_everywhere(cluster.nodes, keys, control[0])
        if not record["ssh"] and len(cluster.nodes) > 1:
            progress(Step("tools", 2, 3, f"the node image {self.image} has no OpenSSH server: "
                                         "`ssh NODE` between nodes does not work; open a shell "
                                         "on another node with `cka-sim shell --node NAME`"))
        record["state"] = "running"
        record["nodes"] = {n.name: n.container for n in cluster.nodes}
        record["tools"] = detail
        _write_record(directory, record)
        progress(Step("ready", 3, 3, f"cluster {spec.name} is up"))
        return cluster

    def _no_ssh_for_jump_host(self) -> None:
        raise ClusterError(f"this task starts on the jump host {JUMP_HOST}, from which `ssh "
                           f"controlplane` needs an SSH server on the nodes: the node image "
                           f"{self.image} has none",
                           hint="Build the offline node image (Debian's openssh-server) with "
                                f"`.ci/kind/node-image.sh` and set {IMAGE_ENV} to the image it "
                                "prints, or use the embedded driver.")

    def _kind_create(self, spec: ClusterSpec, progress: Progress, kubeconfig: str) -> None:
        # no --wait: the nodes become Ready while the driver prepares them (_wait_ready)
        argv = [tool("kind", KIND_HINT), "create", "cluster", "--name", spec.name,
                "--config", "-", "--kubeconfig", kubeconfig, "--image", self.image]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        lines: list[str] = []
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(kind_config(spec).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            self._follow(proc, progress, lines)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.returncode != 0:
            text = "\n".join(lines)
            tail = "\n".join(lines[-15:]) or "kind printed nothing"
            if "Cannot connect to the Docker daemon" in text:
                raise DockerUnavailable("the Docker engine does not answer", hint=ENGINE_HINT)
            if re.search(r"failed to pull image|pull access denied|manifest unknown", text,
                         re.IGNORECASE):
                raise ClusterError(f"the kind node image {self.image} cannot be pulled",
                                   hint=f"{tail}\nWithout registry access, build one with "
                                        "`.ci/kind/node-image.sh` and set "
                                        f"{IMAGE_ENV} to the image it prints.")
            raise ClusterError(f"kind could not create cluster {spec.name} "
                               f"(exit code {proc.returncode})", hint=tail)

    @staticmethod
    def _kind_delete(name: str) -> None:
        """Remove what a failed ``kind create cluster`` left (its record stays)."""
        subprocess.run([tool("kind", KIND_HINT), "delete", "cluster", "--name", name],
                       capture_output=True, timeout=300, check=False)

    def _follow(self, proc: subprocess.Popen, progress: Progress, lines: list[str]) -> None:
        """Turn kind's output into progress steps until it exits (or CREATE_TIMEOUT)."""
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + CREATE_TIMEOUT
        exited: float | None = None
        buf = b""
        last: Step | None = None
        while True:
            now = time.monotonic()
            if now > deadline:
                raise ClusterError(f"kind create cluster took more than {CREATE_TIMEOUT:g} s",
                                   hint="\n".join(lines[-10:]) or "kind printed nothing")
            if exited is None and proc.poll() is not None:
                exited = now
            if exited is not None and now - exited > 5:
                break
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *complete, buf = re.split(rb"[\r\n]", buf)
            for raw in complete:
                line = _clean_line(raw)
                if not line:
                    continue
                lines.append(line)
                step = _step_of(line)
                if step is not None and step != last:
                    progress(step)
                    last = step
        proc.wait(timeout=30)

    def _prepare(self, node: KindNode, tools: dict[str, Path]) -> None:
        """Copy ``tools`` into the node and give root the exam shell and prompt."""
        for name, path in tools.items():
            done = docker(["cp", str(path), f"{node.container}:{TOOLS_DIR}/{name}"],
                          timeout=120)
            if done.returncode != 0:
                raise ClusterError(f"could not copy {name} into {node.container}",
                                   hint=done.stderr.decode(errors="replace").strip())
        if tools:
            probe = node.run(["etcdctl", "version"])
            if not probe.ok:
                raise ClusterError(f"etcdctl does not run on {node.name}",
                                   hint=f"{tools['etcdctl']} must be a Linux executable for "
                                        f"the node's architecture.\n{probe.err.strip()}")
        node.write_file(NODE_NAME_PATH, f"{node.name}\n".encode())
        # the exam's hostname (kubeadm registered the node under it; see kind_config)
        if node.role != JUMP_HOST_ROLE:  # Docker named the jump host, which may not rename itself
            node.write_file("/etc/hostname", f"{node.name}\n".encode())
            node.run(["hostname", node.name]).check()
        node.write_file("/root/.bashrc", (BASHRC + _PROMPT_NAME).encode())
        node.write_file("/root/.profile", PROFILE.encode())
        node.run(["mkdir", "-p", os.path.dirname(SESSION_ENV_PATH)]).check()

    def _name_hosts(self, nodes: Sequence[KindNode]) -> dict[str, str]:
        """Every node's /etc/hosts lists every node under its exam name (``ping node01``),
        as the exam's clusters do; Docker's own lines (container names) stay. Returns the
        nodes' addresses by exam name."""
        done = docker(["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                       *[n.container for n in nodes]], timeout=30)
        if done.returncode != 0:
            raise ClusterError("could not read the nodes' addresses",
                               hint=done.stderr.decode(errors="replace").strip())
        addresses = [line.split()[0] for line in done.stdout.decode().splitlines() if line.split()]
        if len(addresses) != len(nodes):
            raise ClusterError("could not read every node's address", hint=done.stdout.decode().strip())
        lines = "".join(f"{ip}\t{n.name}\n" for ip, n in zip(addresses, nodes, strict=True))
        for node in nodes:
            # /etc/hosts is a file Docker binds into the container: append, never replace it
            node.run(["tee", "-a", "/etc/hosts"], input=lines.encode()).check()
        return {n.name: ip for ip, n in zip(addresses, nodes, strict=True)}

    def _start_ssh(self, nodes: Sequence[KindNode], keys: ClusterKeys) -> bool:
        """``ssh node01`` as root from any node, with no password or host-key question, as
        on the exam: one root key pair for the cluster, a host key per node, every node in
        known_hosts under its exam name and address (:mod:`simulator.cluster.sshkeys`), and
        the image's OpenSSH server enabled and started. False when the image has no sshd
        (the official kindest/node has none). A jump host gets the keys but runs no server
        (no one logs in there)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return all(pool.map(lambda node: self._start_ssh_on(node, keys), nodes))

    @staticmethod
    def _start_ssh_on(node: KindNode, keys: ClusterKeys) -> bool:
        files = io.BytesIO()
        with tarfile.open(fileobj=files, mode="w") as tar:
            for directory, mode in SSH_DIRS.items():
                info = tarfile.TarInfo(directory.lstrip("/"))
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            for path, (data, mode) in keys.node_files(node.name).items():
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        script = "tar -x -f - -C /" if node.role == JUMP_HOST_ROLE else _SSH_SETUP
        done = node.run(["sh", "-c", script], input=files.getvalue(), timeout=60)
        if done.returncode == 3:
            return False
        if not done.ok:
            raise ClusterError(f"could not start the SSH server on {node.name} "
                               f"({node.container})", hint=done.err.strip()[-600:])
        return True

    def _wait_healthy(self, node: KindNode) -> None:
        deadline = time.monotonic() + ETCD_TIMEOUT
        while True:
            done = kubeadm.etcdctl(node, "endpoint", "health", "--command-timeout=3s",
                                   timeout=20)
            if done.ok:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"etcd on {node.name} ({node.container}) did not become "
                                   f"healthy within {ETCD_TIMEOUT:g} s",
                                   hint=(done.err or done.out).strip()[-600:])
            time.sleep(1)

    def _wait_ready(self, node: KindNode, progress: Progress) -> None:
        """Wait until every node is Ready, as an exam cluster's are when the task starts.
        After READY_TIMEOUT the cluster is used as it is, and the progress says so."""
        if not node.run(["test", "-f", kubeadm.ADMIN_CONF]).ok:
            return  # no API server on this node (an etcd-only cluster)
        query = ["kubectl", "--kubeconfig", kubeadm.ADMIN_CONF, "get", "nodes", "-o",
                 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions'
                 '[?(@.type=="Ready")].status} {end}']
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            done = node.run(query, timeout=30)
            states = done.out.split() if done.ok else []
            if states and all(s.endswith("=True") for s in states):
                return
            if time.monotonic() > deadline:
                waiting = [s.split("=")[0] for s in states if not s.endswith("=True")]
                _, enough, why = _inotify_line()
                progress(Step("tools", 2, 3, "nodes not Ready after "
                              f"{READY_TIMEOUT:g} s: {', '.join(waiting) or 'unknown'}"
                              + ("" if enough else f" (inotify limits {why})")))
                return
            time.sleep(1)

    # -- setup / doctor / clean ------------------------------------------------------

    def setup(self, progress: Progress, *, everything: bool = False) -> dict[str, Path]:
        """Find or download etcdctl and etcdutl, the tools copied into the nodes; kind node
        images bring everything else, so ``everything`` adds nothing. Raises BinaryMissing
        when one cannot be had."""
        return binaries.ensure(ETCD_TOOLS, progress=progress)

    def doctor(self) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) lines for Docker and kind; a failed check says what to do."""
        return [("docker", *_docker_engine()), _kind_cli(), self._image_line(), _inotify_line()]

    def _image_line(self) -> tuple[str, bool, str]:
        """Which node image ``kind create`` will use, and whether the engine has it."""
        source = self.image_source
        try:
            done = docker(["image", "inspect", "--format", "{{.Id}}", self.image], timeout=20)
        except DockerUnavailable:
            return ("kind image", True, f"{self.image} ({source})")
        if done.returncode == 0:
            return ("kind image", True, f"{self.image} ({source}, present)")
        if self.image != KIND_NODE_IMAGE:
            return ("kind image", False, f"{self.image} ({source}) is not in the engine; "
                                         "load or build it (`.ci/kind/node-image.sh`)")
        return ("kind image", True, f"{self.image} ({source}; pulled on first use, or set "
                                    f"{IMAGE_ENV} to a local image without registry access; "
                                    "it has no SSH server, so `ssh NODE` between nodes does "
                                    "not work: the offline image has one)")

    def caveats(self, spec: ClusterSpec) -> list[str]:
        """``ssh`` between the nodes of a cluster of several when the node image has no SSH
        server (the official kindest/node)."""
        if len(spec.node_specs()) < 2 or spec.jump_host or jumphost.image_has_sshd(self.image):
            return []  # a jump host without sshd is refused outright at create
        return [f"`ssh` between this task's nodes will be refused: the node image {self.image} "
                "has no SSH server (the offline image built by `.ci/kind/node-image.sh` has "
                "one); `cka-sim shell --node NAME` opens a shell on any node"]

    def clean(self, dry_run: bool = False, *,
              keep: Collection[str] | None = None) -> list[str]:
        """Nothing: kind clusters live in Docker, where ``cka-sim stop`` or
        ``kind delete cluster`` removes them; no process of this driver outlives cka-sim."""
        return []

    # -- attach / list / delete -------------------------------------------------------

    def _kind_clusters(self) -> list[str]:
        done = subprocess.run([tool("kind", KIND_HINT), "get", "clusters"],
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise DockerUnavailable("kind cannot list its clusters",
                                    hint="\n".join([done.stderr.decode(errors="replace")
                                                    .strip()[-400:], ENGINE_HINT]))
        return done.stdout.decode().split()

    def containers(self, name: str) -> list[tuple[str, str, str]]:
        """(container, role, state) of every container of kind cluster ``name``."""
        done = docker(["ps", "-a", "--filter", f"label={CLUSTER_LABEL}={name}", "--format",
                       f'{{{{.Names}}}}\t{{{{.Label "{ROLE_LABEL}"}}}}\t{{{{.State}}}}'])
        if done.returncode != 0:
            raise ClusterError(f"docker cannot list the containers of {name}",
                               hint=done.stderr.decode(errors="replace").strip())
        found = []
        for line in done.stdout.decode().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                found.append((parts[0], parts[1], parts[2]))
        return found

    def _nodes(self, name: str, containers: list[tuple[str, str, str]]) -> list[KindNode]:
        nodes = []
        for container, role, _ in containers:
            logical = exam_name(name, container)
            if role in NODE_ROLES and logical is not None:
                nodes.append(KindNode(logical, container, role))
        order = {"control-plane": 0, "worker": 1, JUMP_HOST_ROLE: 2}
        nodes.sort(key=lambda n: (order[n.role], int(re.sub(r"\D", "", n.name) or 1)))
        return nodes

    def _cluster(self, name: str) -> KindCluster:
        containers = self.containers(name)
        nodes = self._nodes(name, containers)
        if not nodes:
            raise ClusterError(f"no kind cluster named {name}",
                               hint="start a task with `cka-sim start --driver kind` "
                                    "(see `kind get clusters`)")
        stopped = [c for c, role, state in containers if role in NODE_ROLES
                   and state != "running"]
        if stopped:
            raise ClusterError(f"cluster {name} is not running: {', '.join(stopped)} "
                               "stopped", hint=f"start them with `docker start "
                                               f"{' '.join(stopped)}`, or remove the cluster "
                                               "with `cka-sim stop`")
        return KindCluster(name, nodes)

    def attach(self, name: str) -> KindCluster:
        """Reconnect to the running kind cluster ``name`` (its node containers found by
        their kind labels); ClusterError when it is absent or a node is stopped."""
        _record_dir(name)
        return self._cluster(name)

    def list(self) -> list[ClusterInfo]:
        """kind clusters this driver created, with their state (``stopped`` when Docker
        does not answer)."""
        found = []
        for directory in sorted(p for p in clusters_dir().iterdir() if p.is_dir()):
            record = _read_record(directory.name)
            if record is None:
                continue
            try:
                states = [state for _, role, state in self.containers(record["name"])
                          if role in NODE_ROLES]
            except ClusterError:
                states = []
            running = [s for s in states if s == "running"]
            expected = (record["spec"]["control_planes"] + record["spec"]["workers"]
                        + bool(record["spec"].get("jump_host")))
            if record.get("state") == "running" and len(running) == expected:
                state = "running"
            else:
                state = "degraded" if running else "stopped"
            found.append(ClusterInfo(record["name"], self.name,
                                     tuple(record.get("nodes") or ()), state))
        return found

    def delete(self, cluster: KindCluster | str) -> None:
        """Remove the kind cluster and its record. Idempotent; without a record and without
        kind nothing is done (nothing of this driver can exist then)."""
        name = cluster if isinstance(cluster, str) else cluster.name
        directory = _record_dir(name)
        record = _read_record(name)
        kind = which("kind")
        if kind is None:
            if record is None:
                return
            raise DockerUnavailable(f"kind is not installed, so cluster {name} cannot be "
                                    "removed", hint=KIND_HINT)
        argv = [kind, "delete", "cluster", "--name", name]
        if record is not None:
            argv += ["--kubeconfig", record["kubeconfig"]]
        done = None
        for attempt in range(2):  # under load the engine may refuse a removal once
            if attempt:
                time.sleep(2)
            try:
                done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
            except subprocess.TimeoutExpired:
                done = None
            if done is not None and done.returncode == 0:
                break
        if (done is None or done.returncode != 0) and record is not None:
            said = done.stdout + done.stderr if done is not None else b"timed out"
            raise ClusterError(f"kind could not delete cluster {name}",
                               hint=said.decode(errors="replace").strip()[-600:])
        if directory.exists() and (record is not None or not any(directory.iterdir())):
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["KindCluster", "KindDriver", "etcd_tools", "etcd_version_of", "exam_name",
           "kind_config"]
