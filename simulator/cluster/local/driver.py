"""The embedded driver: create, attach, list, delete and clean namespaced practice clusters.

``create`` prepares each node's rootfs, writes the kubeadm PKI and etcd manifests into it
(in a thread, while the namespaces start), starts the cluster's infra and node processes
and returns once etcd answers ``etcdctl endpoint health`` over TLS inside the node. With
several control planes the members join one by one as ``kubeadm join --control-plane``
does: ``etcdctl member add`` on the first node, then the joiner's manifest with
``--initial-cluster-state=existing``. A jump host (``spec.jump_host``) is one more node,
``student``, whose init runs no kubelet; the user ``candidate`` is then added to every node
(:mod:`simulator.cluster.candidate`) while etcd starts.

State lives in ``clusters_dir()/<name>/cluster.json`` (see :mod:`simulator.cluster.local`).

Why one module of ~950 lines: creating a cluster is one ordered sequence (rootfs, PKI in
a thread while the namespaces start, etcd membership, control plane) whose steps share
the cluster's directory and state record, delete/clean must undo exactly what create
did, and a checkpoint (the gate's reset: shut down, then booted as copies) stops and
starts those same processes on that same directory. Node processes, the PKI, manifests and binaries already live in their own modules;
what remains here is the order of things and its failure handling.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from simulator.cluster import binaries as binaries_mod
from simulator.cluster import candidate, kubeadm
from simulator.cluster.local import checkpoint, sshd
from simulator.cluster.local import idmap as idmap_mod
from simulator.cluster.local import images as images_mod
from simulator.cluster.local import nodes as nodes_mod
from simulator.cluster.local.nodes import LocalNode, NodeProcess, alive, proc_start
from simulator.cluster.node import (
    CANDIDATE,
    JUMP_HOST,
    JUMP_HOST_ROLE,
    ClusterInfo,
    ClusterSpec,
    Progress,
    Step,
    find_node,
)
from simulator.cluster.sshkeys import ClusterKeys
from simulator.errors import BinaryMissing, ClusterError, NamespacesUnavailable, SimError
from simulator.paths import cache_dir, clusters_dir
from simulator.versions import COREDNS_VERSION, KUBERNETES_VERSION

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
ETCD_TIMEOUT = 60.0
NODE_TIMEOUT = 20.0
STOP_GRACE = 4.0
SPARE_KEYS = 24
NODE_TOOLS = ("etcd", "etcdctl", "etcdutl", "kubectl", "kubeadm")
JUMP_HOST_TOOLS = ("kubectl",)
"""Of the node tools, those the jump host has (as the exam's base node: no etcdctl)."""
KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
APISERVER_TIMEOUT = 90.0

_WAIT_HEALTHY = """
end=$((SECONDS + WAIT))
while :; do
    if ETCDCTL_API=3 etcdctl endpoint health --endpoints="$ENDPOINTS" --cacert="$CACERT" \
        --cert="$CERT" --key="$KEY" --dial-timeout=1s --command-timeout=2s >/dev/null 2>&1
    then exit 0; fi
    (( SECONDS >= end )) && break
    sleep 0.05
done
ETCDCTL_API=3 etcdctl endpoint health --endpoints="$ENDPOINTS" --cacert="$CACERT" \
    --cert="$CERT" --key="$KEY" --dial-timeout=1s --command-timeout=2s
exit 1
"""


@dataclasses.dataclass
class LocalCluster:
    """A cluster of the embedded driver (implements the Cluster protocol)."""

    name: str
    nodes: list[LocalNode]
    directory: Path
    driver: str = "local"

    def node(self, name: str) -> LocalNode:
        """The node called ``name``; ClusterError naming the known nodes otherwise."""
        return find_node(self.nodes, name)  # type: ignore[return-value]


def _cluster_dir(name: str) -> Path:
    if not NAME_RE.match(name):
        raise ClusterError(f"invalid cluster name {name!r}",
                           hint="use lower-case letters, digits and dashes (at most 40)")
    return clusters_dir() / name


def _on(rootfs: Path, path: str) -> Path:
    """Where the node's absolute ``path`` is in its ``rootfs`` on the host."""
    return rootfs / path.lstrip("/")


def _read_state(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "cluster.json").read_text())
    except (OSError, ValueError):
        return None


def _write_state(directory: Path, state: dict) -> None:
    tmp = directory / "cluster.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, directory / "cluster.json")


def _processes(state: dict) -> list[tuple[int, int | None]]:
    procs = [(n.get("pid") or 0, n.get("start")) for n in state.get("nodes", [])]
    infra = state.get("infra") or {}
    procs.append((infra.get("pid") or 0, infra.get("start")))
    return procs


def _state_of(state: dict) -> str:
    living = [alive(pid, start) for pid, start in _processes(state)]
    if state.get("state") == "running" and all(living):
        return "running"
    return "degraded" if any(living) else "stopped"


def _marked_processes() -> dict[int, Path]:
    """Every process of this user carrying the cluster marker, with its cluster directory."""
    found: dict[int, Path] = {}
    key = nodes_mod.MARKER_ENV.encode() + b"="
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(key):
                found[int(entry.name)] = Path(item[len(key):].decode(errors="replace"))
                break
    return found


def _owned_elsewhere(state: dict) -> bool:
    """Whether another process that is still running made this cluster."""
    creator = state.get("creator") or {}
    return creator.get("pid") != os.getpid() and alive(creator.get("pid"), creator.get("start"))


def _rmtree(path: Path) -> None:
    def retry(func, p, exc):
        if isinstance(exc[1], FileNotFoundError):
            return  # removed meanwhile (its owner deleting the same cluster)
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        except OSError:
            pass
        func(p)

    if path.exists():
        shutil.rmtree(path, onerror=retry)


def _spare_keys_dir() -> Path:
    return cache_dir() / "spare-keys"


def _lend_spare_keys(pool: Path, count: int) -> None:
    """Move up to ``count`` pre-generated keys from the user's spare pool into ``pool``."""
    spare = _spare_keys_dir()
    if not spare.is_dir():
        return
    pool.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in sorted(spare.glob("*.key"))[:count]:
        try:
            os.rename(path, pool / path.name)
        except OSError:
            continue


def _refill_spare_keys() -> None:
    """Top the spare-key pool up in a detached low-priority process."""
    code = ("import sys; from simulator.cluster.pki import KeyPool; "
            "KeyPool(__import__('pathlib').Path(sys.argv[1])).fill(int(sys.argv[2]))")
    env = dict(os.environ, PYTHONPATH=nodes_mod._python_path())
    try:
        subprocess.Popen([sys.executable, "-c", code, str(_spare_keys_dir()), str(SPARE_KEYS)],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True,
                         preexec_fn=lambda: os.nice(10))
    except OSError:
        pass


def _restore_members(rootfs: dict[str, Path], control: Sequence[tuple[str, str]], seed: Path,
                     etcdutl: Path, cluster: str) -> None:
    """Fill each control plane's /var/lib/etcd from ``seed`` with the full membership."""
    initial = ",".join(f"{n}=https://{ip}:{kubeadm.ETCD_PEER_PORT}" for n, ip in control)
    token = f"{cluster}-{os.urandom(4).hex()}"
    jobs = []
    for name, ip in control:
        data = _on(rootfs[name], kubeadm.ETCD_DATA_DIR)
        _rmtree(data)
        jobs.append((data, subprocess.Popen(
            [str(etcdutl), "snapshot", "restore", str(seed), "--name", name,
             "--initial-cluster", initial, "--initial-cluster-token", token,
             "--initial-advertise-peer-urls", f"https://{ip}:{kubeadm.ETCD_PEER_PORT}",
             "--data-dir", str(data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    for data, job in jobs:
        _, err = job.communicate(timeout=60)
        if job.returncode != 0:
            raise ClusterError("could not prepare the etcd members",
                               hint=err.decode(errors="replace").strip()[-600:])
        os.chmod(data, 0o700)


def _write_kubelet_serving_certs(rootfs: dict[str, Path], placed: Sequence[tuple[str, str, str]],
                                 cas) -> None:
    """Each node's self-signed kubelet serving certificate, with keys from the pool, so the
    kubelet serves ``kubectl logs`` from its start."""
    from simulator.cluster.local import kubelet_server

    keys = cas.key_pool.take(len(placed))
    for i, (name, ip, _) in enumerate(placed):
        kubelet_server.write_serving_cert(name, ip, rootfs[name] / kubelet_server.CERT_DIR,
                                          keys[i] if i < len(keys) else None)


def _write_admin_kubeconfigs(rootfs: dict[str, Path], control: Sequence[tuple[str, str]]) -> None:
    """``/root/.kube/config`` on each control plane: a copy of admin.conf, as kubeadm init
    tells its user to make (and as exam nodes have)."""
    for name, _ in control:
        admin = _on(rootfs[name], kubeadm.ADMIN_CONF)
        if admin.exists():
            target = rootfs[name] / "root/.kube/config"
            target.parent.mkdir(mode=0o755, exist_ok=True)
            shutil.copyfile(admin, target)
            os.chmod(target, 0o600)


def _write_control_plane_manifests(rootfs: dict[str, Path], control: Sequence[tuple[str, str]],
                                   components: Sequence[str]) -> None:
    """The kubeadm static-pod manifests of ``components`` on every control plane."""
    from simulator.cluster.local import kubeadm_init, manifests

    writers = {"kube-apiserver": manifests.kube_apiserver_manifest,
               "kube-controller-manager": manifests.kube_controller_manager_manifest,
               "kube-scheduler": manifests.kube_scheduler_manifest}
    for name, ip in control:
        if components:
            kubeadm_init.write_kubelet_files(rootfs[name])
        for component in components:
            path = _on(rootfs[name], f"{kubeadm.MANIFESTS}/{component}.yaml")
            path.write_text(writers[component](name, ip))
            os.chmod(path, 0o600)


def _write_etcd_manifests(rootfs: dict[str, Path], control: Sequence[tuple[str, str]],
                          image: str) -> None:
    """etcd.yaml of the first control plane as ``kubeadm init`` writes it, of the others as
    ``kubeadm join --control-plane`` does (members so far, ``existing``)."""
    from simulator.cluster.local import manifests

    for i, (name, ip) in enumerate(control):
        text = (manifests.etcd_manifest(name, ip, image=image) if i == 0 else
                manifests.etcd_manifest(name, ip, initial_cluster=dict(control[:i + 1]),
                                        existing=True, image=image))
        path = _on(rootfs[name], kubeadm.ETCD_MANIFEST)
        path.write_text(text)
        os.chmod(path, 0o600)


class LocalDriver:
    """Practice clusters made of Linux namespaces on this machine (implements Driver)."""

    name = "local"

    def __init__(self) -> None:
        self._children: dict[str, list[subprocess.Popen]] = {}

    # -- create -----------------------------------------------------------------------

    def create(self, spec: ClusterSpec, progress: Progress) -> LocalCluster:
        """Create and start a cluster; return once etcd answers healthy over TLS on every
        control-plane node. On failure nothing of the cluster is left behind."""
        directory = _cluster_dir(spec.name)
        if directory.exists():
            raise ClusterError(f"a cluster named {spec.name} already exists",
                               hint="remove it with `cka-sim stop`, or `cka-sim doctor --clean` "
                                    "if it was left behind by a killed cka-sim")
        self._check_tools()
        if spec.jump_host:
            self._check_jump_host()
        tools = self._node_tools(spec.components, progress)
        directory.mkdir(parents=True)
        state: dict = {
            "name": spec.name, "driver": self.name, "state": "creating",
            "spec": {"control_planes": spec.control_planes, "workers": spec.workers,
                     "components": list(spec.components), "jump_host": spec.jump_host,
                     "etcd": spec.etcd},
            "creator": {"pid": os.getpid(), "start": proc_start(os.getpid())},
            "created": time.time(), "infra": {}, "nodes": [],
        }
        _write_state(directory, state)
        try:
            return self._create(spec, progress, directory, state, tools)
        except BaseException:
            self.delete(spec.name)
            raise

    def _create(self, spec: ClusterSpec, progress: Progress, directory: Path, state: dict,
                tools: dict[str, Path]) -> LocalCluster:
        from simulator.cluster import pki
        from simulator.cluster.local import manifests

        specs = spec.node_specs()
        roles: dict[str, int] = {}
        placed: list[tuple[str, str, str]] = []
        for ns in specs:
            index = roles.get(ns.role, 0)
            roles[ns.role] = index + 1
            placed.append((ns.name, nodes_mod.node_ip(index, ns.role), ns.role))
        hosts = {name: ip for name, ip, _ in placed}
        control = [(n, ip) for n, ip, role in placed if role == "control-plane"]
        jump = [n for n, _, role in placed if role == JUMP_HOST_ROLE]
        placed_all, placed = placed, [p for p in placed if p[2] != JUMP_HOST_ROLE]
        kube = [c for c in KUBE_COMPONENTS if c in spec.components]
        total = 3 + ("kube-apiserver" in kube) + ("kube-controller-manager" in kube)
        progress(Step("nodes", 0, total, f"preparing {len(placed_all)} node(s)"))
        # side by side: a node's /etc is some 700 files and links, and the file system
        # takes them faster from several threads than one node after another
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(placed_all)) as pool:
            list(pool.map(lambda p: nodes_mod.prepare_rootfs(
                directory / "nodes" / p[0] / "rootfs", p[0], hosts,
                kube=p[2] != JUMP_HOST_ROLE), placed_all))
        image = manifests.etcd_image(binaries_mod.etcd_version(tools["etcd"]))

        seed = self._seed_path(tools["etcd"]) if len(control) > 1 else None
        if seed is not None and not seed.exists():
            seed = None
        rootfs = {name: directory / "nodes" / name / "rootfs" for name, _, _ in placed_all}

        def write_ssh() -> ClusterKeys:
            # ed25519: well under a millisecond a key
            keys = ClusterKeys.generate(hosts, candidate=spec.jump_host)
            for name, path in rootfs.items():
                sshd.write_node(path, name, keys)
            return keys

        def write_pki() -> None:
            serving = len(placed) if kube else 0
            _lend_spare_keys(directory / "pki" / "keypool",
                             7 * len(control) + 5 * len(placed) + serving)
            if seed is not None:
                _restore_members(rootfs, control, seed, tools["etcdutl"], spec.name)
            cas = pki.load_or_create_cas(directory / "pki")
            for i, (name, ip, role) in enumerate(placed):
                etc = _on(rootfs[name], kubeadm.KUBERNETES_DIR)
                # a worker's kubelet.conf names the API server it joined through
                endpoint = (None if role == "control-plane"
                            else f"{control[0][1]}:{kubeadm.API_PORT}")
                pki.write_node_pki(etc, cas, name, ip, control_plane=role == "control-plane",
                                   first_control_plane=i == 0, control_plane_endpoint=endpoint)
            if kube:
                _write_kubelet_serving_certs(rootfs, placed, cas)
            _write_admin_kubeconfigs(rootfs, control)
            _write_control_plane_manifests(rootfs, control, kube)
            if "etcd" not in spec.components:
                return
            _write_etcd_manifests(rootfs, control[:1], image)

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            ssh_job = pool.submit(write_ssh)
            pki_job = pool.submit(write_pki)
            nodes = self._start_nodes(spec.name, directory, state, placed_all, tools)
            progress(Step("certificates", 1, total, "kubeadm PKI and kubeconfigs"))
            pki_job.result()
            keys = ssh_job.result()  # each node's init starts sshd once its files are there
        cluster = LocalCluster(spec.name, nodes, directory)
        if jump:
            progress(Step("certificates", 1, total, f"user {CANDIDATE} on every node"))
            candidate.add_everywhere(nodes, keys, cluster.node(control[0][0]))
        progress(Step("etcd", 2, total, f"waiting for etcd on {control[0][0]}"))
        first = cluster.node(control[0][0])
        if "etcd" in spec.components and seed is not None:
            self._start_in_turn(cluster, control, image)
            for name, _ in control:
                self._wait_healthy(cluster.node(name), [ip for _, ip in control])
        elif "etcd" in spec.components:
            self._wait_healthy(first, [control[0][1]])
            seed = self._seed_snapshot(first, tools["etcd"])
            if len(control) > 1 and seed is not None:
                progress(Step("etcd", 2, total, f"{len(control) - 1} members join"))
                self._bootstrap_members(cluster, control, image, seed, tools["etcdutl"])
            else:
                for i, (name, ip) in enumerate(control[1:], start=2):
                    progress(Step("etcd", 2, total, f"{name} joins the etcd cluster"))
                    self._join(cluster, control[:i], image)
        if "etcd" in spec.components and spec.etcd == "systemd":
            from simulator.cluster import etcdunit

            progress(Step("etcd", 2, total, f"etcd as {etcdunit.SERVICE} on {control[0][0]}"))
            etcdunit.convert(first)
            self._wait_healthy(first, [control[0][1]])
        self._start_control_plane([cluster.node(n) for n, _ in control], kube, progress, total)
        state["state"] = "running"
        _write_state(directory, state)
        progress(Step("ready", total, total, f"cluster {spec.name} is up"))
        _refill_spare_keys()
        return cluster

    def _start_nodes(self, name: str, directory: Path, state: dict,
                     placed: Sequence[tuple[str, str, str]], tools: dict[str, Path]) -> list[LocalNode]:
        """Start the cluster's infra and one init per node (``placed``: name, address,
        role) on the rootfs already in ``directory``; return once every node is up."""
        mapping = idmap_mod.choose()
        infra = nodes_mod.start_infra(directory, mapping)
        self._children.setdefault(name, []).append(infra)
        state["infra"] = {"pid": infra.pid, "start": proc_start(infra.pid)}
        (directory / "infra.pid").write_text(f"{infra.pid}\n")
        _write_state(directory, state)
        jump_tools = {k: v for k, v in tools.items() if k in JUMP_HOST_TOOLS}
        store = image_store()
        starting = [NodeProcess(infra.pid, directory / "nodes" / node, node, ip,
                                jump_tools if role == JUMP_HOST_ROLE else tools,
                                directory, mapping, jump_host=role == JUMP_HOST_ROLE,
                                images=store.path)
                    for node, ip, role in placed]
        self._children[name] += [p.proc for p in starting]
        deadline = time.monotonic() + NODE_TIMEOUT
        for proc in starting:
            proc.wire(deadline)
        for proc in starting:
            proc.ready(deadline)
        nodes = [LocalNode(node, ip, role, directory / "nodes" / node, p.pid, p.start)
                 for (node, ip, role), p in zip(placed, starting)]
        for node in nodes:
            (node.node_dir / "init.pid").write_text(f"{node.pid}\n")
        state["nodes"] = [{"name": n.name, "ip": n.ip, "role": n.role, "pid": n.pid,
                           "start": n.start} for n in nodes]
        _write_state(directory, state)
        return nodes

    @staticmethod
    def _seed_path(etcd: Path) -> Path:
        return cache_dir() / "etcd-seed" / f"{binaries_mod.etcd_version(etcd)}.db"

    def _seed_snapshot(self, node: LocalNode, etcd: Path) -> Path | None:
        """A snapshot of a fresh etcd, cached per etcd version: the seed of multi-member
        clusters. Saved from ``node`` the first time; None when that fails."""
        seed = self._seed_path(etcd)
        if seed.exists():
            return seed
        done = node.run(["etcdctl", "snapshot", "save", "/run/cka-sim/seed.db",
                         f"--endpoints={kubeadm.ETCD_ENDPOINT}", *kubeadm.ETCDCTL_TLS],
                        env={"ETCDCTL_API": "3"}, timeout=30)
        if not done.ok:
            return None
        seed.parent.mkdir(parents=True, exist_ok=True)
        tmp = seed.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(node.read_file("/run/cka-sim/seed.db"))
        os.replace(tmp, seed)
        node.run(["rm", "-f", "/run/cka-sim/seed.db"])
        return seed

    def _bootstrap_members(self, cluster: LocalCluster, control: Sequence[tuple[str, str]],
                           image: str, seed: Path, etcdutl: Path) -> None:
        """Start every control plane's etcd at once as one cluster.

        Each data dir is restored from the seed snapshot with the full membership (as a
        multi-member restore does), so every member starts from its WAL and ignores the
        ``--initial-cluster`` flags; the manifests are those ``kubeadm init`` and ``join``
        write. This avoids etcd's 5 s wait between two membership changes.
        """
        first = cluster.node(control[0][0])
        parked = _on(first.rootfs, kubeadm.ETCD_MANIFEST)
        parked.rename(parked.with_name(".etcd.yaml.bootstrap"))
        self._wait_port_closed(first)
        _restore_members({n.name: n.rootfs for n in cluster.nodes}, control, seed, etcdutl,
                         cluster.name)
        parked.with_name(".etcd.yaml.bootstrap").rename(parked)
        self._start_in_turn(cluster, control, image)
        for name, _ in control:
            self._wait_healthy(cluster.node(name), [ip for _, ip in control])

    def _start_in_turn(self, cluster: LocalCluster, control: Sequence[tuple[str, str]],
                       image: str) -> None:
        """Write the members' manifests one after the other, each once the previous member
        answers on its peer port: started together, every member's initial corruption
        check would wait 7 s for peers that are themselves still checking."""
        rootfs = {n.name: n.rootfs for n in cluster.nodes}
        for i in range(1, len(control)):
            previous = cluster.node(control[i - 1][0])
            previous.run(["bash", "-c", 'end=$((SECONDS + 30)); '
                                        'until exec 3<>"/dev/tcp/$IP/$PORT"; do '
                                        '(( SECONDS > end )) && exit 1; sleep 0.05; done'],
                         env={"IP": control[i - 1][1], "PORT": str(kubeadm.ETCD_PEER_PORT)},
                         timeout=40)
            _write_etcd_manifests(rootfs, control[:i + 1], image)

    def _wait_port_closed(self, node: LocalNode, timeout: float = 10) -> None:
        node.run(["bash", "-c", 'end=$((SECONDS + WAIT)); '
                                'while exec 3<>"/dev/tcp/127.0.0.1/$PORT" '
                                '&& (( SECONDS < end )); do exec 3>&-; sleep 0.05; done'],
                 env={"WAIT": str(int(timeout)), "PORT": str(kubeadm.ETCD_CLIENT_PORT)},
                 timeout=timeout + 10)

    def _join(self, cluster: LocalCluster, members: Sequence[tuple[str, str]], image: str) -> None:
        from simulator.cluster.local import manifests

        name, ip = members[-1]
        first = cluster.node(members[0][0])
        deadline = time.monotonic() + ETCD_TIMEOUT
        while True:
            added = first.run(["etcdctl", "member", "add", name,
                               f"--peer-urls=https://{ip}:{kubeadm.ETCD_PEER_PORT}",
                               f"--endpoints={kubeadm.ETCD_ENDPOINT}", *kubeadm.ETCDCTL_TLS],
                              env={"ETCDCTL_API": "3"}, timeout=30)
            # etcd refuses a second reconfiguration until every member has been connected
            # for 5 s (strict reconfig check); kubeadm retries the same way.
            if added.ok or "unhealthy cluster" not in added.err or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if not added.ok:
            raise ClusterError(f"etcd member add {name} failed",
                               hint=(added.err or added.out).strip()[-600:])
        initial = {n: addr for n, addr in members}
        cluster.node(name).write_file(kubeadm.ETCD_MANIFEST,
                                      manifests.etcd_manifest(name, ip, initial_cluster=initial,
                                                              existing=True,
                                                              image=image).encode(), 0o600)
        self._wait_healthy(cluster.node(name), [addr for _, addr in members])

    def _wait_healthy(self, node: LocalNode, ips: Sequence[str]) -> None:
        endpoints = ",".join(f"https://{ip}:{kubeadm.ETCD_CLIENT_PORT}" for ip in ips)
        done = node.run(["bash", "-c", _WAIT_HEALTHY], timeout=ETCD_TIMEOUT + 10, env={
            "WAIT": str(int(ETCD_TIMEOUT)), "ENDPOINTS": endpoints,
            "CACERT": kubeadm.ETCD_CA, "CERT": kubeadm.ETCD_SERVER_CERT,
            "KEY": kubeadm.ETCD_SERVER_KEY})
        if not done.ok:
            log = node.node_dir / "supervisor.log"
            try:
                tail = log.read_text(errors="replace").strip().splitlines()[-10:]
            except OSError:
                tail = []
            raise ClusterError(f"etcd on {node.name} did not become healthy "
                               f"within {ETCD_TIMEOUT:g} s",
                               hint="\n".join([(done.err or done.out).strip()[-400:], *tail]))

    def _check_tools(self) -> None:
        for tool in ("unshare", "nsenter", "chroot", "ip"):
            nodes_mod._tool(tool)

    @classmethod
    def _check_jump_host(cls) -> None:
        """ClusterError saying what is missing when this machine cannot give a jump host."""
        missing = cls._jump_host_missing()
        if missing:
            raise ClusterError(f"this task starts on a jump host ({JUMP_HOST}, user "
                               f"{CANDIDATE}), which this machine cannot give",
                               hint="\n".join(missing) + "\nOr use `--driver kind`; "
                                    "`cka-sim doctor` shows what the machine supports.")

    @staticmethod
    def _jump_host_missing() -> list[str]:
        """What a jump host lacks here: the user ``candidate`` (nodes mapping more than
        root), ssh between nodes, sudo, useradd and setpriv; empty when nothing is."""
        missing = []
        mapping = idmap_mod.choose()
        if not mapping.full:
            missing.append(f"nodes map only root, so user {CANDIDATE} cannot exist: "
                           f"{mapping.missing or 'run cka-sim as root'}")
        if not sshd.installed():
            missing.append(f"no OpenSSH server for `ssh controlplane`: {sshd.INSTALL_HINT}")
        for tool, hint in (("sudo", idmap_mod.SUDO_HINT), ("useradd", "install passwd"),
                           ("setpriv", "install util-linux")):
            if not (shutil.which(tool) or shutil.which(tool, path=idmap_mod.TOOL_PATH)):
                missing.append(f"{tool} is not installed: {hint}")
        return missing

    def _start_control_plane(self, control: Sequence[LocalNode], kube: Sequence[str],
                             progress: Progress, total: int) -> None:
        """Wait for the API server's /readyz on every control plane, run kubeadm's API phases
        (the first uploads the configuration and creates the add-ons, each marks its Node),
        then make the default service accounts; the controller manager takes its lease
        meanwhile, as after ``kubeadm init``, which does not wait for it either."""
        from simulator.cluster.local import kubeadm_init

        if "kube-apiserver" not in kube:
            return
        first = control[0]
        done = 3
        progress(Step("apiserver", done, total, f"waiting for kube-apiserver on {first.name}"))
        self._kubeadm_phases(first, upload=True)
        if len(control) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(control) - 1) as pool:
                for job in [pool.submit(self._kubeadm_phases, n, upload=False)
                            for n in control[1:]]:
                    job.result()
        if "kube-controller-manager" in kube:
            # The controller manager starts its controllers some 5 s after it leads; the
            # learner's first commands need only the default service accounts, made now.
            # kind does not wait for it either.
            done += 1
            progress(Step("service-accounts", done, total, "making the default service accounts"))
            self._node_script(first, kubeadm_init.DEFAULT_SERVICE_ACCOUNTS,
                              "the default service accounts could not be made")

    def _kubeadm_phases(self, node: LocalNode, upload: bool) -> None:
        from simulator.cluster.local import kubeadm_init

        self._node_script(node, kubeadm_init.WAIT_READYZ, "kube-apiserver did not become ready",
                          WAIT=str(int(APISERVER_TIMEOUT)))
        node.write_file(kubeadm_init.CONFIG_PATH,
                        kubeadm_init.init_config(node.name, node.ip).encode(), 0o600)
        self._node_script(node, kubeadm_init.UPLOAD, "kubeadm could not mark the control plane",
                          CONFIG=kubeadm_init.CONFIG_PATH, UPLOAD="1" if upload else "")

    def _node_script(self, node: LocalNode, script: str, failure: str, **env: str) -> None:
        done = node.run(["bash", "-c", script], env=env, timeout=APISERVER_TIMEOUT + 30)
        if not done.ok:
            try:
                log = (node.node_dir / "supervisor.log").read_text(errors="replace")
                tail = log.strip().splitlines()[-10:]
            except OSError:
                tail = []
            raise ClusterError(f"{failure} on {node.name}",
                               hint="\n".join([(done.err or done.out).strip()[-600:], *tail]))

    def _node_tools(self, components: Sequence[str] = ("etcd",),
                    progress: Progress | None = None) -> dict[str, Path]:
        """The programs bound into every node: etcd's, kubectl and kubeadm when found, and
        every control-plane binary ``components`` need (downloaded if missing)."""
        tools: dict[str, Path] = {}
        kube = [c for c in KUBE_COMPONENTS if c in components]
        if kube:
            tools.update(binaries_mod.ensure([*kube, "kubectl", "kubeadm"], progress))
        for name in NODE_TOOLS:
            if name in tools:
                continue
            try:
                tools[name] = binaries_mod.find(name)
            except BinaryMissing:
                if name in ("etcd", "etcdctl", "etcdutl"):
                    raise
        crictl = Path(__file__).with_name("crictl.py")
        if crictl.exists():
            tools["crictl"] = crictl
        return tools

    # -- checkpoints (the quality gate's reset, see checkpoint.py) -----------------------

    def checkpoint_refused(self, spec: ClusterSpec) -> str | None:
        """Why a cluster of ``spec`` cannot be kept as a checkpoint, or None."""
        return checkpoint.why_not(spec)

    def checkpoint_diverged(self, cluster: LocalCluster, seen: dict) -> str | None:
        """Why the set-up ``cluster`` holds state a booted copy would not, or None;
        ``seen`` is its :meth:`fingerprint`."""
        return checkpoint.diverged(list(cluster.nodes), seen)

    def fingerprint(self, cluster: LocalCluster, like: dict | None = None) -> dict:
        """What runs on the cluster's nodes, as a booted copy must show it too; ``like``
        is the fingerprint it is compared with (what did not answer there is given less
        time here)."""
        return checkpoint.fingerprint(list(cluster.nodes), like)

    def checkpoint(self, cluster: LocalCluster, dest: Path) -> None:
        """Shut ``cluster`` down as a machine is shut down and keep its directory at
        ``dest``. What answered before (etcd, the API server, which controller managers
        ran) is recorded: a booted copy waits for exactly that. The controller manager's
        lease is dropped first (its holder never gives it back)."""
        kcm = checkpoint.KCM
        state = _read_state(cluster.directory) or {}
        components = (state.get("spec") or {}).get("components", ())
        control = [n for n in cluster.nodes if n.role == "control-plane"]
        up = {"etcd": kubeadm.etcdctl(control[0], "endpoint", "health", "--command-timeout=3s",
                                      timeout=15).ok,
              "apiserver": "kube-apiserver" in components and control[0].run(
                  ["kubectl", "get", "--raw", "/readyz", "--request-timeout=3s"],
                  timeout=15).out.strip() == "ok",
              "leaders": [n.name for n in control if n.run(
                  ["crictl", "ps", "-q", "--name", kcm], timeout=15).out.strip()]}
        # a booted copy waits for the lease only where one was readable (a setup may leave
        # the API server on data where even the admin cannot read leases)
        up["lease"] = bool(up["leaders"]) and up["apiserver"] and control[0].run(
            ["kubectl", "-n", "kube-system", "get", "lease", kcm, "--request-timeout=5s"],
            timeout=15).ok
        leaders = [n for n in control if n.name in up["leaders"]]
        for node in leaders:
            self._node_script(node, checkpoint.STOP_KCM, f"{kcm} did not stop for the checkpoint",
                              KCM=kcm)
        if leaders and up["etcd"]:
            kubeadm.etcdctl(control[0], "del", f"/registry/leases/kube-system/{kcm}").check()
        self._stop(cluster.name, cluster.directory)
        for node in leaders:
            etc = node.node_dir / "rootfs/etc/kubernetes"
            (etc / f"{kcm}.yaml.checkpoint").rename(etc / "manifests" / f"{kcm}.yaml")
        state["saved"] = up
        _write_state(cluster.directory, state)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(cluster.directory, dest)

    def boot(self, saved: Path, name: str, progress: Progress) -> LocalCluster:
        """A new cluster ``name`` from a copy of checkpoint ``saved``, each node's ``/run``
        emptied as at boot; returns once what answered at the checkpoint answers again."""
        from simulator.cluster.local import kubeadm_init

        directory = _cluster_dir(name)
        if directory.exists():
            raise ClusterError(f"a cluster named {name} already exists",
                               hint="remove it with `cka-sim stop`")
        progress(Step("nodes", 0, 3, "copying the set-up cluster"))
        copied = subprocess.run(["cp", "-a", "--sparse=always", str(saved), str(directory)],
                                capture_output=True, text=True, check=False)
        if copied.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise ClusterError(f"could not copy the checkpoint {saved}", hint=copied.stderr.strip())
        try:
            state = json.loads((directory / "cluster.json").read_text())
            placed = [(n["name"], n["ip"], n["role"]) for n in state["nodes"]]
            state.update(name=name, state="creating", created=time.time(), infra={},
                         creator={"pid": os.getpid(), "start": proc_start(os.getpid())})
            _write_state(directory, state)
            for node, _, _ in placed:
                rootfs = directory / "nodes" / node / "rootfs"
                for stale in checkpoint.RUN_STATE:
                    path = rootfs / stale
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
            up = state.get("saved") or {}
            tools = self._node_tools(state["spec"]["components"])
            nodes = self._start_nodes(name, directory, state, placed, tools)
            cluster = LocalCluster(name, nodes, directory)
            control = [n for n in nodes if n.role == "control-plane"]
            if up.get("etcd"):
                progress(Step("etcd", 1, 3, f"waiting for etcd on {control[0].name}"))
                for node in control:
                    self._wait_healthy(node, [n.ip for n in control])
            if up.get("apiserver"):
                progress(Step("apiserver", 2, 3, f"waiting for kube-apiserver on {control[0].name}"))
                self._node_script(control[0], kubeadm_init.WAIT_READYZ,
                                  "kube-apiserver did not become ready", WAIT=str(int(APISERVER_TIMEOUT)))
                if up.get("lease"):
                    self._node_script(control[0], kubeadm_init.WAIT_LEADER, f"{checkpoint.KCM} did not start",
                                      WAIT=str(int(APISERVER_TIMEOUT)), LEASE=checkpoint.KCM)
            state["state"] = "running"
            _write_state(directory, state)
            progress(Step("ready", 3, 3, f"cluster {name} is up"))
            return cluster
        except BaseException:
            self.delete(name)
            raise

    def remove_checkpoint(self, saved: Path) -> None:
        """Remove a checkpoint's directory (its files may belong to the nodes' users)."""
        if saved.exists():
            self._remove_dir(saved)

    # -- attach / list / delete -------------------------------------------------------

    def attach(self, name: str) -> LocalCluster:
        """Reconnect to a running cluster created earlier (possibly by another process)."""
        directory = _cluster_dir(name)
        state = _read_state(directory)
        if state is None:
            raise ClusterError(f"no local cluster named {name}",
                               hint="start a task with `cka-sim start` (see `cka-sim list`)")
        status = _state_of(state)
        if status != "running":
            raise ClusterError(f"cluster {name} is {status}",
                               hint="remove it with `cka-sim stop` (or `cka-sim doctor --clean`) "
                                    "and start the task again")
        nodes = [LocalNode(n["name"], n["ip"], n["role"], directory / "nodes" / n["name"],
                           n["pid"], n["start"]) for n in state["nodes"]]
        return LocalCluster(name, nodes, directory)

    def list(self) -> list[ClusterInfo]:
        """Clusters of this driver on this machine, with their state."""
        found = []
        for directory in sorted(clusters_dir().iterdir()):
            state = _read_state(directory)
            if state is None or state.get("driver") != self.name:
                continue
            found.append(ClusterInfo(state["name"], self.name,
                                     tuple(n["name"] for n in state.get("nodes", [])),
                                     _state_of(state)))
        return found

    def delete(self, cluster: LocalCluster | str) -> None:
        """Stop every process of the cluster and remove its directory. Idempotent.

        Node inits get SIGTERM (their supervisor stops the containers), SIGKILL after a
        grace period; a node's pid namespace, and every mount of its mount namespace, die
        with its init.
        """
        name = cluster if isinstance(cluster, str) else cluster.name
        directory = _cluster_dir(name)
        self._stop(name, directory)
        self._remove_dir(directory)

    def _stop(self, name: str, directory: Path) -> None:
        """End every process of the cluster: as a machine shuts down, the supervisors stop
        their containers first (SIGTERM), then whatever is left is killed."""
        state = _read_state(directory) or {}
        nodes = [(n.get("pid") or 0, n.get("start")) for n in state.get("nodes", [])]
        for pid, start in nodes:
            if alive(pid, start):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while any(alive(p, s) for p, s in nodes) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid, start in _processes(state):
            nodes_mod.stop_process(pid, start, 0)
        self._kill_marked({directory})
        for proc in self._children.pop(name, []):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    @staticmethod
    def _remove_dir(directory: Path) -> None:
        try:
            _rmtree(directory)
        except PermissionError:
            # files of a node's user: owned by one of this user's subordinate ids
            mapping = idmap_mod.choose()
            if not mapping.full:
                raise ClusterError(f"could not remove {directory}: files in it belong to "
                                   "other users", hint=f"remove it as root: `sudo rm -rf "
                                                       f"{directory}`") from None
            idmap_mod.remove_tree(directory, mapping, nodes_mod._tool("unshare"))

    def _kill_marked(self, directories: Collection[Path]) -> None:
        targets = {Path(d) for d in directories}
        for _ in range(3):
            marked = [pid for pid, d in _marked_processes().items() if d in targets]
            if not marked:
                return
            for pid in marked:
                nodes_mod.stop_process(pid, proc_start(pid), 0)

    # -- housekeeping -----------------------------------------------------------------

    def clean(self, dry_run: bool = False, *, keep: Collection[str] | None = None) -> list[str]:
        """Find (and unless ``dry_run`` remove) what killed cka-sim processes left behind.

        Removed: clusters whose creation was interrupted (creator dead), clusters with a
        dead process (a node init or the infra), directories without state, and processes
        of clusters whose directory is gone. With ``keep`` (names), every other running
        cluster of this driver is removed too, except those another live process made (a
        TUI's spare cluster, a quality gate's attempts: theirs to remove). Returns one line
        per finding.
        """
        findings: list[tuple[str, Path]] = []
        root = clusters_dir()
        marked = _marked_processes()
        owners = {d for d in marked.values()}
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            state = _read_state(directory)
            reason = None
            if state is None:
                if directory not in owners:
                    reason = "no cluster state"
            elif state.get("driver") != self.name:
                continue
            elif state.get("state") == "creating":
                creator = state.get("creator") or {}
                if not alive(creator.get("pid"), creator.get("start")):
                    reason = "its creation was interrupted"
            elif _state_of(state) != "running":
                reason = "some of its processes died"
            elif keep is not None and directory.name not in keep and not _owned_elsewhere(state):
                reason = "no session uses it"
            if reason:
                findings.append((f"cluster {directory.name} ({reason})", directory))
        stray = sorted({d for d in owners if d.parent == root and not d.exists()})
        for directory in stray:
            pids = sorted(p for p, d in marked.items() if d == directory)
            findings.append((f"processes {', '.join(map(str, pids))} of removed cluster "
                             f"{directory.name}", directory))
        if not dry_run:
            for _, directory in findings:
                if directory.exists():
                    self.delete(directory.name)
                else:
                    self._kill_marked({directory})
        return [text for text, _ in findings]

    def setup(self, progress: Progress, *, everything: bool = False) -> dict[str, Path]:
        """Find or download etcd, etcdctl and etcdutl (every node runs them) and, with
        ``everything``, the Kubernetes control-plane binaries; their paths by name.
        Raises BinaryMissing when one cannot be had."""
        names = list(binaries_mod.ETCD_BINARIES)
        if everything:
            names += binaries_mod.KUBERNETES_BINARIES
        return binaries_mod.ensure(names, progress=progress)

    def caveats(self, spec: ClusterSpec) -> list[str]:
        """``ssh`` between the nodes of a cluster of several when nodes get no SSH server."""
        if len(spec.node_specs()) < 2:
            return []
        _, ok, detail = sshd.doctor_line()
        return [] if ok else [f"`ssh` between this task's nodes will be refused (sshd: {detail})"]

    def doctor(self) -> list[tuple[str, bool, str]]:
        """(check, ok, detail) lines: what the embedded driver can use on this machine;
        the detail of a failed check says what to change."""
        lines: list[tuple[str, bool, str]] = []
        for tool, package in (("unshare", "util-linux"), ("nsenter", "util-linux"),
                              ("chroot", "coreutils"), ("ip", "iproute2")):
            try:
                lines.append((tool, True, nodes_mod._tool(tool)))
            except SimError:
                lines.append((tool, False, f"not found; install {package}"))
        lines.append(self._probe_namespaces())
        lines += [idmap_mod.doctor_line(), idmap_mod.sudo_line()]
        lines.append(sshd.doctor_line())
        missing = self._jump_host_missing()
        lines.append(("jump host", not missing, "; ".join(missing) if missing else
                      f"tasks that start on {JUMP_HOST} as {CANDIDATE} (ssh controlplane, "
                      "sudo -i) can run"))
        for name in ("etcd", "etcdctl", "etcdutl"):
            try:
                lines.append((name, True, str(binaries_mod.find(name))))
            except BinaryMissing as exc:
                lines.append((name, False, f"{exc.message}; {exc.hint}"))
        store = image_store()
        missing_images = images_mod.prepare_builtin(store) + images_mod.prepare_addons(
            store, _addon_programs(), KUBERNETES_VERSION, COREDNS_VERSION)
        held = ", ".join(i.ref for i in store.images())
        lines.append(("images", not missing_images, "; ".join(missing_images) if missing_images
                      else f"workload pods can run {held} (from {store.path})"))
        return lines

    def _probe_namespaces(self) -> tuple[str, bool, str]:
        script = ("mount -t proc proc /proc && mount -t tmpfs tmpfs /mnt && "
                  "ip link add probe0 type bridge && hostname probe")
        try:
            done = subprocess.run(
                [nodes_mod._tool("unshare"), "--user", "--map-root-user", "--net", "--mount",
                 "--pid", "--fork", "--uts", "--ipc", "--", "/bin/sh", "-c", script],
                capture_output=True, text=True, timeout=10, check=False)
        except (SimError, OSError, subprocess.TimeoutExpired) as exc:
            return ("user namespaces", False, str(exc))
        if done.returncode == 0:
            who = "root" if os.geteuid() == 0 else "an unprivileged user"
            return ("user namespaces", True, f"user, mount, pid, uts, ipc and net work as {who}")
        return ("user namespaces", False,
                f"{done.stderr.strip() or 'unshare failed'}; {self._userns_hint()}")

    @staticmethod
    def _userns_hint() -> str:
        def read(path: str) -> str | None:
            try:
                return Path(path).read_text().strip()
            except OSError:
                return None

        hints = []
        if read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
            hints.append("sudo sysctl kernel.unprivileged_userns_clone=1")
        if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
            hints.append("sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0")
        if read("/proc/sys/user/max_user_namespaces") == "0":
            hints.append("sudo sysctl user.max_user_namespaces=15000")
        if not hints:
            hints.append("user namespaces seem disabled (container or seccomp policy); run "
                         "cka-sim on the host, or use `--driver kind`")
        return "enable them: " + "; ".join(hints) + " (add to /etc/sysctl.d/ to keep it)"


_PREPARED: list[images_mod.Store] = []


def _addon_programs() -> dict[str, Path | None]:
    """kube-proxy (the pinned release, as :func:`binaries.find` accepts it) and CoreDNS
    (the build cache, else PATH) as this machine has them."""
    found: dict[str, Path | None] = {}
    try:
        found["kube-proxy"] = binaries_mod.find("kube-proxy")
    except BinaryMissing:
        found["kube-proxy"] = None
    cached = cache_dir() / "bin" / f"coredns-{COREDNS_VERSION}" / "coredns"
    on_path = shutil.which("coredns")
    found["coredns"] = cached if cached.is_file() else Path(on_path) if on_path else None
    return found


def image_store() -> images_mod.Store:
    """The image store of workload pods, with the built-in images this machine can make
    (once per process; a missing one shows as ErrImagePull and in ``cka-sim doctor``)."""
    if not _PREPARED:
        store = images_mod.Store(cache_dir() / "images")
        try:
            images_mod.prepare_builtin(store)
            images_mod.prepare_addons(store, _addon_programs(), KUBERNETES_VERSION, COREDNS_VERSION)
        except (OSError, subprocess.SubprocessError):
            pass
        _PREPARED.append(store)
    return _PREPARED[0]


__all__ = ["LocalCluster", "LocalDriver", "NamespacesUnavailable"]
