"""The kubelet's API duties on a practice node: the Node, its Lease and the mirror pods.

The static-pod supervisor runs the pods; this module tells the API server about them as
the kubelet does, with the kubelet's identity (``/etc/kubernetes/kubelet.conf``, user
``system:node:<node>``, so the Node authorizer and the NodeRestriction admission plugin
judge it as on a kubeadm node):

- registers the Node (``kubernetes.io/hostname``, ``kubernetes.io/os`` and ``arch`` labels,
  InternalIP and Hostname addresses, ``kubeletVersion``) and posts a Ready status with
  fresh heartbeats every ``STATUS_PERIOD`` seconds, registering it again if deleted;
- renews ``kube-node-lease/<node>`` every ``LEASE_PERIOD`` seconds (duration 40 s);
- serves ``kubectl logs`` on port 10250 (:mod:`simulator.cluster.local.kubelet_server`);
- keeps one mirror pod per static pod in the pod's namespace, named ``<pod>-<node>``,
  annotated ``kubernetes.io/config.mirror``/``config.hash`` (the static pod's uid),
  ``config.source: file`` and ``config.seen``, owned by the Node, with the supervisor's
  state as status (Running, CrashLoopBackOff and restart counts, Terminated); a mirror pod
  whose static pod is gone, changed, or that belongs to another Node uid is deleted.

It runs in a thread of the node's init (PID 1) and never starts processes: PID 1 reaps
every child, which would race with a ``subprocess`` wait in another thread. While the API
server is down it retries every second, silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from simulator.cluster import kubeadm
from simulator.cluster.local import workloads
from simulator.cluster.local.apiclient import (
    ApiClient,
    ApiError,
    KubeconfigError,
    Unreachable,
)
from simulator.cluster.local.kubelet_server import CERT_DIR, KubeletServer
from simulator.cluster.local.podstatus import iso, micro, mirror_status, workload_status
from simulator.versions import KUBERNETES_VERSION

log = logging.getLogger("cka_sim.kubelet")

CONTAINER_RUNTIME = "containerd://2.1.4"
KUBELET_CONF = kubeadm.KUBELET_CONF.lstrip("/")
CLIENT_PEM = "var/lib/kubelet/pki/kubelet-client-current.pem"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
LEASE_PERIOD = 10.0
STATUS_PERIOD = 10.0
STATE_DIR = "run/cka-sim"
RESYNC_PERIOD = 1.0  # the pods bound to the node are listed this often
RETRY = 1.0
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
HASH_ANNOTATION = "kubernetes.io/config.hash"
SOURCE_ANNOTATION = "kubernetes.io/config.source"
SEEN_ANNOTATION = "kubernetes.io/config.seen"
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def _memory_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def node_labels(node: str) -> dict[str, str]:
    """The labels a kubelet registers its Node with (no role: kubeadm adds that)."""
    arch = _ARCHES.get(platform.machine(), platform.machine())
    return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch, "kubernetes.io/hostname": node,
            "kubernetes.io/os": "linux"}


def node_status(node: str, ip: str, rootfs: Path, started: float) -> dict[str, Any]:
    """The Node status a healthy kubelet posts: Ready, no pressure, addresses, node info."""
    now = iso()
    since = iso(started)
    resources = {"cpu": str(os.cpu_count() or 1), "ephemeral-storage": "20Gi",
                 "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                 "memory": f"{_memory_kib()}Ki", "pods": "110"}

    def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": since}

    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node}],
        "allocatable": resources,
        "capacity": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                      "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                      "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID",
                      "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubeadm.KUBELET_PORT}},
        "nodeInfo": {
            "architecture": _ARCHES.get(platform.machine(), platform.machine()),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "containerRuntimeVersion": CONTAINER_RUNTIME,
            "kernelVersion": platform.release(),
            "kubeProxyVersion": "",
            "kubeletVersion": KUBERNETES_VERSION,
            "machineID": _read(str(rootfs / "etc/machine-id")),
            "operatingSystem": "linux",
            "osImage": _os_image(),
            "systemUUID": _read(str(rootfs / "etc/machine-id")),
        },
    }


def mirror_pod(manifest: dict[str, Any], pod: dict[str, Any], node: str,
               node_uid: str) -> dict[str, Any]:
    """The mirror pod object of a static pod, as the kubelet creates it."""
    doc = json.loads(json.dumps(manifest))
    doc.pop("status", None)
    meta = doc.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    meta["name"] = pod["name"]
    meta["namespace"] = pod["namespace"]
    annotations = dict(meta.get("annotations") or {})
    annotations.update({HASH_ANNOTATION: pod["uid"], MIRROR_ANNOTATION: pod["uid"],
                        SEEN_ANNOTATION: micro(pod.get("createdAt", 0) / 1e9 or None),
                        SOURCE_ANNOTATION: "file"})
    meta["annotations"] = annotations
    meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node,
                                "uid": node_uid, "controller": True}]
    spec = doc.setdefault("spec", {})
    spec["nodeName"] = node
    tolerations = list(spec.get("tolerations") or [])
    default = {"operator": "Exists", "effect": "NoExecute"}
    if default not in tolerations:
        tolerations.append(default)
    spec["tolerations"] = tolerations
    return doc


def _rv(obj: dict[str, Any]) -> int:
    """An object's (or a list's) resourceVersion: etcd's revision of its last change."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _pod_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods"
    return f"{path}/{urllib.parse.quote(name)}" if name else path


class Kubelet:
    """Keeps the API server's view of one node in step with its supervisor."""

    def __init__(self, rootfs: Path, node_name: str, node_ip: str,
                 state_dir: Path | None = None) -> None:
        self.rootfs = Path(rootfs)
        self.state_dir = Path(state_dir) if state_dir is not None else self.rootfs / STATE_DIR
        self._server: KubeletServer | None = None
        self._server_tried = False
        self.node_name = node_name
        self.node_ip = node_ip
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pods: list[dict[str, Any]] = []
        self._pods_version = 0
        self._synced_version = -1
        self._client: ApiClient | None = None
        self._conf_stamp = -1
        self._node_uid: str | None = None
        self._started = time.time()
        self._next_status = 0.0
        self._next_lease = 0.0
        self._next_resync = 0.0
        self._posted: dict[str, str] = {}  # mirror pod uid -> status JSON last posted
        self._ready_since: dict[str, tuple[bool, str]] = {}  # static pod uid -> (ready, since)
        self._manifests: dict[str, dict[str, Any]] = {}  # static pod uid -> manifest
        self._connected = False
        self._last_error = ""
        self._thread: threading.Thread | None = None
        self.runtime: Any = None  # the supervisor: set_api_pods, set_network
        self._pod_cidr = ""
        self._specs: dict[str, tuple[str, Any]] = {}  # workload pod uid -> (spec key, PodSpec)
        self._waiting: dict[str, str] = {}  # workload pod uid -> why it cannot start yet
        self._services: dict[str, str] | None = None
        self._newest_rv = 0  # the highest resourceVersion of the pod lists seen
        self._view: dict[str, dict[str, Any]] = {}  # the bound pods as a watch delivered them
        self._went_back = False  # a list came back older than one seen: etcd was restored

    # supervisor side ----------------------------------------------------------------

    def pods_changed(self, pods: list[dict[str, Any]]) -> None:
        """Supervisor hook: the static pods' summary changed (cheap; never blocks)."""
        with self._lock:
            self._pods = pods
            self._pods_version += 1
        self._wake.set()

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread. After :meth:`stop` (``systemctl stop
        kubelet``) it starts afresh, as a restarted kubelet does: it registers the Node,
        renews the Lease, posts every mirror pod's status again and reopens port 10250."""
        self._stop = threading.Event()
        self._wake.clear()
        self._drop()
        self._client, self._conf_stamp = None, -1
        self._server, self._server_tried, self._connected = None, False, False
        self._synced_version = -1
        self._started = time.time()
        self._newest_rv, self._view, self._went_back = 0, {}, False
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="kubelet",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait briefly for it; stop the kubelet endpoint."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _serve(self) -> None:
        """Open the kubelet endpoint (port 10250) once the API server has been reached."""
        if self._server_tried:
            return
        self._server_tried = True
        try:
            ca = (self.rootfs / kubeadm.PKI.lstrip("/") / "ca.crt").read_bytes()
            self._server = KubeletServer(self.rootfs, self.state_dir, self.node_name,
                                         self.node_ip, ca)
        except (OSError, ValueError) as exc:
            log.warning("kubelet: cannot serve port 10250 (kubectl logs will fail): %s", exc)
            return
        self._server.start()

    def run(self, stop: threading.Event | None = None) -> None:
        """Sync until :meth:`stop`: at once when the pods change, else every second. Port
        10250 opens as soon as the serving certificate the driver writes is there (or, once
        the API server has been reached, with a certificate made here)."""
        stop = stop if stop is not None else self._stop
        while not stop.is_set():
            if not self._server_tried and (self.rootfs / CERT_DIR / "kubelet.crt").exists():
                self._serve()
            try:
                self.sync()
            except Exception:  # never let the thread die: the node's pods outlive a bug here
                log.exception("kubelet sync failed")
                self._drop()
            self._wake.wait(RETRY)
            self._wake.clear()

    # API side -----------------------------------------------------------------------

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
        self._node_uid = None
        self._posted.clear()
        self._next_status = self._next_lease = self._next_resync = 0.0

    def _api(self) -> ApiClient | None:
        conf = self.rootfs / KUBELET_CONF
        try:
            stamp = conf.stat().st_mtime_ns
        except OSError:
            return None
        if stamp != self._conf_stamp:  # a broken kubelet.conf is retried once it changes
            self._conf_stamp = stamp
            self._client = None
            try:
                self._client = ApiClient.from_kubeconfig(conf, self.rootfs / CLIENT_PEM,
                                                         root=self.rootfs)
            except (OSError, ValueError, KubeconfigError) as exc:
                log.warning("cannot use %s: %s", conf, exc)
                return None
        return self._client

    def sync(self) -> None:
        """One round: node, lease and mirror pods, each only when due or changed."""
        api = self._api()
        if api is None:
            return
        try:
            now = time.monotonic()
            if self._node_uid is None or now >= self._next_status:
                self._sync_node(api)
                # until the controller-manager gives the node its pod CIDR, ask again soon
                self._next_status = now + (STATUS_PERIOD if self._pod_cidr else RETRY / 2)
            if now >= self._next_lease:
                self._next_lease = now + LEASE_PERIOD  # a conflict brings it forward
                self._renew_lease(api)
            with self._lock:
                pods, version = self._pods, self._pods_version
            if version != self._synced_version or now >= self._next_resync:
                self._next_resync = now + RESYNC_PERIOD  # _sync_mirrors may bring it forward
                self._sync_mirrors(api, pods)
                self._synced_version = version
            if not self._connected:
                log.info("kubelet: node %s synced with %s", self.node_name, api.server)
                self._connected = True
                self._serve()
        except Unreachable:
            if self._connected:
                log.info("kubelet: API server %s unreachable", api.server)
            self._connected = False
            self._drop()
        except ApiError as exc:
            if str(exc) != self._last_error:
                log.warning("kubelet: %s", exc)
                self._last_error = str(exc)
            self._drop()
            return
        self._last_error = ""

    def _sync_node(self, api: ApiClient) -> None:
        path = f"/api/v1/nodes/{self.node_name}"
        try:
            node = api.get(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.node_name, "labels": node_labels(self.node_name),
                                 "annotations": {
                                     "node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach":
                                         "true"}},
                    "spec": {}}
            node = api.post("/api/v1/nodes", body)
            log.info("kubelet: registered node %s", self.node_name)
        uid = node["metadata"]["uid"]
        if uid != self._node_uid:
            self._node_uid = uid
            self._posted.clear()
            self._next_resync = 0.0
        api.patch(f"{path}/status",
                  {"status": node_status(self.node_name, self.node_ip, self.rootfs,
                                         self._started)}, kind="strategic-merge")
        self._sync_network(api, node)

    def _sync_network(self, api: ApiClient, node: dict[str, Any]) -> None:
        """Hand the node's pod CIDR to the runtime, as a CNI plugin reads it."""
        del api
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if not cidr or self.runtime is None:
            return
        if cidr != self._pod_cidr:
            self.runtime.set_network(cidr)
        self._pod_cidr = cidr

    def _renew_lease(self, api: ApiClient) -> None:
        path = (f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/"
                f"{self.node_name}")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": micro()}
        try:
            lease = api.get(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.node_name, "namespace": LEASE_NAMESPACE,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                      "name": self.node_name,
                                                      "uid": self._node_uid}]},
                    "spec": spec}
            try:
                api.post(path.rsplit("/", 1)[0], body)
            except ApiError as err:
                if err.status not in (404, 409):  # namespace not created yet, or a race
                    raise
            return
        lease["spec"] = {**(lease.get("spec") or {}), **spec}
        try:
            api.put(path, lease)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self._next_lease = 0.0

    def _manifest(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        cached = self._manifests.get(pod["uid"])
        if cached is not None:
            return cached
        file = self.rootfs / str(pod.get("manifest", "")).lstrip("/")
        try:
            data = file.read_bytes()
        except OSError:
            return None
        digest = hashlib.md5(usedforsecurity=False)
        for part in (data, self.node_name.encode(), str(pod.get("manifest", "")).encode()):
            digest.update(part)
        if digest.hexdigest() != pod["uid"]:
            return None  # changed since the supervisor read it: the next summary follows
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError:
            return None
        if not isinstance(doc, dict):
            return None
        self._manifests[pod["uid"]] = doc
        return doc

    def _sync_mirrors(self, api: ApiClient, pods: list[dict[str, Any]]) -> None:
        desired: dict[tuple[str, str], dict[str, Any]] = {}
        for pod in pods:
            if pod.get("status") == "Terminating" or not pod.get("manifest"):
                continue
            desired.setdefault((pod["namespace"], pod["name"]), pod)
        self._manifests = {uid: m for uid, m in self._manifests.items()
                           if any(p["uid"] == uid for p in desired.values())}
        listed = api.get("/api/v1/pods?fieldSelector=" +
                         urllib.parse.quote(f"spec.nodeName={self.node_name}"))
        existing: dict[tuple[str, str], dict[str, Any]] = {}
        bound: list[dict[str, Any]] = []
        for item in listed.get("items") or []:
            meta = item.get("metadata") or {}
            if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
                existing[(meta.get("namespace", ""), meta.get("name", ""))] = item
            else:
                bound.append(item)
        for key, item in existing.items():
            pod = desired.get(key)
            meta = item["metadata"]
            owners = meta.get("ownerReferences") or []
            stale = (pod is None or meta["annotations"].get(MIRROR_ANNOTATION) != pod["uid"]
                     or not owners or owners[0].get("uid") != self._node_uid
                     or meta.get("deletionTimestamp"))
            if stale:
                if not meta.get("deletionTimestamp"):
                    self._delete_mirror(api, item)
                if pod is not None:
                    existing[key] = {}
        live: set[str] = set()
        for key, pod in desired.items():
            item = existing.get(key)
            if not item:
                manifest = self._manifest(pod)
                if manifest is None or self._node_uid is None:
                    continue
                try:
                    item = api.post(_pod_path(pod["namespace"]),
                                    mirror_pod(manifest, pod, self.node_name, self._node_uid))
                except ApiError as exc:
                    if exc.status == 409:  # the deleted one is still going away
                        self._next_resync = 0.0
                        continue
                    raise
                log.info("kubelet: created mirror pod %s/%s", pod["namespace"], pod["name"])
            live.add(item["metadata"]["uid"])
            self._post_status(api, pod, item)
        live |= self._sync_workloads(api, bound, pods, _rv(listed))
        self._posted = {uid: text for uid, text in self._posted.items() if uid in live}
        self._ready_since = {uid: v for uid, v in self._ready_since.items()
                             if uid in live or any(p["uid"] == uid for p in desired.values())}

    def _post_status(self, api: ApiClient, pod: dict[str, Any], item: dict[str, Any]) -> None:
        uid = item["metadata"]["uid"]
        ready = bool(pod.get("ready"))
        previous = self._ready_since.get(pod["uid"])
        if previous is None or previous[0] != ready:
            previous = (ready, iso())
            self._ready_since[pod["uid"]] = previous
        status = mirror_status(pod, self.node_ip, previous[1])
        text = json.dumps(status, sort_keys=True)
        if self._posted.get(uid) == text:
            return
        try:
            api.patch(f"{_pod_path(pod['namespace'], pod['name'])}/status", {
                "metadata": {"uid": uid}, "status": status})
        except ApiError as exc:
            if exc.status in (404, 409):
                self._next_resync = 0.0
                return
            raise
        self._posted[uid] = text

    # workload pods -----------------------------------------------------------------

    def _sync_workloads(self, api: ApiClient, bound: list[dict[str, Any]],
                        summary: list[dict[str, Any]], rv: int) -> set[str]:
        """Run the pods the scheduler bound here, post their status, and finish the deletion
        of those whose containers have stopped. Returns their uids.

        The pods are those a watch would have delivered (:meth:`_watched`)."""
        if self.runtime is None:
            return set()
        bound = self._watched(bound, rv)
        running = {p["uid"]: p for p in summary if not p.get("manifest")}
        wanted, live = [], set()
        for item in bound:
            meta, status = item.get("metadata") or {}, item.get("status") or {}
            uid = str(meta.get("uid", ""))
            live.add(uid)
            if meta.get("deletionTimestamp"):
                if uid not in running:
                    self._finish_deletion(api, item)
                continue
            if status.get("phase") in ("Succeeded", "Failed") and uid not in running:
                continue  # a finished pod is not run again
            spec = self._workload_spec(api, item)
            if spec is not None:
                wanted.append(spec)
            self._post_workload(api, item, running.get(uid))
        self.runtime.set_api_pods(wanted)
        self._specs = {uid: v for uid, v in self._specs.items() if uid in live}
        self._waiting = {uid: v for uid, v in self._waiting.items() if uid in live}
        return live

    def _watched(self, bound: list[dict[str, Any]], rv: int) -> list[dict[str, Any]]:
        """The bound pods as the kubelet's watch knows them, from this list (at ``rv``).

        A kubelet lists its pods once, at start, then watches for changes newer than the
        resourceVersion it last saw. When etcd is restored from a snapshot, the API
        server's history goes back: a restored pod, last changed before that
        resourceVersion, is never delivered, nor are the pods the restore removed, so the
        kubelet runs what it ran until it is restarted (``systemctl restart kubelet``, as
        the Kubernetes documentation says to do after a restore). So does this view."""
        if not self._newest_rv:  # a fresh start lists everything
            self._view = {str(p["metadata"]["uid"]): p for p in bound}
        else:
            if rv < self._newest_rv and not self._went_back:
                self._went_back = True
                log.warning('kubelet: watch of the pods of node %s: "too large resource version: %d, '
                            'current: %d" (was etcd restored?); pods changed before that are not '
                            'seen until the kubelet restarts', self.node_name, self._newest_rv, rv)
            listed = {str(p["metadata"]["uid"]): p for p in bound}
            for uid, item in listed.items():
                if _rv(item) > self._newest_rv:  # an event the watch delivers
                    self._view[uid] = item
            if not self._went_back:
                self._view = {uid: item for uid, item in self._view.items() if uid in listed}
        self._newest_rv = max(self._newest_rv, rv)
        return list(self._view.values())

    def _workload_spec(self, api: ApiClient, item: dict[str, Any]) -> Any:
        uid = item["metadata"]["uid"]
        spec = item.get("spec") or {}
        key = json.dumps([spec.get("containers"), spec.get("volumes")], sort_keys=True)
        cached = self._specs.get(uid)
        if cached is not None and cached[0] == key:
            return cached[1]
        if self._services is None:
            self._services = workloads.service_env(api)
        try:
            made = workloads.pod_spec(api, self.rootfs, item, self.node_ip, self._services)
        except workloads.NotReady as exc:
            if self._waiting.get(uid) != str(exc):
                log.warning('kubelet: MountVolume.SetUp failed for pod %s/%s: %s',
                            item["metadata"].get("namespace"), item["metadata"].get("name"), exc)
            self._waiting[uid] = str(exc)
            return cached[1] if cached is not None else None
        except OSError as exc:
            log.warning("kubelet: cannot prepare pod %s: %s", item["metadata"].get("name"), exc)
            return None
        self._waiting.pop(uid, None)
        self._specs[uid] = (key, made)
        return made

    def _post_workload(self, api: ApiClient, item: dict[str, Any],
                       pod: dict[str, Any] | None) -> None:
        meta = item["metadata"]
        uid = str(meta["uid"])
        if pod is None:  # not started yet: the kubelet says ContainerCreating
            pod = {"uid": uid, "phase": "Pending", "ready": False,
                   "createdAt": None, "ip": "",
                   "containers": [{"name": c.get("name"), "image": c.get("image"), "ready": False,
                                   "restartCount": 0, "state": "waiting",
                                   "reason": "ContainerCreating",
                                   "message": self._waiting.get(uid, "")}
                                  for c in (item.get("spec") or {}).get("containers") or []]}
        ready = bool(pod.get("ready"))
        previous = self._ready_since.get(uid)
        if previous is None or previous[0] != ready:
            previous = (ready, iso())
            self._ready_since[uid] = previous
        status = workload_status(pod, self.node_ip, previous[1],
                                 str((item.get("status") or {}).get("startTime") or ""))
        text = json.dumps(status, sort_keys=True)
        if self._posted.get(uid) == text:
            return
        try:
            api.patch(f"{_pod_path(meta['namespace'], meta['name'])}/status",
                      {"metadata": {"uid": uid}, "status": status})
        except ApiError as exc:
            if exc.status in (404, 409):
                return
            raise
        self._posted[uid] = text

    def _finish_deletion(self, api: ApiClient, item: dict[str, Any]) -> bool:
        """Remove the pod from the API now (its containers have stopped, or it is a stale
        mirror pod), as the kubelet does; True when this call deleted it."""
        meta = item["metadata"]
        try:
            api.delete(_pod_path(meta["namespace"], meta["name"]),
                       {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                        "preconditions": {"uid": meta["uid"]}})
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            return False
        return True

    def _delete_mirror(self, api: ApiClient, item: dict[str, Any]) -> None:
        meta = item["metadata"]
        if not self._finish_deletion(api, item):
            return
        self._posted.pop(meta["uid"], None)
        log.info("kubelet: deleted mirror pod %s/%s", meta["namespace"], meta["name"])
