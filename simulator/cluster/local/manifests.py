"""Static-pod manifests exactly as kubeadm v1.35 writes them.

Pod specs follow ``cmd/kubeadm/app/phases/etcd/local.go`` and
``phases/controlplane/{manifests,volumes}.go`` with ``util/staticpod/utils.go``: flags
sorted by name (``ArgumentsToCommand``), volumes sorted by name, control-plane volume
mounts sorted by name, etcd's mounts in kubeadm's order, probes with kubeadm's timings
(named ``probe-port``; startup probe failureThreshold = 4 min / 10 s). The text is serialised like
``sigs.k8s.io/yaml``: keys sorted, sequences not indented under their key, no line
wrapping, ``status: {}``; v1.35 no longer writes ``creationTimestamp: null``.

Reading what a learner left in the directory is :mod:`simulator.cluster.staticpod`'s job.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

import yaml

from simulator.cluster.kubeadm import (
    API_PORT,
    CONTROLLER_MANAGER_PORT,
    DNS_DOMAIN,
    ETCD_CLIENT_PORT,
    ETCD_DATA_DIR,
    ETCD_METRICS_PORT,
    ETCD_PEER_PORT,
    IMAGE_REPOSITORY,
    KUBERNETES_DIR,
    POD_SUBNET,
    SCHEDULER_PORT,
    SERVICE_SUBNET,
)
from simulator.cluster.kubeadm import PKI as PKI_DIR
from simulator.versions import ETCD_VERSION as _ETCD_RELEASE
from simulator.versions import KUBERNETES_VERSION

ETCD_VERSION = _ETCD_RELEASE.lstrip("v")
DEFAULT_ETCD_IMAGE = f"{IMAGE_REPOSITORY}/etcd:{ETCD_VERSION}-0"

HEALTH_CHECK_TIMEOUT_S = 240  # kubeadm's ControlPlaneComponentHealthCheck default (4m)

# kubeadm mounts each of these into apiserver and controller-manager when it exists on
# the host; on a Debian/Ubuntu node (kind's and the exam's) these three exist.
DEBIAN_CA_PATHS = ("/etc/ca-certificates", "/usr/local/share/ca-certificates",
                   "/usr/share/ca-certificates")
FLEXVOLUME_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"


# --------------------------------------------------------------------------- building blocks


def _dump(pod: dict) -> str:
    return yaml.safe_dump(pod, sort_keys=True, default_flow_style=False, width=1 << 30)


def _flags(args: Mapping[str, str], extra: Mapping[str, str] | None = None) -> list[str]:
    merged = dict(args)
    merged.update(extra or {})
    return [f"--{name}={merged[name]}" for name in sorted(merged)]


PROBE_PORT = "probe-port"


def _probe(host: str, path: str, scheme: str, *, initial: int, timeout: int, failures: int,
           period: int) -> dict:
    get: dict = {"path": path, "port": PROBE_PORT, "scheme": scheme}
    if host:
        get["host"] = host
    probe: dict = {"failureThreshold": failures, "httpGet": get, "periodSeconds": period,
                   "timeoutSeconds": timeout}
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def _probes(host: str, port: int, scheme: str, *, live: str, ready: str | None,
            startup: str) -> dict:
    """The container fields kubeadm sets for health checking: a named ``probe-port``
    and liveness, (readiness,) startup probes against it."""
    fields = {
        "livenessProbe": _probe(host, live, scheme, initial=10, timeout=15, failures=8,
                                period=10),
        "ports": [{"containerPort": port, "name": PROBE_PORT, "protocol": "TCP"}],
        "startupProbe": _probe(host, startup, scheme, initial=10, timeout=15,
                               failures=math.ceil(HEALTH_CHECK_TIMEOUT_S / 10), period=10),
    }
    if ready:
        fields["readinessProbe"] = _probe(host, ready, scheme, initial=0, timeout=15,
                                          failures=3, period=1)
    return fields


@dataclasses.dataclass(frozen=True)
class _Mount:
    name: str
    host_path: str
    mount_path: str
    read_only: bool
    type: str

    def volume(self) -> dict:
        return {"hostPath": {"path": self.host_path, "type": self.type}, "name": self.name}

    def volume_mount(self) -> dict:
        mount: dict = {"mountPath": self.mount_path, "name": self.name}
        if self.read_only:
            mount["readOnly"] = True
        return mount


def _pod(name: str, container: dict, mounts: Sequence[_Mount], *, sort_mounts: bool,
         annotations: Mapping[str, str] | None = None) -> dict:
    ordered = sorted(mounts, key=lambda m: m.name) if sort_mounts else list(mounts)
    container = dict(container, name=name,
                     volumeMounts=[m.volume_mount() for m in ordered])
    metadata: dict = {"labels": {"component": name, "tier": "control-plane"},
                      "name": name, "namespace": "kube-system"}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [m.volume() for m in sorted(mounts, key=lambda m: m.name)],
        },
        "status": {},
    }


def _image(component: str, version: str) -> str:
    return f"{IMAGE_REPOSITORY}/{component}:{version}"


def _version_tuple(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", tag)
    if not match:
        return (3, 6, 0)
    return tuple(int(part or 0) for part in match.groups())


def etcd_image(version: str) -> str:
    """kubeadm's image name for an etcd version (``3.5.1`` -> ``registry.k8s.io/etcd:3.5.1-0``)."""
    return f"{IMAGE_REPOSITORY}/etcd:{version.lstrip('v')}-0"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback(node_ip: str) -> str:
    return "::1" if ":" in node_ip else "127.0.0.1"


# --------------------------------------------------------------------------- etcd


def _peer_url(member: str) -> str:
    return member if "://" in member else f"https://{_host_port(member, ETCD_PEER_PORT)}"


def etcd_command(
    node_name: str,
    node_ip: str,
    *,
    initial_cluster: Mapping[str, str] | None = None,
    existing: bool = False,
    image: str = DEFAULT_ETCD_IMAGE,
    data_dir: str = ETCD_DATA_DIR,
    pki_dir: str = PKI_DIR,
    extra_args: Mapping[str, str] | None = None,
) -> list[str]:
    """etcd's command line as kubeadm's ``getEtcdCommand`` builds it.

    ``initial_cluster`` maps member names to peer IPs or peer URLs. etcd before 3.6
    gets the ``--experimental-*`` spellings of the corrupt check and progress interval,
    as kubeadm v1.35 does for such an image.
    """
    loopback = _loopback(node_ip)
    client = f"https://{_host_port(node_ip, ETCD_CLIENT_PORT)}"
    peer = f"https://{_host_port(node_ip, ETCD_PEER_PORT)}"
    args = {
        "name": node_name,
        "listen-client-urls": f"https://{_host_port(loopback, ETCD_CLIENT_PORT)},{client}",
        "advertise-client-urls": client,
        "listen-peer-urls": peer,
        "initial-advertise-peer-urls": peer,
        "data-dir": data_dir,
        "cert-file": f"{pki_dir}/etcd/server.crt",
        "key-file": f"{pki_dir}/etcd/server.key",
        "trusted-ca-file": f"{pki_dir}/etcd/ca.crt",
        "client-cert-auth": "true",
        "peer-cert-file": f"{pki_dir}/etcd/peer.crt",
        "peer-key-file": f"{pki_dir}/etcd/peer.key",
        "peer-trusted-ca-file": f"{pki_dir}/etcd/ca.crt",
        "peer-client-cert-auth": "true",
        "snapshot-count": "10000",
        "listen-metrics-urls": f"http://{_host_port(loopback, ETCD_METRICS_PORT)}",
    }
    if _version_tuple(image) >= (3, 6):
        args["feature-gates"] = "InitialCorruptCheck=true"
        args["watch-progress-notify-interval"] = "5s"
    else:
        args["experimental-initial-corrupt-check"] = "true"
        args["experimental-watch-progress-notify-interval"] = "5s"
    if initial_cluster:
        args["initial-cluster"] = ",".join(
            f"{name}={_peer_url(member)}" for name, member in initial_cluster.items()
        )
    else:
        args["initial-cluster"] = f"{node_name}={peer}"
    if existing:
        args["initial-cluster-state"] = "existing"
    return ["etcd", *_flags(args, extra_args)]


def etcd_manifest(
    node_name: str,
    node_ip: str,
    *,
    initial_cluster: Mapping[str, str] | None = None,
    existing: bool = False,
    image: str = DEFAULT_ETCD_IMAGE,
    data_dir: str = ETCD_DATA_DIR,
    pki_dir: str = PKI_DIR,
    extra_args: Mapping[str, str] | None = None,
) -> str:
    """``/etc/kubernetes/manifests/etcd.yaml`` as ``kubeadm init`` (or ``join``) writes it.

    For a member joining a stacked cluster pass every member (itself included) in
    ``initial_cluster`` and ``existing=True``, as ``kubeadm join --control-plane`` does.
    """
    command = etcd_command(node_name, node_ip, initial_cluster=initial_cluster,
                           existing=existing, image=image, data_dir=data_dir,
                           pki_dir=pki_dir, extra_args=extra_args)
    loopback = _loopback(node_ip)
    container = {
        "command": command,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
        **_probes(loopback, ETCD_METRICS_PORT, "HTTP", live="/livez", ready="/readyz",
                  startup="/readyz"),
    }
    mounts = [
        _Mount("etcd-data", data_dir, data_dir, False, "DirectoryOrCreate"),
        _Mount("etcd-certs", f"{pki_dir}/etcd", f"{pki_dir}/etcd", False, "DirectoryOrCreate"),
    ]
    annotations = {"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                   f"https://{_host_port(node_ip, ETCD_CLIENT_PORT)}"}
    return _dump(_pod("etcd", container, mounts, sort_mounts=False, annotations=annotations))


# --------------------------------------------------------------------------- control plane


def _ca_mounts(ca_paths: Sequence[str]) -> list[_Mount]:
    mounts = [_Mount("ca-certs", "/etc/ssl/certs", "/etc/ssl/certs", True, "DirectoryOrCreate")]
    for path in ca_paths:
        mounts.append(_Mount(path.replace("/", "-")[1:], path, path, True, "DirectoryOrCreate"))
    return mounts


def kube_apiserver_command(
    node_ip: str,
    *,
    etcd_servers: str = "https://127.0.0.1:2379",
    service_subnet: str = SERVICE_SUBNET,
    dns_domain: str = DNS_DOMAIN,
    port: int = API_PORT,
    pki_dir: str = PKI_DIR,
    extra_args: Mapping[str, str] | None = None,
) -> list[str]:
    """kube-apiserver's command line as kubeadm's ``getAPIServerCommand`` builds it.

    No ``--storage-media-type``: as with kubeadm, objects are stored in etcd as protobuf
    (read by :mod:`checkers.kubeproto`).
    """
    args = {
        "advertise-address": node_ip,
        "allow-privileged": "true",
        "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{pki_dir}/ca.crt",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "etcd-cafile": f"{pki_dir}/etcd/ca.crt",
        "etcd-certfile": f"{pki_dir}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{pki_dir}/apiserver-etcd-client.key",
        "etcd-servers": etcd_servers,
        "kubelet-client-certificate": f"{pki_dir}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki_dir}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{pki_dir}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki_dir}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki_dir}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": str(port),
        "service-account-issuer": f"https://kubernetes.default.svc.{dns_domain}",
        "service-account-key-file": f"{pki_dir}/sa.pub",
        "service-account-signing-key-file": f"{pki_dir}/sa.key",
        "service-cluster-ip-range": service_subnet,
        "tls-cert-file": f"{pki_dir}/apiserver.crt",
        "tls-private-key-file": f"{pki_dir}/apiserver.key",
    }
    extra = dict(extra_args or {})
    return ["kube-apiserver", *_flags(args, extra)]


def kube_apiserver_manifest(
    node_name: str,
    node_ip: str,
    etcd_servers: str = "https://127.0.0.1:2379",
    *,
    kubernetes_version: str = KUBERNETES_VERSION,
    service_subnet: str = SERVICE_SUBNET,
    dns_domain: str = DNS_DOMAIN,
    port: int = API_PORT,
    pki_dir: str = PKI_DIR,
    ca_paths: Sequence[str] = DEBIAN_CA_PATHS,
    extra_args: Mapping[str, str] | None = None,
) -> str:
    """``/etc/kubernetes/manifests/kube-apiserver.yaml`` as kubeadm v1.35 writes it.

    ``node_name`` is accepted for symmetry with the other manifests (kubeadm's apiserver
    manifest does not mention it).
    """
    del node_name
    command = kube_apiserver_command(
        node_ip, etcd_servers=etcd_servers, service_subnet=service_subnet,
        dns_domain=dns_domain, port=port, pki_dir=pki_dir, extra_args=extra_args,
    )
    container = {
        "command": command,
        "image": _image("kube-apiserver", kubernetes_version),
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "250m"}},
        **_probes(node_ip, port, "HTTPS", live="/livez", ready="/readyz", startup="/livez"),
    }
    mounts = _ca_mounts(ca_paths) + [
        _Mount("k8s-certs", pki_dir, pki_dir, True, "DirectoryOrCreate"),
    ]
    annotations = {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                   _host_port(node_ip, port)}
    return _dump(_pod("kube-apiserver", container, mounts, sort_mounts=True,
                      annotations=annotations))


def kube_controller_manager_command(
    *,
    pki_dir: str = PKI_DIR,
    cluster_name: str = "kubernetes",
    pod_subnet: str | None = POD_SUBNET,
    service_subnet: str = SERVICE_SUBNET,
    extra_args: Mapping[str, str] | None = None,
) -> list[str]:
    """kube-controller-manager's command line as kubeadm's ``getControllerManagerCommand``."""
    kubeconfig = f"{KUBERNETES_DIR}/controller-manager.conf"
    args = {
        "bind-address": "127.0.0.1",
        "leader-elect": "true",
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "client-ca-file": f"{pki_dir}/ca.crt",
        "requestheader-client-ca-file": f"{pki_dir}/front-proxy-ca.crt",
        "root-ca-file": f"{pki_dir}/ca.crt",
        "service-account-private-key-file": f"{pki_dir}/sa.key",
        "cluster-signing-cert-file": f"{pki_dir}/ca.crt",
        "cluster-signing-key-file": f"{pki_dir}/ca.key",
        "use-service-account-credentials": "true",
        "controllers": "*,bootstrapsigner,tokencleaner",
    }
    if pod_subnet:
        args["allocate-node-cidrs"] = "true"
        args["cluster-cidr"] = pod_subnet
        args["service-cluster-ip-range"] = service_subnet
    if cluster_name:
        args["cluster-name"] = cluster_name
    return ["kube-controller-manager", *_flags(args, extra_args)]


def kube_controller_manager_manifest(
    node_name: str = "",
    node_ip: str = "",
    *,
    kubernetes_version: str = KUBERNETES_VERSION,
    pki_dir: str = PKI_DIR,
    cluster_name: str = "kubernetes",
    pod_subnet: str | None = POD_SUBNET,
    service_subnet: str = SERVICE_SUBNET,
    ca_paths: Sequence[str] = DEBIAN_CA_PATHS,
    extra_args: Mapping[str, str] | None = None,
) -> str:
    """``/etc/kubernetes/manifests/kube-controller-manager.yaml`` as kubeadm v1.35 writes it."""
    del node_name, node_ip
    command = kube_controller_manager_command(
        pki_dir=pki_dir, cluster_name=cluster_name, pod_subnet=pod_subnet,
        service_subnet=service_subnet, extra_args=extra_args,
    )
    container = {
        "command": command,
        "image": _image("kube-controller-manager", kubernetes_version),
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "200m"}},
        **_probes("127.0.0.1", CONTROLLER_MANAGER_PORT, "HTTPS", live="/healthz", ready=None,
                  startup="/healthz"),
    }
    kubeconfig = f"{KUBERNETES_DIR}/controller-manager.conf"
    mounts = _ca_mounts(ca_paths) + [
        _Mount("flexvolume-dir", FLEXVOLUME_DIR, FLEXVOLUME_DIR, False, "DirectoryOrCreate"),
        _Mount("k8s-certs", pki_dir, pki_dir, True, "DirectoryOrCreate"),
        _Mount("kubeconfig", kubeconfig, kubeconfig, True, "FileOrCreate"),
    ]
    return _dump(_pod("kube-controller-manager", container, mounts, sort_mounts=True))


def kube_scheduler_command(*, extra_args: Mapping[str, str] | None = None) -> list[str]:
    """kube-scheduler's command line as kubeadm's ``getSchedulerCommand`` builds it."""
    kubeconfig = f"{KUBERNETES_DIR}/scheduler.conf"
    args = {
        "bind-address": "127.0.0.1",
        "leader-elect": "true",
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
    }
    return ["kube-scheduler", *_flags(args, extra_args)]


def kube_scheduler_manifest(
    node_name: str = "",
    node_ip: str = "",
    *,
    kubernetes_version: str = KUBERNETES_VERSION,
    extra_args: Mapping[str, str] | None = None,
) -> str:
    """``/etc/kubernetes/manifests/kube-scheduler.yaml`` as kubeadm v1.35 writes it."""
    del node_name, node_ip
    container = {
        "command": kube_scheduler_command(extra_args=extra_args),
        "image": _image("kube-scheduler", kubernetes_version),
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "100m"}},
        **_probes("127.0.0.1", SCHEDULER_PORT, "HTTPS", live="/livez", ready="/readyz",
                  startup="/livez"),
    }
    kubeconfig = f"{KUBERNETES_DIR}/scheduler.conf"
    mounts = [_Mount("kubeconfig", kubeconfig, kubeconfig, True, "FileOrCreate")]
    return _dump(_pod("kube-scheduler", container, mounts, sort_mounts=True))
