"""What ``kubeadm init`` does through the API once the control plane answers.

The static pods, PKI and kubeconfigs are written as files beforehand; this module runs the
remaining phases with the real ``kubeadm`` inside the node, so the objects are exactly
kubeadm's: the ``kubeadm:cluster-admins`` ClusterRoleBinding (created through
``super-admin.conf`` when ``admin.conf`` is not yet allowed), the ``kubeadm-config`` and
``kubelet-config`` ConfigMaps with their RBAC rules (``upload-config all``), and the
control-plane label and taint on the Node (``mark-control-plane``, which waits for the
kubelet to register it).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from simulator.cluster import kubeadm
from simulator.versions import KUBERNETES_VERSION

CONFIG_PATH = "/run/cka-sim/kubeadm-init.yaml"
CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"

WAIT_READYZ = """
end=$((SECONDS + WAIT))
until kubectl get --raw /readyz >/dev/null 2>&1; do
    if (( SECONDS >= end )); then kubectl get --raw /readyz; exit 1; fi
    sleep 0.1
done
"""

UPLOAD = """
set -e
if [ -n "$UPLOAD" ]; then
    kubeadm init phase upload-config all --config "$CONFIG" >/dev/null
fi
kubectl -n kube-system get configmap kubelet-config -o jsonpath='{.data.kubelet}' \
    > /var/lib/kubelet/config.yaml
addons=
if [ -n "$UPLOAD" ]; then  # beside mark-control-plane, which waits for the Node
    kubeadm init phase addon all --config "$CONFIG" >/dev/null & addons=$!
fi
kubeadm init phase mark-control-plane --config "$CONFIG" >/dev/null
if [ -n "$addons" ]; then wait "$addons"; fi
rm -f "$CONFIG"
"""
"""Run on each control plane with its own configuration at ``$CONFIG``: the first uploads
the configuration (``UPLOAD=1``), each writes the kubelet's ``config.yaml`` from it and
marks its Node as ``kubeadm init`` and ``kubeadm join --control-plane`` do; the first then
creates the add-ons (the CoreDNS Deployment and Service, the kube-proxy DaemonSet, their
ConfigMaps and RBAC) as ``kubeadm init phase addon all`` does."""

WAIT_LEADER = """
end=$((SECONDS + WAIT))
until kubectl -n kube-system get lease "$LEASE" >/dev/null 2>&1; do
    if (( SECONDS >= end )); then kubectl -n kube-system get lease "$LEASE"; exit 1; fi
    sleep 0.2
done
"""

DEFAULT_SERVICE_ACCOUNTS = """
for ns in default kube-system; do
    kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 ||
        kubectl -n "$ns" create serviceaccount default --field-manager=kube-controller-manager \
            >/dev/null 2>&1 || kubectl -n "$ns" get serviceaccount default >/dev/null
done
"""
"""The ``default`` service accounts the controller manager's service account controller
makes: it starts some 5 s after the manager leads, and until then every pod is refused
(``serviceaccount "default" not found``). Made here as that controller would make them
(it adopts an existing one), so a task's first ``kubectl run`` works."""

INSTANCE_CONFIG = f"""apiVersion: kubelet.config.k8s.io/v1beta1
containerRuntimeEndpoint: {CRI_SOCKET}
kind: KubeletConfiguration
"""


def write_kubelet_files(rootfs: Path) -> None:
    """``/var/lib/kubelet/instance-config.yaml`` as kubeadm writes it for the kubelet (where
    ``kubeadm`` later looks for the node's CRI socket)."""
    directory = rootfs / "var/lib/kubelet"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "instance-config.yaml").write_text(INSTANCE_CONFIG)


def init_config(node_name: str, node_ip: str, *,
                kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """The kubeadm configuration (v1beta4) the node was set up with: the InitConfiguration
    of this node and the ClusterConfiguration uploaded as ``kube-system/kubeadm-config``."""
    init = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": node_ip, "bindPort": kubeadm.API_PORT},
        "nodeRegistration": {
            "criSocket": CRI_SOCKET,
            "imagePullPolicy": "IfNotPresent",
            "name": node_name,
            "taints": [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}],
        },
    }
    cluster = {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": kubernetes_version,
        "clusterName": kubeadm.CLUSTER_NAME,
        "certificatesDir": kubeadm.PKI,
        "imageRepository": kubeadm.IMAGE_REPOSITORY,
        "apiServer": {},
        "etcd": {"local": {"dataDir": kubeadm.ETCD_DATA_DIR}},
        "networking": {"dnsDomain": kubeadm.DNS_DOMAIN,
                       "podSubnet": kubeadm.POD_SUBNET,
                       "serviceSubnet": kubeadm.SERVICE_SUBNET},
    }
    return yaml.safe_dump_all([init, cluster, KUBE_PROXY], sort_keys=False)


KUBE_PROXY = {
    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
    "kind": "KubeProxyConfiguration",
    "mode": "iptables",
    "conntrack": {"maxPerCore": 0},
    "iptables": {"minSyncPeriod": "1s"},
}
"""kube-proxy's settings in ``kube-system/kube-proxy``, as kind sets them: a node's network
namespace cannot change the machine-wide conntrack table size, so kube-proxy must leave it."""
