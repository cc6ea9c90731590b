"""The static-pod supervisor: plays the kubelet for ``/etc/kubernetes/manifests`` on one node.

It runs with the host's view of the filesystem (usually as PID 1 of the node's pid
namespace) and treats ``<rootfs>/etc/kubernetes/manifests`` as the kubelet does
(``pkg/kubelet/config/file.go`` and ``config.go``):

- every regular file whose name does not start with ``.`` is a pod, whatever its
  extension; subdirectories are ignored; files are read in name order and when two
  define the same pod (name + namespace) the first wins, the other is logged and ignored;
- a file that fails to parse or validate is logged and skipped, so its pod stops;
- the pod is named ``<metadata.name>-<node>`` (the mirror pod name) and its uid is a hash
  of the node name, the file path and the content: an edit is a new pod, the old one is
  stopped (SIGTERM, SIGKILL after ``GRACE_CAP`` seconds) before the new one starts;
- crashed containers restart with exponential back-off. The kubelet waits 10 s doubling to
  5 min; here the first restart is immediate, then ``BACKOFF_BASE`` (1 s) doubling to
  ``BACKOFF_CAP`` (40 s), so a learner sees CrashLoopBackOff without waiting minutes after
  a fix. A changed manifest is a new pod and starts with no back-off.

Each container is started through :mod:`simulator.cluster.local.container` (own mount
namespace, a fresh root of its own under ``/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs``,
hostPath volumes bound from the node at their mountPaths, chroot into that root). A
container's root is deleted when its record is (exited attempts beyond the latest
``EXITED_KEPT``, pods gone for ``GC_AFTER``) and when the supervisor stops. Its output
is written in the CRI log format to ``/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log``
with a ``/var/log/containers/<pod>_<ns>_<container>-<id>.log`` symlink, as on a real node.

``systemctl stop kubelet`` (:mod:`services`) pauses the kubelet's part of the loop
(:meth:`Supervisor.pause_agent`): no manifest scan, restart or garbage collection, while
the containers keep running and their exits are still recorded, as containerd would;
``systemctl start kubelet`` reads the manifests again and adopts the running containers.
The log goes to the node's journal (``journalctl -u kubelet``).

State, readable inside the node by ``crictl`` (see :mod:`crictl`):
``<state_dir>/containers/<id>.json`` per container and ``<state_dir>/pods.json``
(default ``state_dir``: ``<rootfs>/run/cka-sim``).

Why one module of ~900 lines: :class:`Supervisor` is one single-threaded loop (scan,
reconcile, reap, publish) over one state (pods, their restart slots, containers, log
writers, back-off and garbage collection), and each step reads and changes the others'
records; split apart they would pass that state around. Launching a container
(:mod:`container`) and the CRI view (:mod:`crictl`) are already separate; reading
manifests is the part that can leave.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulator.cluster import staticpod
from simulator.cluster.local import container as container_launcher
from simulator.cluster.local import images as image_store
from simulator.cluster.local import services, units
from simulator.cluster.local.container import TASKS_DIR, Bind, remove_bundle
from simulator.cluster.staticpod import ContainerSpec, ManifestError, PodSpec

log = logging.getLogger("cka_sim.supervisor")
runtime_log = logging.getLogger("cka_sim.containerd")
"""What the container runtime logs: exits seen while the kubelet is stopped."""

MANIFESTS = "etc/kubernetes/manifests"
STATE_DIR = "run/cka-sim"
POLL_INTERVAL = 0.3
TICK = 0.1
GRACE_CAP = 1.0
ROUTES_PERIOD = 2.0
POD_CIDR_FILE = "pod-cidr.json"
PULL_ERROR_SHOWN = 1.0  # ErrImagePull this long after a failed pull, then ImagePullBackOff
BACKOFF_BASE = 1.0
BACKOFF_CAP = 40.0
BACKOFF_RESET_AFTER = 2 * BACKOFF_CAP
EXITED_KEPT = 3
GC_AFTER = 60.0
WRITE_SETTLE = 0.2
LOG_LINE_MAX = 16 * 1024

RUNNING = "CONTAINER_RUNNING"
EXITED = "CONTAINER_EXITED"

# The launcher uses the standard library only: run as a file in isolated mode without the
# site module, a container starts some 20 ms sooner than with ``-m``.
_LAUNCHER = (sys.executable, "-I", "-S", str(Path(container_launcher.__file__).resolve()))

BRIDGE = "cni0"
NETWORK_NOT_READY = ("network is not ready: container runtime network not ready: NetworkReady=false "
                     "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
                     "not initialized")
HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"

PodHook = Callable[[list[dict[str, Any]]], None]
"""Called with the full pod summary (as in ``pods.json``) each time it changes."""


def _tool(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name


def _pod_hostname(spec: PodSpec) -> str:
    """A workload pod's hostname: ``spec.hostname`` (a StatefulSet's pods), else its name."""
    return str((spec.doc.get("spec") or {}).get("hostname") or spec.name)


def parse_manifest(data: bytes, file: str, node_name: str) -> PodSpec:
    """Read a static pod manifest as the kubelet would (:func:`staticpod.parse`); log what is not run."""
    return staticpod.parse(data, file, node_name, warn=log.warning)


def _now_ns() -> int:
    return time.time_ns()


def cri_timestamp(ns: int) -> str:
    """Format a time as the CRI log format does: RFC 3339 in UTC with nanoseconds."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


class _LogWriter:
    """Copies a container's stdout and stderr into one CRI-format log file."""

    def __init__(self, path: Path, streams: dict[str, Any]) -> None:
        self._file = open(path, "ab", buffering=0)
        self._lock = threading.Lock()
        self._open = len(streams)
        self.threads = [
            threading.Thread(target=self._copy, args=(name, pipe), daemon=True, name=f"log-{path.parent.name}-{name}")
            for name, pipe in streams.items()
        ]
        for t in self.threads:
            t.start()

    def _copy(self, stream: str, pipe: Any) -> None:
        try:
            while True:
                chunk = pipe.readline(LOG_LINE_MAX)
                if not chunk:
                    break
                full = chunk.endswith(b"\n")
                body = chunk[:-1] if full else chunk
                tag = b"F" if full or len(chunk) < LOG_LINE_MAX else b"P"
                line = b"%s %s %s %s\n" % (cri_timestamp(_now_ns()).encode(), stream.encode(), tag, body)
                with self._lock:
                    self._file.write(line)
        except (OSError, ValueError):
            pass
        finally:
            pipe.close()
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._file.close()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))


@dataclasses.dataclass
class _Container:
    """One run (attempt) of a container: what ``crictl ps -a`` lists."""

    record: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    logs: _LogWriter | None = None
    kill_at: float | None = None  # monotonic time for SIGKILL while stopping

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def running(self) -> bool:
        return self.record["state"] == RUNNING


@dataclasses.dataclass
class _Slot:
    """A container name within a pod: its current run, back-off and restart count."""

    spec: ContainerSpec
    current: _Container | None = None
    restarts: int = 0
    failures: int = 0
    next_start: float = 0.0  # monotonic
    done: bool = False  # restartPolicy says do not start again
    pull_error: str = ""  # the image could not be had: ErrImagePull, then ImagePullBackOff
    pulls: int = 0  # failed pulls in a row
    pull_failed_at: float = 0.0  # monotonic

    def backoff_delay(self) -> float:
        if self.failures <= 1:
            return 0.0
        return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (self.failures - 2))


@dataclasses.dataclass
class _Pod:
    spec: PodSpec
    sandbox_id: str
    created: int
    slots: dict[str, _Slot]
    terminating: bool = False
    ever_started: bool = False
    blocked_message: str = ""
    attempt: int = 0  # the sandbox's: a pod whose sandbox was stopped gets a new one, +1
    sandbox: subprocess.Popen[bytes] | None = None  # a workload's pause process (own network)
    ip: str = ""


class Supervisor:
    """Runs the static pods of one node from ``<rootfs>/etc/kubernetes/manifests``."""

    def __init__(
        self,
        rootfs: Path,
        node_name: str,
        state_dir: Path | None = None,
        pod_hooks: PodHook | None = None,
        images: Path | None = None,
        node_ip: str = "",
    ) -> None:
        self.rootfs = Path(rootfs)
        self.node_name = node_name
        self.state_dir = Path(state_dir) if state_dir is not None else self.rootfs / STATE_DIR
        self.pod_hooks = pod_hooks
        self.images = image_store.Store(images) if images is not None else None
        self.node_ip = node_ip
        self._stop = threading.Event()
        self._stopping = False  # set by signal handlers, which must not take locks
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pods: dict[str, _Pod] = {}  # by uid
        self._history: dict[str, _Container] = {}  # every container record kept, by id
        self._by_pid: dict[int, _Container] = {}
        self._parsed: dict[str, tuple[bytes, PodSpec | ManifestError]] = {}  # file name -> (digest, pod)
        self._desired: dict[str, PodSpec] = {}  # by uid
        self._file_desired: dict[str, PodSpec] = {}  # static pods, by uid
        self._api_desired: dict[str, PodSpec] = {}  # workload pods the kubelet asks for
        self._net_request: str | None = None
        self._next_routes = 0.0
        self._pod_net: ipaddress.IPv4Network | None = None
        self._routes: dict[str, str] = {}
        self._ips: dict[str, str] = {}  # pod uid -> IP
        self._sandbox_pids: set[int] = set()
        self._summary: list[dict[str, Any]] = []
        self._summary_json = ""
        self._gone_since: dict[str, float] = {}  # pod uid -> monotonic time it stopped
        self._lock = threading.Lock()
        self._reap_all = os.getpid() == 1
        self._paused = False  # the kubelet service is stopped: no scan, restart or GC
        self._agent_request: bool | None = None  # True: resume, False: pause
        self._agent_done = threading.Event()
        self._reread = False
        self._stopped: dict[str, tuple[dict[str, Any], float]] = {}  # sandboxes stopped by crictl

    # public API ---------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Supervise until ``stop`` is set or SIGTERM/SIGINT arrives, then stop every container.

        In the main thread it installs handlers for SIGTERM, SIGINT and SIGCHLD; as PID 1
        it also reaps every orphan that the node's pid namespace hands it.
        """
        if stop is not None:
            self._stop = stop
        restore = self._install_signals()
        try:
            self._prepare()
            next_scan = 0.0
            while not (self._stopping or self._stop.is_set()):
                self._reap()
                self._sandbox_requests()
                if self._apply_agent_request():
                    next_scan = 0.0
                if not self._paused:
                    now = time.monotonic()
                    if now >= next_scan:
                        self._scan()
                        next_scan = now + POLL_INTERVAL
                    self._apply_network()
                    with self._lock:
                        self._desired = {**self._file_desired, **self._api_desired}
                    self._reconcile()
                self._publish()
                self._sleep(TICK)
        finally:
            self.shutdown()
            restore()

    def stop(self) -> None:
        """Ask :meth:`run` to stop every container and return."""
        self._stop.set()
        self._poke()

    def pause_agent(self, timeout: float = 10.0) -> bool:
        """Stop the kubelet's work (``systemctl stop kubelet``): no more manifest scans,
        restarts or garbage collection, while the running containers keep running and their
        exits are still recorded, as containerd does. True once :meth:`run` has paused."""
        return self._request_agent(False, timeout)

    def resume_agent(self, timeout: float = 10.0) -> bool:
        """Start the kubelet's work again (``systemctl start kubelet``): the manifests are
        read again, pods whose manifest is unchanged keep their running containers (a
        changed manifest is a new pod, as ever), exited containers restart at once."""
        return self._request_agent(True, timeout)

    @property
    def agent_running(self) -> bool:
        return not self._paused

    def _request_agent(self, running: bool, timeout: float) -> bool:
        with self._lock:
            self._agent_request = running
            self._agent_done.clear()
        self._poke()
        return self._agent_done.wait(timeout)

    def _apply_agent_request(self) -> bool:
        """Apply a pause or resume asked for by another thread; True when resumed."""
        with self._lock:
            want, self._agent_request = self._agent_request, None
        if want is None:
            return False
        resumed = False
        if not want and not self._paused:
            self._paused = True
            log.info("kubelet stopped: /%s is no longer watched and no container is restarted; "
                     "running containers keep running", MANIFESTS)
        elif want and self._paused:
            self._paused = False
            self._reread = True
            running = 0
            for pod in self._pods.values():
                for slot in pod.slots.values():
                    slot.failures, slot.next_start = 0, 0.0
                    running += bool(slot.current and slot.current.running)
            log.info("kubelet started: reading /%s, adopting %d running container(s)",
                     MANIFESTS, running)
            resumed = True
        self._agent_done.set()
        return resumed

    def set_api_pods(self, pods: Sequence[PodSpec]) -> None:
        """The workload pods bound to this node that should run (from the kubelet's sync);
        a pod left out is stopped."""
        with self._lock:
            self._api_desired = {p.uid: p for p in pods}
        self._poke()

    def set_network(self, pod_cidr: str) -> None:
        """The node's pod CIDR: its bridge ``cni0`` takes the first address, pods the next
        ones. The CIDR is published beside the node's directory (``pod-cidr``), where the
        other nodes of the cluster read it to route to this node's pods, as kind's network
        daemon does with the Node objects."""
        with self._lock:
            self._net_request = pod_cidr
        self._poke()

    def pod_status(self) -> list[dict[str, Any]]:
        """The pods as ``pods.json`` lists them: name, namespace, uid, phase, status, ready,
        restartCount, reason, message and per-container details."""
        with self._lock:
            return json.loads(json.dumps(self._summary))

    def shutdown(self) -> None:
        """Stop every container now (SIGTERM, SIGKILL after the grace period) and wait."""
        if self._pods:
            log.info("stopping all containers")
        for pod in self._pods.values():
            self._terminate_pod(pod)
        deadline = time.monotonic() + GRACE_CAP + 2.0
        while any(c.running for c in self._live()) and time.monotonic() < deadline:
            self._reap()
            self._enforce_kills()
            time.sleep(0.02)
        for c in self._live():
            self._signal(c, signal.SIGKILL)
        self._reap(block_for=0.5)
        for pod in self._pods.values():
            self._end_sandbox(pod, release=True)
        for c in list(self._history.values()):
            if c.logs is not None:
                c.logs.join(0.5)
            if not c.running:
                self._remove_root(c.id)
        self._pods.clear()
        self._publish()

    # setup --------------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_stop(signum: int, frame: Any) -> None:
            self._stopping = True

        def on_child(signum: int, frame: Any) -> None:
            pass  # the wakeup fd already woke the loop

        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        old_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGCHLD, on_child)

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_fd)

        return restore

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _sleep(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, less if a signal arrives or :meth:`stop` is called."""
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _prepare(self) -> None:
        (self.state_dir / "containers").mkdir(parents=True, exist_ok=True)
        for sub in ("var/log/pods", "var/log/containers", MANIFESTS):
            (self.rootfs / sub).mkdir(parents=True, exist_ok=True)
        now = _now_ns()
        for path in sorted((self.state_dir / "containers").glob("*.json")):
            try:
                record = json.loads(path.read_text())
                record["id"]
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if record.get("state") == RUNNING:
                record.update(state=EXITED, finishedAt=now, exitCode=255, reason="Unknown", pid=0)
                _write_json(path, record)
            self._history[record["id"]] = _Container(record)
            self._gone_since.setdefault(record.get("podUid", ""), time.monotonic())
        try:
            left_over = [e.name for e in os.scandir(self.rootfs / TASKS_DIR) if e.is_dir(follow_symlinks=False)]
        except OSError:
            left_over = []
        for cid in left_over:
            self._remove_root(cid)
        log.info("supervising /%s for node %s", MANIFESTS, self.node_name)

    # manifests ----------------------------------------------------------------------

    def _scan(self) -> None:
        mdir = self.rootfs / MANIFESTS
        try:
            names = staticpod.manifest_names(e.name for e in os.scandir(mdir) if e.is_file())
        except FileNotFoundError:
            names = []
        except OSError as exc:
            log.warning("cannot read %s: %s", mdir, exc)
            return
        now = time.time()
        parsed: dict[str, tuple[bytes, PodSpec | ManifestError]] = {}
        for name in names:
            path = mdir / name
            try:
                mtime = path.stat().st_mtime
                data = path.read_bytes()
            except OSError:
                continue
            digest = hashlib.sha256(data).digest()
            cached = self._parsed.get(name)
            if cached is not None and cached[0] == digest:
                parsed[name] = cached
                continue
            if now - mtime < WRITE_SETTLE:
                if cached is not None:
                    parsed[name] = cached  # still being written: keep the previous content
                continue
            file = f"/{MANIFESTS}/{name}"
            try:
                parsed[name] = (digest, parse_manifest(data, file, self.node_name))
            except ManifestError as exc:
                log.error('Could not process manifest file path="%s" err="%s"', file, exc.message)
                parsed[name] = (digest, exc)
        if parsed == self._parsed and not self._reread:
            return
        self._reread = False
        self._parsed = parsed
        chosen = staticpod.effective(((name, pod) for name, (_, pod) in parsed.items()),
                                     self.node_name, f"/{MANIFESTS}")
        for file, why in chosen.skipped:
            if why.startswith("duplicate pod name"):
                log.error('Pod failed validation, ignoring file="%s": %s', file, why)
        self._file_desired = {pod.uid: pod for pod in chosen.pods}

    # crictl stopp / rmp -------------------------------------------------------------

    def _sandbox_requests(self) -> None:
        """Serve ``crictl stopp`` and ``rmp``: each writes ``<state_dir>/requests/<verb>-<id>``
        and waits until the file is gone. A stopped sandbox's containers are killed and it
        stays listed as NotReady; its pod gets a new sandbox (attempt + 1) whose containers
        start at once, as the kubelet recreates a sandbox that is no longer ready. Removing a
        sandbox removes its exited containers."""
        rdir = self.state_dir / "requests"
        try:
            names = os.listdir(rdir)
        except OSError:
            return
        for name in names:
            verb, _, sid = name.partition("-")
            pod = next((p for p in self._pods.values() if p.sandbox_id == sid), None)
            if pod is not None:
                self._stop_sandbox(pod)
            if any(c.running and c.record.get("podSandboxId") == sid for c in self._live()):
                continue  # answered once the killed containers' exits are recorded
            if verb == "rmp":
                self._remove_sandbox(sid)
                log.info("sandbox %s removed", sid[:13])
            (rdir / name).unlink(missing_ok=True)

    def _remove_sandbox(self, sid: str) -> None:
        """Forget a stopped sandbox and drop its exited containers."""
        self._stopped.pop(sid, None)
        for c in [c for c in self._history.values()
                  if c.record.get("podSandboxId") == sid and not c.running]:
            self._drop(c)

    def _stop_sandbox(self, pod: _Pod) -> None:
        old = pod.sandbox_id
        entry = {"name": pod.spec.full_name, "namespace": pod.spec.namespace,
                 "uid": pod.spec.uid, "id": old, "createdAt": pod.created,
                 "attempt": pod.attempt, "status": "NotReady", "containers": []}
        self._stopped[old] = (entry, time.monotonic())
        for slot in pod.slots.values():
            c = slot.current
            if c is not None and c.running:
                self._signal(c, signal.SIGKILL)
            slot.failures, slot.next_start = 0, 0.0
        self._end_sandbox(pod, release=False)
        pod.sandbox_id, pod.created = secrets.token_hex(32), _now_ns()
        pod.attempt += 1
        log.info("sandbox %s of %s stopped; its pod gets sandbox %s", old[:13],
                 pod.spec.full_name, pod.sandbox_id[:13])

    # the pod network ----------------------------------------------------------------

    def _ip(self, batch: str, netns: str = "") -> str:
        """Run ``ip -batch`` (in the sandbox's network namespace with ``netns``); return its
        error output, empty on success. Called from the loop's thread only, so the wait
        never races with PID 1's reaping."""
        argv = [_tool("ip"), "-batch", "-"]
        if netns:
            argv = [_tool("nsenter"), f"--net={netns}", "--", *argv]
        try:
            done = subprocess.run(argv, input=batch.encode(), capture_output=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        return done.stderr.decode(errors="replace").strip() if done.returncode else ""

    def _apply_network(self) -> None:
        with self._lock:
            cidr, self._net_request = self._net_request, None
        if cidr is not None:
            self._set_pod_net(cidr)
        if self._pod_net is not None and time.monotonic() >= self._next_routes:
            self._next_routes = time.monotonic() + ROUTES_PERIOD
            self._sync_routes()

    def _set_pod_net(self, cidr: str) -> None:
        try:
            net = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            log.warning("pod CIDR %r is not an IPv4 network", cidr)
            return
        if net == self._pod_net:
            return
        batch = "" if (self.rootfs / "sys/class/net" / BRIDGE).exists() else f"link add {BRIDGE} type bridge\n"
        err = self._ip(batch + f"addr replace {net[1]}/{net.prefixlen} dev {BRIDGE}\nlink set {BRIDGE} up\n")
        if err:
            log.warning("pod network %s: %s", net, err)
            return
        self._pod_net = net
        try:
            _write_json(self.rootfs.parent / POD_CIDR_FILE, {"cidr": str(net), "ip": self.node_ip})
        except OSError as exc:
            log.warning("cannot publish the pod CIDR: %s", exc)
        self._next_routes = 0.0
        log.info("pod network %s on bridge %s", net, BRIDGE)

    def _sync_routes(self) -> None:
        """Route the other nodes' pod CIDRs through their addresses."""
        routes: dict[str, str] = {}
        for path in self.rootfs.parent.parent.glob(f"*/{POD_CIDR_FILE}"):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(entry, dict) and entry.get("ip") and entry.get("cidr") != str(self._pod_net):
                routes[str(entry.get("cidr"))] = str(entry["ip"])
        batch = "".join(f"route replace {cidr} via {ip}\n" for cidr, ip in sorted(routes.items())
                        if self._routes.get(cidr) != ip)
        if not batch:
            return
        err = self._ip(batch)
        if err:
            log.warning("pod routes: %s", err)
            return
        self._routes = routes

    def _allocate_ip(self, uid: str) -> str:
        assert self._pod_net is not None
        used = set(self._ips.values())
        for host in list(self._pod_net.hosts())[1:]:
            if str(host) not in used:
                self._ips[uid] = str(host)
                return str(host)
        raise OSError(f"no IP address left in {self._pod_net}")

    def _write_hosts(self, pod: _Pod, ip: str, hostname: str) -> None:
        path = self.rootfs / "var/lib/kubelet/pods" / pod.spec.uid / "etc-hosts"
        path.parent.mkdir(parents=True, exist_ok=True)
        if pod.spec.host_network:
            try:
                text = (self.rootfs / "etc/hosts").read_text()
            except OSError:
                text = ""
        else:
            text = (f"{HOSTS_HEADER}127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\n"
                    f"fe00::2\tip6-allrouters\n{ip}\t{hostname}\n")
        path.write_text(text)

    def _ensure_sandbox(self, pod: _Pod) -> bool:
        """Give a workload pod its sandbox: a pause process in network, uts and ipc namespaces
        of its own, a veth pair to ``cni0`` and an IP of the node's pod CIDR. False (with the
        kubelet's message on the pod) while that cannot be done."""
        hostname = _pod_hostname(pod.spec)
        if pod.spec.host_network or not pod.spec.containers or not pod.spec.containers[0].pulled:
            if pod.spec.containers and pod.spec.containers[0].pulled and not pod.ip:
                pod.ip = self.node_ip
                self._write_hosts(pod, pod.ip, hostname)
            return True
        if pod.sandbox is not None:
            return True
        if self._pod_net is None:
            pod.blocked_message = NETWORK_NOT_READY
            return False
        try:
            ip = self._ips.get(pod.spec.uid) or self._allocate_ip(pod.spec.uid)
            proc = subprocess.Popen([*_LAUNCHER, "--pause", hostname[:63]], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, start_new_session=True, cwd="/",
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except OSError as exc:
            pod.blocked_message = f"failed to create pod sandbox: {exc}"
            return False
        line = proc.stdout.readline().strip() if proc.stdout else b""
        if proc.stdout:
            proc.stdout.close()
        self._sandbox_pids.add(proc.pid)
        veth = f"veth{pod.sandbox_id[:8]}"
        err = "" if line == b"ready" else (line.decode(errors="replace") or "pause exited")
        err = err or self._ip(f"link add {veth} type veth peer name eth0 netns {proc.pid}\n"
                              f"link set {veth} master {BRIDGE}\nlink set {veth} up\n")
        err = err or self._ip(f"link set lo up\naddr add {ip}/{self._pod_net.prefixlen} dev eth0\n"
                              f"link set eth0 up\nroute add default via {self._pod_net[1]}\n",
                              netns=f"{self.rootfs}/proc/{proc.pid}/ns/net")
        if err:
            proc.kill()
            pod.blocked_message = (f'failed to setup network for sandbox "{pod.sandbox_id[:13]}": {err}')
            log.warning("pod %s/%s: %s", pod.spec.namespace, pod.spec.name, pod.blocked_message)
            return False
        self._write_hosts(pod, ip, hostname)
        pod.sandbox, pod.ip = proc, ip
        log.info("sandbox %s of %s/%s: %s on %s", pod.sandbox_id[:13], pod.spec.namespace,
                 pod.spec.name, ip, veth)
        return True

    def _end_sandbox(self, pod: _Pod, release: bool) -> None:
        if pod.sandbox is not None:
            try:
                pod.sandbox.kill()
            except OSError:
                pass
            pod.sandbox = None
        if release:
            self._ips.pop(pod.spec.uid, None)
            pod.ip = ""

    def _sandbox_joins(self, pod: _Pod) -> list[str]:
        if pod.sandbox is None:
            return []
        return [f"{self.rootfs}/proc/{pod.sandbox.pid}/ns/{ns}" for ns in ("net", "uts", "ipc")]

    # reconciling --------------------------------------------------------------------

    def _reconcile(self) -> None:
        now = time.monotonic()
        for uid, pod in list(self._pods.items()):
            if uid not in self._desired and not pod.terminating:
                log.info("pod %s/%s (%s) removed: stopping it", pod.spec.namespace, pod.spec.full_name, pod.spec.file)
                self._terminate_pod(pod)
        self._enforce_kills()
        for uid, pod in list(self._pods.items()):
            if pod.terminating and not any(s.current and s.current.running for s in pod.slots.values()):
                self._end_sandbox(pod, release=True)
                del self._pods[uid]
                self._gone_since[uid] = now
        for uid, spec in self._desired.items():
            if uid not in self._pods:
                self._pods[uid] = self._new_pod(spec)
                self._gone_since.pop(uid, None)
        for pod in self._pods.values():
            if pod.terminating:
                continue
            previous = [
                p for p in self._pods.values()
                if p.terminating and p.spec.full_name == pod.spec.full_name and p.spec.namespace == pod.spec.namespace
            ]
            if previous:
                pod.blocked_message = "waiting for the previous instance of the pod to terminate"
                continue
            pod.blocked_message = ""
            if not all(slot.done or (slot.current and slot.current.running) or now < slot.next_start
                       for slot in pod.slots.values()) and not self._ensure_sandbox(pod):
                continue
            for slot in pod.slots.values():
                if slot.done or (slot.current and slot.current.running) or now < slot.next_start:
                    continue
                self._start(pod, slot)
        self._collect_garbage(now)

    def _new_pod(self, spec: PodSpec) -> _Pod:
        log.info("pod %s/%s (%s) added, uid %s", spec.namespace, spec.full_name, spec.file, spec.uid)
        slots = {c.name: _Slot(c) for c in spec.containers}
        for c in self._history.values():
            r = c.record
            if r.get("podUid") == spec.uid and r.get("name") in slots:
                slot = slots[r["name"]]
                slot.restarts = max(slot.restarts, int(r.get("attempt", 0)) + 1)
        return _Pod(spec, secrets.token_hex(32), _now_ns(), slots)

    def _pull(self, pod: _Pod, slot: _Slot) -> image_store.Image | None:
        """The container's image from the node's store; on a miss, the kubelet's ErrImagePull
        and a back-off before the next try (ImagePullBackOff meanwhile)."""
        image = self.images.get(slot.spec.image) if self.images is not None else None
        if image is not None:
            slot.pull_error, slot.pulls = "", 0
            return image
        slot.pulls += 1
        slot.pull_failed_at = time.monotonic()
        slot.pull_error = (self.images.pull_error(slot.spec.image) if self.images is not None
                           else f'failed to pull image "{slot.spec.image}": this node has no image store')
        delay = min(BACKOFF_CAP, 2 * BACKOFF_BASE * 2 ** (slot.pulls - 1))
        slot.next_start = time.monotonic() + delay
        log.warning('Failed to pull image "%s" for %s/%s: %s; back-off %.0fs', slot.spec.image,
                    pod.spec.namespace, pod.spec.name, slot.pull_error, delay)
        return None

    def _start(self, pod: _Pod, slot: _Slot) -> None:
        spec = slot.spec
        image = None
        if spec.pulled:
            image = self._pull(pod, slot)
            if image is None:
                return
        cid = secrets.token_hex(32)
        attempt = slot.restarts
        pod_dir = f"/var/log/pods/{pod.spec.namespace}_{pod.spec.full_name}_{pod.spec.uid}"
        log_path = f"{pod_dir}/{spec.name}/{attempt}.log"
        host_log = self.rootfs / log_path.lstrip("/")
        host_log.parent.mkdir(parents=True, exist_ok=True)
        host_log.write_bytes(b"")
        link = self.rootfs / "var/log/containers" / f"{pod.spec.full_name}_{pod.spec.namespace}_{spec.name}-{cid}.log"
        link.unlink(missing_ok=True)
        link.symlink_to(log_path)
        argv = [*_LAUNCHER, "--rootfs", str(self.rootfs), "--id", cid]
        for m in spec.mounts:
            argv += ["--bind", Bind(m.source, m.target, m.read_only, m.type).to_arg()]
        command, env, workdir = list(spec.argv), list(spec.env), spec.workdir
        hostname = self.node_name
        if image is not None:
            command = image.argv(list(spec.argv), list(spec.args))
            env = [tuple(e.split("=", 1)) for e in image.env if "=" in e] + env  # type: ignore[misc]
            workdir = spec.workdir or image.workdir
            argv += ["--node-image" if image.base == "node" else "--image", str(image.rootfs)]
            for ns in self._sandbox_joins(pod):
                argv += ["--join", ns]
            if not pod.spec.host_network:
                hostname = _pod_hostname(pod.spec)
        argv += ["--workdir", workdir, "--env", f"HOSTNAME={hostname}"]
        for k, v in env:
            argv += ["--env", f"{k}={v}"]
        argv += ["--", *command]
        now = _now_ns()
        record: dict[str, Any] = {
            "id": cid,
            "podSandboxId": pod.sandbox_id,
            "podName": pod.spec.full_name,
            "podNamespace": pod.spec.namespace,
            "podUid": pod.spec.uid,
            "manifest": pod.spec.file,
            "name": spec.name,
            "image": image.ref if image is not None else spec.image,
            "imageRef": image.id if image is not None else "sha256:" + hashlib.sha256(spec.image.encode()).hexdigest(),
            "attempt": attempt,
            "state": RUNNING,
            "createdAt": now,
            "startedAt": now,
            "finishedAt": 0,
            "exitCode": 0,
            "reason": "",
            "message": "",
            "pid": 0,
            "logPath": log_path,
            "command": command,
            "env": [f"{k}={v}" for k, v in env],
            "workingDir": workdir,
            "mounts": [
                {"containerPath": m.target, "hostPath": m.source, "readonly": m.read_only} for m in spec.mounts
            ],
        }
        container = _Container(record)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        except OSError as exc:
            record.update(state=EXITED, finishedAt=now, exitCode=128, reason="StartError", message=str(exc))
            log.error("container %s of %s failed to start: %s", spec.name, pod.spec.full_name, exc)
            self._after_exit(pod, slot, container, ran_for=0.0)
        else:
            record["pid"] = proc.pid
            container.proc = proc
            container.logs = _LogWriter(host_log, {"stdout": proc.stdout, "stderr": proc.stderr})
            self._by_pid[proc.pid] = container
            log.info("started container %s (%s) of %s, attempt %d, pid %d",
                     spec.name, cid[:13], pod.spec.full_name, attempt, proc.pid)
        slot.current = container
        slot.restarts = attempt + 1
        pod.ever_started = True
        self._history[cid] = container
        self._save(container)

    def _after_exit(self, pod: _Pod | None, slot: _Slot | None, c: _Container, ran_for: float) -> None:
        self._save(c)
        if pod is None or slot is None or pod.terminating or self._paused:
            return  # a stopped kubelet restarts nothing; it catches up when started
        code = c.record["exitCode"]
        if pod.spec.restart_policy == "Never" or (pod.spec.restart_policy == "OnFailure" and code == 0):
            slot.done = True
            return
        if ran_for >= BACKOFF_RESET_AFTER:
            slot.failures = 0
        slot.failures += 1
        delay = slot.backoff_delay()
        slot.next_start = time.monotonic() + delay
        log.info("container %s of %s exited with code %d; restarting in %.0f s",
                 c.record["name"], pod.spec.full_name, code, delay)

    def _owner(self, c: _Container) -> tuple[_Pod | None, _Slot | None]:
        pod = self._pods.get(c.record["podUid"])
        if pod is None:
            return None, None
        slot = pod.slots.get(c.record["name"])
        if slot is None or slot.current is not c:
            return pod, None
        return pod, slot

    # processes ----------------------------------------------------------------------

    def _live(self) -> list[_Container]:
        return [c for c in self._by_pid.values() if c.running]

    def _reap(self, block_for: float = 0.0) -> None:
        deadline = time.monotonic() + block_for
        while True:
            self._reap_once()
            if not self._by_pid or time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def _reap_once(self) -> bool:
        found = False
        if self._reap_all:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                found = True
                if pid in self._by_pid:
                    self._exited(self._by_pid.pop(pid), status)
                elif pid in self._sandbox_pids:
                    self._sandbox_pids.discard(pid)
                else:  # a service's process (etcd.service): its unit waits for the status
                    units.child_exited(pid, status)
            return found
        for pid in list(self._by_pid):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 255 << 8
            if done:
                found = True
                self._exited(self._by_pid.pop(pid), status)
        return found

    def _exited(self, c: _Container, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        if c.proc is not None:
            c.proc.returncode = code
            try:
                os.killpg(c.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        now = _now_ns()
        c.record.update(state=EXITED, finishedAt=now, exitCode=code, reason="Completed" if code == 0 else "Error")
        c.kill_at = None
        ran_for = (now - c.record["startedAt"]) / 1e9
        pod, slot = self._owner(c)
        (runtime_log if self._paused else log).info(
            "container %s (%s) of %s exited with code %d after %.1f s",
            c.record["name"], c.id[:13], c.record["podName"], code, ran_for)
        self._after_exit(pod, slot, c, ran_for)

    def _signal(self, c: _Container, sig: int) -> None:
        if c.proc is None or not c.running:
            return
        try:
            os.killpg(c.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.warning("cannot signal container %s: %s", c.id[:13], exc)

    def _terminate_pod(self, pod: _Pod) -> None:
        pod.terminating = True
        grace = min(pod.spec.grace, GRACE_CAP)
        for slot in pod.slots.values():
            c = slot.current
            if c is not None and c.running and c.kill_at is None:
                self._signal(c, signal.SIGTERM)
                c.kill_at = time.monotonic() + grace

    def _enforce_kills(self) -> None:
        now = time.monotonic()
        for c in self._live():
            if c.kill_at is not None and now >= c.kill_at:
                log.info("container %s did not stop within the grace period: killing it", c.id[:13])
                self._signal(c, signal.SIGKILL)
                c.kill_at = now + 5.0

    # state --------------------------------------------------------------------------

    def _save(self, c: _Container) -> None:
        try:
            _write_json(self.state_dir / "containers" / f"{c.id}.json", c.record)
        except OSError as exc:
            log.warning("cannot write container state %s: %s", c.id[:13], exc)

    def _remove_root(self, cid: str) -> None:
        if not remove_bundle(self.rootfs, cid):
            log.warning("left the root of container %s in place: something is mounted in it or it "
                        "could not be deleted", cid[:13])

    def _drop(self, c: _Container) -> None:
        del self._history[c.id]
        self._remove_root(c.id)
        (self.state_dir / "containers" / f"{c.id}.json").unlink(missing_ok=True)
        r = c.record
        link = self.rootfs / "var/log/containers" / f"{r['podName']}_{r['podNamespace']}_{r['name']}-{c.id}.log"
        link.unlink(missing_ok=True)
        log_file = self.rootfs / str(r.get("logPath", "")).lstrip("/")
        if r.get("logPath"):
            log_file.unlink(missing_ok=True)
            for d in (log_file.parent, log_file.parent.parent):
                try:
                    d.rmdir()
                except OSError:
                    break

    def _collect_garbage(self, now: float) -> None:
        for sid, (_, since) in list(self._stopped.items()):
            if now - since >= GC_AFTER:  # the kubelet removes sandboxes that are not ready
                self._remove_sandbox(sid)
        groups: dict[tuple[str, str, str], list[_Container]] = {}
        for c in self._history.values():
            r = c.record
            if c.running:
                continue
            if r.get("podUid") not in self._pods and now - self._gone_since.get(r.get("podUid", ""), now) >= GC_AFTER:
                groups.setdefault(("gone", c.id, ""), []).append(c)
                continue
            groups.setdefault((r["podNamespace"], r["podName"], r["name"]), []).append(c)
        for key, members in groups.items():
            if key[0] == "gone":
                for c in members:
                    self._drop(c)
                continue
            members.sort(key=lambda c: c.record["createdAt"], reverse=True)
            for c in members[EXITED_KEPT:]:
                self._drop(c)
        for uid in list(self._gone_since):
            if not any(c.record.get("podUid") == uid for c in self._history.values()):
                del self._gone_since[uid]

    def _pod_summary(self, pod: _Pod, now: float) -> dict[str, Any]:
        containers = []
        for slot in pod.slots.values():
            c = slot.current
            entry: dict[str, Any] = {
                "name": slot.spec.name,
                "image": slot.spec.image,
                "restartCount": max(0, slot.restarts - 1),
                "containerID": c.id if c else "",
                "ready": bool(c and c.running and not pod.terminating),
            }
            if c is None and slot.pull_error:
                backing_off = now - slot.pull_failed_at >= PULL_ERROR_SHOWN
                entry.update(state="waiting", reason="ImagePullBackOff" if backing_off else "ErrImagePull",
                             message=(f'Back-off pulling image "{slot.spec.image}": ErrImagePull: '
                                      f"{slot.pull_error}") if backing_off else slot.pull_error)
            elif c is None:
                entry.update(state="waiting", reason="ContainerCreating", message=pod.blocked_message)
            elif c.running:
                entry.update(state="running", reason="", startedAt=c.record["startedAt"])
            else:
                entry.update(exitCode=c.record["exitCode"], finishedAt=c.record["finishedAt"])
                if slot.done:
                    entry.update(state="terminated", reason=c.record["reason"])
                elif now < slot.next_start:
                    entry.update(
                        state="waiting",
                        reason="CrashLoopBackOff",
                        message=f"back-off {slot.backoff_delay():.0f}s restarting failed container={slot.spec.name} "
                        f"pod={pod.spec.full_name}_{pod.spec.namespace}({pod.spec.uid})",
                    )
                else:
                    entry.update(state="terminated", reason=c.record["reason"])
            containers.append(entry)
        ready = all(c["ready"] for c in containers)
        not_running = [c for c in containers if c["state"] != "running"]
        if pod.terminating:
            status, reason = "Terminating", "Terminating"
        elif not not_running:
            status, reason = "Running", ""
        else:
            status = reason = not_running[0]["reason"] or "Unknown"
        if not pod.ever_started:
            phase = "Pending"
        elif all(c["state"] == "terminated" for c in containers) and all(s.done for s in pod.slots.values()):
            phase = "Succeeded" if all(c.get("exitCode") == 0 for c in containers) else "Failed"
        else:
            phase = "Running"
        return {
            "name": pod.spec.full_name,
            "namespace": pod.spec.namespace,
            "uid": pod.spec.uid,
            "id": pod.sandbox_id,
            "attempt": pod.attempt,
            "manifest": pod.spec.file,
            "createdAt": pod.created,
            "phase": phase,
            "status": status,
            "ready": ready,
            "restartCount": sum(c["restartCount"] for c in containers),
            "reason": reason,
            "message": next((c.get("message", "") for c in not_running if c.get("message")), ""),
            "containers": containers,
            "ip": pod.ip,
            "hostNetwork": pod.spec.host_network,
        }

    def _publish(self) -> None:
        now = time.monotonic()
        pods = sorted(self._pods.values(), key=lambda p: (p.spec.namespace, p.spec.full_name, p.terminating))
        summary = [self._pod_summary(p, now) for p in pods]
        stopped = [entry for entry, _ in self._stopped.values()]
        text = json.dumps([summary, stopped], sort_keys=True)
        if text == self._summary_json:
            return
        with self._lock:
            self._summary = summary
            self._summary_json = text
        try:
            _write_json(self.state_dir / "pods.json",
                        {"node": self.node_name, "pods": summary, "stopped": stopped})
        except OSError as exc:
            log.warning("cannot write pods.json: %s", exc)
        if self.pod_hooks is not None:
            try:
                self.pod_hooks(json.loads(json.dumps(summary)))
            except Exception:  # a hook must never take the node's pods down
                log.exception("pod hook failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m simulator.cluster.local.supervisor --rootfs R --node NAME
    [--state DIR] [--log FILE]``; runs until SIGTERM and returns 0."""
    parser = argparse.ArgumentParser(prog="python -m simulator.cluster.local.supervisor")
    parser.add_argument("--rootfs", required=True, type=Path, help="the node's root directory")
    parser.add_argument("--node", required=True, help="node name (pods are named <name>-<node>)")
    parser.add_argument("--state", type=Path, default=None, help=f"state directory (default ROOTFS/{STATE_DIR})")
    parser.add_argument("--log", type=Path, default=None, help="append the supervisor's log here (default stderr)")
    args = parser.parse_args(argv)
    handler: logging.Handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if not args.rootfs.is_dir():
        print(f"supervisor: rootfs {args.rootfs} is not a directory", file=sys.stderr)
        return 2
    supervisor = Supervisor(args.rootfs, args.node, args.state)
    journal = services.Journal(supervisor.state_dir)
    for logger in (log, runtime_log):
        logger.addHandler(handler)
        logger.addHandler(services.JournalHandler(journal))
        logger.setLevel(logging.INFO)
        logger.propagate = False
    manager = services.node_services(supervisor.state_dir, journal, supervisor)
    try:
        supervisor.run()
    finally:
        manager.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
