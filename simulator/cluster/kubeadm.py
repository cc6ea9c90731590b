"""Facts of a kubeadm node: its paths, ports, subnets and names, as kubeadm v1.35 sets them.

The one place these are written down. The manifest writers, the PKI, both drivers,
checkers and faults import them from here. Values are kubeadm's defaults
(``cmd/kubeadm/app/constants/constants.go``, ``apis/kubeadm/v1beta4/defaults.go``).
"""

from __future__ import annotations

import ipaddress

from simulator.cluster.node import Completed, Node

# -- paths on the node
KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS = f"{KUBERNETES_DIR}/manifests"
PKI = f"{KUBERNETES_DIR}/pki"
ETCD_PKI = f"{PKI}/etcd"
ETCD_MANIFEST = f"{MANIFESTS}/etcd.yaml"
APISERVER_MANIFEST = f"{MANIFESTS}/kube-apiserver.yaml"
ADMIN_CONF = f"{KUBERNETES_DIR}/admin.conf"
SUPER_ADMIN_CONF = f"{KUBERNETES_DIR}/super-admin.conf"
CONTROLLER_MANAGER_CONF = f"{KUBERNETES_DIR}/controller-manager.conf"
SCHEDULER_CONF = f"{KUBERNETES_DIR}/scheduler.conf"
KUBELET_CONF = f"{KUBERNETES_DIR}/kubelet.conf"
ETCD_DATA_DIR = "/var/lib/etcd"

# -- ports
API_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_METRICS_PORT = 2381
KUBELET_PORT = 10250
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259

# -- cluster-wide settings
CLUSTER_NAME = "kubernetes"
SERVICE_SUBNET = "10.96.0.0/12"
POD_SUBNET = "10.244.0.0/16"
"""``kubeadm init --pod-network-cidr``: the controller-manager gives each node a /24 of it (kind's default too)."""
DNS_DOMAIN = "cluster.local"
IMAGE_REPOSITORY = "registry.k8s.io"

# -- etcd as kubeadm's own calls reach it
ETCD_ENDPOINT = f"https://127.0.0.1:{ETCD_CLIENT_PORT}"
ETCD_CA = f"{ETCD_PKI}/ca.crt"
ETCD_SERVER_CERT = f"{ETCD_PKI}/server.crt"
ETCD_SERVER_KEY = f"{ETCD_PKI}/server.key"

ETCDCTL_TLS = (
    f"--cacert={ETCD_CA}",
    f"--cert={ETCD_SERVER_CERT}",
    f"--key={ETCD_SERVER_KEY}",
)


def service_ip(service_subnet: str = SERVICE_SUBNET) -> str:
    """The first address of the service range: the ``kubernetes`` Service's ClusterIP."""
    net = ipaddress.ip_network(service_subnet, strict=False)
    return str(net.network_address + 1)


def etcdctl(node: Node, *args: str, endpoint: str = ETCD_ENDPOINT, timeout: float = 30,
            input: bytes | None = None) -> Completed:
    """Run ``etcdctl`` on ``node`` against ``endpoint`` with the kubeadm server certificate."""
    argv = ["etcdctl", f"--endpoints={endpoint}", *ETCDCTL_TLS, "--command-timeout=10s", *args]
    return node.run(argv, env={"ETCDCTL_API": "3"}, timeout=timeout, input=input)
