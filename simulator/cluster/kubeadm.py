"""Facts of a kubeadm control-plane node shared by checkers, faults and drivers."""

from __future__ import annotations

from simulator.cluster.node import Completed, Node

MANIFESTS = "/etc/kubernetes/manifests"
PKI = "/etc/kubernetes/pki"
ETCD_MANIFEST = f"{MANIFESTS}/etcd.yaml"
APISERVER_MANIFEST = f"{MANIFESTS}/kube-apiserver.yaml"
ETCD_DATA_DIR = "/var/lib/etcd"
ETCD_ENDPOINT = "https://127.0.0.1:2379"
ETCD_CA = f"{PKI}/etcd/ca.crt"
ETCD_SERVER_CERT = f"{PKI}/etcd/server.crt"
ETCD_SERVER_KEY = f"{PKI}/etcd/server.key"
ADMIN_CONF = "/etc/kubernetes/admin.conf"

ETCDCTL_TLS = (
    f"--cacert={ETCD_CA}",
    f"--cert={ETCD_SERVER_CERT}",
    f"--key={ETCD_SERVER_KEY}",
)


def etcdctl(node: Node, *args: str, endpoint: str = ETCD_ENDPOINT, timeout: float = 30,
            input: bytes | None = None) -> Completed:
    """Run ``etcdctl`` on ``node`` against ``endpoint`` with the kubeadm server certificate."""
    argv = ["etcdctl", f"--endpoints={endpoint}", *ETCDCTL_TLS, "--command-timeout=10s", *args]
    return node.run(argv, env={"ETCDCTL_API": "3"}, timeout=timeout, input=input)
