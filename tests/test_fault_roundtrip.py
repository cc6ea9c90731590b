"""Fault then checker round trips on real embedded nodes: every built-in fault puts a node
into a state that the checker a task about it would use reports as failed (or, for the
faults that remove something, as gone), and the checker passed before the fault.

etcd data faults each get a fresh etcd-only cluster; the others share one control-plane
cluster and undo what they did.
"""

from __future__ import annotations

import json
import time

import pytest
from clusterkit import (
    check,
    fault,
    missing_kubernetes_binaries,
    needs_kubernetes,
    wait_until,
)
from conftest import needs_namespaces

from simulator import registry
from simulator.cluster import kubeadm
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec
from simulator.errors import CheckError, SimError

MANIFESTS = "/etc/kubernetes/manifests"
PKI = "/etc/kubernetes/pki"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")

# Every built-in fault and the test that proves a checker sees it.
ROUNDTRIPS = {
    "etcd.put": "test_etcd_put_and_delete_show_in_etcd_key",  # and ..._an_object_the_api_server_reads
    "etcd.delete": "test_etcd_put_and_delete_show_in_etcd_key",
    "etcd.stop": "test_etcd_stop_fails_etcd_healthy_and_kube_ready",
    "etcd.corrupt_db": "test_corrupt_db_crash_loops_etcd",
    "etcd.corrupt_wal": "test_corrupt_wal_crash_loops_etcd",
    "etcd.wipe_data": "test_wipe_data_loses_every_key",
    "manifest.set": "test_apiserver_on_the_peer_port_is_not_ready",
    "manifest.move_out": "test_moved_out_apiserver_is_not_ready",
    "certs.expire": "test_expired_etcd_server_cert_and_the_renewal_that_fixes_it",
    "certs.wrong_ca": "test_client_cert_from_a_foreign_ca",
    "certs.renew": "test_renewed_copy_with_its_own_validity",
    "kube.apply": "test_kube_apply_then_delete_a_namespace",
    "kube.delete": "test_kube_apply_then_delete_a_namespace",
    "files.chmod": "test_files_chmod_and_remove",
    "files.chown": "test_files_chown",
    "files.remove": "test_files_chmod_and_remove",
    "files.copy": "test_files_copy_brings_a_snapshot_from_another_node",
}


pytestmark = [pytest.mark.slow, needs_namespaces]


def test_every_builtin_fault_has_a_round_trip():
    assert set(registry.faults()) == set(ROUNDTRIPS)
    assert all(name in globals() for name in ROUNDTRIPS.values())


# ---------------------------------------------------------------- etcd data faults


@pytest.fixture
def etcd_ctx(request):
    driver = LocalDriver()
    made = driver.create(ClusterSpec(f"rt{abs(hash(request.node.name)) % 10**6}"), lambda step: None)
    ctx = registry.Context(made)
    yield ctx
    driver.delete(made)


def restarts(ctx) -> int:
    """How many etcd containers the node's kubelet has started (crictl ps -a)."""
    done = ctx.run(["crictl", "ps", "-a", "--name", "etcd", "-q"]).check()
    return len(done.out.split())


def test_etcd_put_and_delete_show_in_etcd_key(etcd_ctx):
    ctx = etcd_ctx
    assert check(ctx, "etcd.key", key="/registry/namespaces/billing", present=False).passed
    fault(ctx, "etcd.put", key="/registry/namespaces/billing", value='{"kind":"Namespace"}')
    assert check(ctx, "etcd.key", key="/registry/namespaces/billing", value='{"kind":"Namespace"}').passed
    fault(ctx, "etcd.delete", key="/registry/namespaces/", prefix=True)
    result = check(ctx, "etcd.key", key="/registry/namespaces/billing")
    assert not result.passed and result.detail == "/registry/namespaces/billing is not in etcd"


def test_corrupt_db_crash_loops_etcd(etcd_ctx):
    ctx = etcd_ctx
    fault(ctx, "etcd.put", key="/k", value="v")
    assert check(ctx, "etcd.healthy").passed
    fault(ctx, "etcd.corrupt_db")
    wait_until("etcd is restarted again and again", lambda: restarts(ctx) >= 3, timeout=30)
    result = check(ctx, "etcd.healthy")
    assert not result.passed and "is not healthy" in result.detail
    assert not check(ctx, "etcd.key", key="/k").passed


def test_corrupt_wal_crash_loops_etcd(etcd_ctx):
    ctx = etcd_ctx
    fault(ctx, "etcd.put", key="/k", value="v")
    fault(ctx, "etcd.corrupt_wal")
    wait_until("etcd is restarted again and again", lambda: restarts(ctx) >= 3, timeout=30)
    assert not check(ctx, "etcd.healthy").passed
    # every attempt, the last one too, fails on the checksum, as on a damaged disk block
    newest = ctx.run(["crictl", "ps", "-a", "--name", "etcd", "-q"]).check().out.split()[0]
    logs = ctx.run(["crictl", "logs", newest]).check()
    assert "walpb: crc mismatch" in logs.out + logs.err
    # etcd repairs only a torn tail: it set no segment aside as .broken
    segments = ctx.run(["ls", f"{kubeadm.ETCD_DATA_DIR}/member/wal"]).check().out.split()
    assert segments and not [name for name in segments if name.endswith(".broken")]


def test_wipe_data_loses_every_key(etcd_ctx):
    ctx = etcd_ctx
    fault(ctx, "etcd.put", key="/registry/configmaps/default/app", value="x")
    fault(ctx, "etcd.wipe_data")
    wait_until("etcd answers again", lambda: check(ctx, "etcd.healthy").passed, timeout=30)
    result = check(ctx, "etcd.key", key="/registry/configmaps/default/app")
    assert not result.passed and result.detail == "/registry/configmaps/default/app is not in etcd"


def test_wrong_data_dir_hostpath_is_seen_by_etcd_data_dir(etcd_ctx):
    ctx = etcd_ctx
    assert check(ctx, "etcd.data_dir", expected="/var/lib/etcd").passed
    fault(ctx, "manifest.set", component="etcd", volume="etcd-data", host_path="/var/lib/etcd-wrong")
    # judged on the running container: it fails once the kubelet has restarted etcd there
    wait_until("etcd runs on the wrong directory",
               lambda: "serves its data from /var/lib/etcd-wrong" in check(ctx, "etcd.data_dir",
                                                                          expected="/var/lib/etcd").detail,
               timeout=30)
    assert not check(ctx, "etcd.data_dir", expected="/var/lib/etcd").passed


def etcd_answers(ctx) -> bool:
    return check(ctx, "etcd.healthy").passed


def test_data_dir_follows_the_manifest_the_kubelet_runs_not_etcd_yaml(etcd_ctx):
    """A stray copy whose name sorts first is the pod that runs: grading follows it."""
    ctx = etcd_ctx
    node = ctx.node
    text = node.read_file(f"{MANIFESTS}/etcd.yaml").decode()
    node.run(["mkdir", "-p", "/var/lib/etcd-stray/member"]).check()
    node.write_file(f"{MANIFESTS}/00-etcd.yaml",
                    text.replace("path: /var/lib/etcd\n", "path: /var/lib/etcd-stray\n").encode(), 0o600)
    wait_until("etcd runs from the stray manifest",
               lambda: "/var/lib/etcd-stray" in check(ctx, "etcd.data_dir", expected="/var/lib/etcd").detail,
               timeout=30)
    stray = check(ctx, "etcd.manifest", field="spec.volumes[name=etcd-data].hostPath.path",
                  equals="/var/lib/etcd")
    assert not stray.passed and "00-etcd.yaml" in stray.detail


def _restore_there(ctx, snapshot: str) -> None:
    """Put etcd back on /var/lib/etcd, restore ``snapshot`` into /var/lib/etcd-from-backup
    and point etcd's hostPath there."""
    fault(ctx, "manifest.set", component="etcd", volume="etcd-data", host_path="/var/lib/etcd")
    wait_until("etcd is back on /var/lib/etcd",
               lambda: check(ctx, "etcd.data_dir", expected="/var/lib/etcd").passed, timeout=30)
    ctx.run(["rm", "-rf", "/var/lib/etcd-from-backup"]).check()
    ctx.run(["etcdutl", "snapshot", "restore", snapshot, "--data-dir", "/var/lib/etcd-from-backup"]).check()
    fault(ctx, "manifest.set", component="etcd", volume="etcd-data", host_path="/var/lib/etcd-from-backup")


def test_an_empty_member_directory_is_no_restore(etcd_ctx):
    """The fake restore: mkdir DIR/member and point the hostPath there. etcd starts empty
    on it, below the snapshot's revision, so the restore check fails and says why; it
    still fails once writes (an API server's, in a minute or two) have carried that empty
    etcd past the snapshot's revision, and on an older backup restored there."""
    ctx = etcd_ctx
    for i in range(5):
        fault(ctx, "etcd.put", key=f"/registry/configmaps/default/c{i}", value="x")
    ctx.run(["mkdir", "-p", "/opt/backup"]).check()
    kubeadm.etcdctl(ctx.node, "snapshot", "save", "/opt/backup/older.db").check()
    for i in range(5, 8):
        fault(ctx, "etcd.put", key=f"/registry/configmaps/default/c{i}", value="x")
    kubeadm.etcdctl(ctx.node, "snapshot", "save", "/opt/backup/etcd-snapshot.db").check()
    saved = int(json.loads(kubeadm.etcdctl(ctx.node, "endpoint", "status", "-w", "json").out)[0]
                ["Status"]["header"]["revision"])
    ctx.run(["mkdir", "-p", "/var/lib/etcd-from-backup/member"]).check()
    fault(ctx, "manifest.set", component="etcd", volume="etcd-data", host_path="/var/lib/etcd-from-backup")
    wait_until("etcd answers on the empty directory",
               lambda: "serves its data from /var/lib/etcd-from-backup" in check(
                   ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup").detail
               or "below the snapshot's" in check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                                                  snapshot="/opt/backup/etcd-snapshot.db").detail,
               timeout=30)
    fake = check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                 snapshot="/opt/backup/etcd-snapshot.db")
    assert not fake.passed and "below the snapshot's" in fake.detail
    # writes carry the empty etcd past the snapshot's revision: still no restore
    climb = ('for i in $(seq $N); do etcdctl "$@" put /registry/leases/kube-node-lease/n$i x >/dev/null '
             '|| exit 1; done')
    tls = [f"--endpoints={kubeadm.ETCD_ENDPOINT}", *kubeadm.ETCDCTL_TLS]
    ctx.run(["bash", "-c", climb, "climb", *tls], env={"N": str(saved + 2)}, timeout=120).check()
    climbed = check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                    snapshot="/opt/backup/etcd-snapshot.db")
    assert not climbed.passed and "not a restore of /opt/backup/etcd-snapshot.db" in climbed.detail
    # an older backup restored there, and written past the snapshot's revision: no restore of it
    _restore_there(ctx, "/opt/backup/older.db")
    wait_until("etcd serves the older backup",
               lambda: "serves its data from /var/lib/etcd-from-backup" in check(
                   ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup").detail, timeout=30)
    wait_until("etcd answers", lambda: etcd_answers(ctx), timeout=30)
    # one key written again and again, as an API server renews its leases: every key etcd
    # wrote at or below the snapshot's revision is then one the older backup shares with it
    rewrite = ('for i in $(seq $N); do etcdctl "$@" put /registry/leases/kube-node-lease/n1 x >/dev/null '
               '|| exit 1; done')
    ctx.run(["bash", "-c", rewrite, "rewrite", *tls], env={"N": "6"}, timeout=120).check()
    older = check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                  snapshot="/opt/backup/etcd-snapshot.db")
    assert not older.passed and "not a restore of /opt/backup/etcd-snapshot.db" in older.detail
    assert "lacks 3 key(s) the snapshot holds" in older.detail
    # the same directory restored for real passes, and still does once etcd has compacted
    # the snapshot's revision away
    _restore_there(ctx, "/opt/backup/etcd-snapshot.db")
    wait_until("etcd serves the restored snapshot",
               lambda: check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                             snapshot="/opt/backup/etcd-snapshot.db").passed, timeout=30)
    ctx.run(["bash", "-c", rewrite, "rewrite", *tls], env={"N": "3"}, timeout=120).check()
    now = int(json.loads(kubeadm.etcdctl(ctx.node, "endpoint", "status", "-w", "json").out)[0]
              ["Status"]["header"]["revision"])
    kubeadm.etcdctl(ctx.node, "compact", str(now)).check()
    compacted = check(ctx, "etcd.data_dir", expected="/var/lib/etcd-from-backup",
                      snapshot="/opt/backup/etcd-snapshot.db")
    assert compacted.passed, compacted.detail


def test_wrong_certificate_path_in_the_etcd_manifest(etcd_ctx):
    ctx = etcd_ctx
    wanted = f"{PKI}/etcd/server.crt"
    assert check(ctx, "etcd.manifest", flag="cert-file", equals=wanted).passed
    fault(ctx, "manifest.set", component="etcd", flag="cert-file", value=f"{PKI}/etcd/etcd-server.crt")
    flag = check(ctx, "etcd.manifest", flag="cert-file", equals=wanted)
    assert not flag.passed and "etcd-server.crt" in flag.detail
    wait_until("etcd is restarted again and again", lambda: restarts(ctx) >= 3, timeout=30)
    assert not check(ctx, "etcd.healthy").passed


# ---------------------------------------------------------------- control-plane faults


@pytest.fixture(scope="module")
def cp_cluster():
    if missing_kubernetes_binaries():
        pytest.skip("Kubernetes binaries missing (run .ci/build-binaries.sh)")
    driver = LocalDriver()
    made = driver.create(ClusterSpec("roundtrip", components=COMPONENTS), lambda step: None)
    yield made
    driver.delete(made)


@pytest.fixture
def cp(cp_cluster):
    ctx = registry.Context(cp_cluster)
    wait_until("the API server is ready", lambda: check(ctx, "kube.ready").passed, timeout=90)
    return ctx


@needs_kubernetes
def test_etcd_stop_fails_etcd_healthy_and_kube_ready(cp):
    fault(cp, "etcd.stop")
    try:
        assert not check(cp, "etcd.healthy").passed
        wait_until("the API server reports etcd", lambda: not check(cp, "kube.ready").passed, timeout=30)
    finally:
        cp.run(["mv", "/root/etcd.yaml.stopped", f"{MANIFESTS}/etcd.yaml"]).check()
    wait_until("etcd is back", lambda: check(cp, "etcd.healthy").passed, timeout=30)


@needs_kubernetes
def test_apiserver_on_the_peer_port_is_not_ready(cp):
    manifest = f"{MANIFESTS}/kube-apiserver.yaml"
    original = cp.node.read_file(manifest)
    fault(cp, "manifest.set", component="kube-apiserver", flag="etcd-servers", value="https://127.0.0.1:2380")
    try:
        flag = check(cp, "etcd.manifest", component="kube-apiserver", flag="etcd-servers",
                     equals="https://127.0.0.1:2379")
        assert not flag.passed and "'https://127.0.0.1:2380'" in flag.detail
        wait_until("the API server stops being ready", lambda: not check(cp, "kube.ready").passed, timeout=60)
        time.sleep(3)
        assert not check(cp, "kube.ready").passed
    finally:
        cp.node.write_file(manifest, original, 0o600)


@needs_kubernetes
def test_moved_out_apiserver_is_not_ready(cp):
    fault(cp, "manifest.move_out", component="kube-apiserver", to="/root/manifests-backup",
          leave_copy=".kube-apiserver.yaml.swp")
    try:
        def refused():
            result = check(cp, "kube.ready")
            return result if "refuses connections" in result.detail else None
        assert not wait_until("the API server is gone", refused, timeout=30).passed
        assert not check(cp, "kube.exists", kind="Namespace", name="default").passed
    finally:
        cp.run(["rm", "-f", f"{MANIFESTS}/.kube-apiserver.yaml.swp"]).check()
        cp.run(["mv", "/root/manifests-backup/kube-apiserver.yaml", f"{MANIFESTS}/"]).check()


@needs_kubernetes
def test_expired_etcd_server_cert_and_the_renewal_that_fixes_it(cp):
    server = f"{PKI}/etcd/server.crt"
    original = cp.node.read_file(server)
    fault(cp, "certs.expire", path=server, days_ago=3)
    try:
        result = check(cp, "certs.valid", path=server)
        assert not result.passed and "kubeadm certs renew etcd-server" in result.detail
        assert not check(cp, "etcd.healthy").passed
        assert not check(cp, "certs.expires_after", path=server, days=30).passed
        cp.run(["kubeadm", "certs", "renew", "etcd-server"], timeout=60).check()
        assert check(cp, "certs.valid", path=server).passed
        assert check(cp, "etcd.healthy").passed
    finally:
        if not check(cp, "certs.valid", path=server).passed:
            cp.node.write_file(server, original)


@needs_kubernetes
def test_renewed_copy_with_its_own_validity(cp):
    server = f"{PKI}/etcd/server.crt"
    renewed = f"{PKI}/etcd/server-renewed.crt"
    original = cp.node.read_file(server)
    fault(cp, "certs.renew", path=server, days=45, to=renewed)
    try:
        assert cp.node.read_file(server) == original
        good = check(cp, "certs.valid", path=renewed, key=f"{PKI}/etcd/server.key",
                     names=["controlplane", "localhost", "127.0.0.1"])
        assert good.passed, good.detail
        assert check(cp, "certs.expires_after", path=renewed, days=44).passed
        short = check(cp, "certs.expires_after", path=renewed, days=46)
        assert not short.passed and "expires in 44 days" in short.detail
        with pytest.raises(CheckError):
            fault(cp, "certs.renew", path=server, days=0)
    finally:
        cp.run(["rm", "-f", renewed]).check()


@needs_kubernetes
def test_client_cert_from_a_foreign_ca(cp):
    client = f"{PKI}/apiserver-etcd-client.crt"
    original = cp.node.read_file(client)
    fault(cp, "certs.wrong_ca", path=client)
    try:
        result = check(cp, "certs.valid", path=client)
        assert not result.passed and "not signed by the CA in /etc/kubernetes/pki/etcd/ca.crt" in result.detail
        done = cp.run(["etcdctl", "--endpoints=https://127.0.0.1:2379", f"--cacert={PKI}/etcd/ca.crt",
                       f"--cert={client}", f"--key={PKI}/apiserver-etcd-client.key",
                       "--command-timeout=3s", "endpoint", "health"], timeout=20)
        assert not done.ok
    finally:
        cp.node.write_file(client, original)


@needs_kubernetes
def test_etcd_put_of_an_object_the_api_server_reads(cp):
    """An object written behind the API server's back, in the bytes it would store itself
    (protobuf): kubectl shows it, and the checkers read it from etcd."""
    fault(cp, "etcd.put", key="/registry/configmaps/default/sneaked",
          object={"kind": "ConfigMap", "name": "sneaked", "namespace": "default",
                  "data": {"mode": "quiet"}})
    stored = kubeadm.etcdctl(cp.node, "get", "/registry/configmaps/default/sneaked",
                             "--print-value-only").check()
    assert stored.stdout.startswith(b"k8s\x00")
    assert check(cp, "etcd.key", key="/registry/configmaps/default/sneaked", json_field="data.mode",
                 equals="quiet").passed
    assert check(cp, "kube.field", kind="ConfigMap", name="sneaked", namespace="default",
                 path="data.mode", equals="quiet").passed
    with pytest.raises(SimError, match="ConfigMap has no field 'dat'"):
        fault(cp, "etcd.put", key="/registry/configmaps/default/typo",
              object={"kind": "ConfigMap", "name": "typo", "namespace": "default", "dat": {}})
    fault(cp, "etcd.delete", key="/registry/configmaps/default/sneaked")


@needs_kubernetes
def test_kube_apply_then_delete_a_namespace(cp):
    assert check(cp, "kube.absent", kind="Namespace", name="billing").passed
    fault(cp, "kube.apply", objects=[{"kind": "Namespace", "name": "billing"},
                                     {"kind": "ConfigMap", "name": "rates", "namespace": "billing",
                                      "data": {"vat": "20"}}])
    assert check(cp, "kube.exists", kind="Namespace", name="billing").passed
    assert check(cp, "kube.field", kind="ConfigMap", name="rates", namespace="billing",
                 path="data.vat", equals="20").passed
    fault(cp, "kube.delete", kind="Namespace", name="billing")
    assert check(cp, "kube.absent", kind="Namespace", name="billing").passed
    gone = check(cp, "kube.exists", kind="ConfigMap", name="rates", namespace="billing")
    assert not gone.passed and gone.detail == "ConfigMap billing/rates does not exist"


def test_files_chmod_and_remove(etcd_ctx):
    ctx = etcd_ctx
    key = f"{PKI}/etcd/server.key"
    assert check(ctx, "files.mode", path=key, mode="0600").passed
    fault(ctx, "files.chmod", path=key, mode="0644")
    result = check(ctx, "files.mode", path=key, mode="0600")
    assert not result.passed and "has mode 0644, expected 0600" in result.detail

    fault(ctx, "files.remove", path="/etc/kubernetes/pki/etcd/peer.key")
    gone = check(ctx, "files.exists", path="/etc/kubernetes/pki/etcd/peer.key")
    assert not gone.passed and "does not exist" in gone.detail


def test_files_chown(etcd_ctx):
    ctx = etcd_ctx
    mapped = ctx.run(["cat", "/proc/self/uid_map"]).check().out.split()
    if len(mapped) == 3 and mapped[2] == "1":
        pytest.skip("this node's user namespace maps only root, so no file can belong to "
                    "another user (chown fails with EINVAL)")
    key = f"{PKI}/etcd/server.key"
    owned = 'test "$(stat -c %u:%g "$TARGET")" = 0:0'
    assert check(ctx, "script", run=owned, env={"TARGET": key}).passed
    fault(ctx, "files.chown", path=key, owner="65534:65534")
    assert not check(ctx, "script", run=owned, env={"TARGET": key}).passed


def test_files_copy_brings_a_snapshot_from_another_node():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("rtcopy", workers=1), lambda step: None)
    try:
        first = registry.Context(made)
        worker = first.on("node01")
        path = "/opt/backup/etcd-snapshot.db"
        first.run(["mkdir", "-p", "/opt/backup"]).check()
        kubeadm.etcdctl(first.node, "snapshot", "save", path, timeout=60).check()
        assert not check(worker, "files.exists", path=path).passed
        fault(worker, "files.copy", path=path, from_node="controlplane")
        assert check(worker, "snapshot.valid", path=path).passed
        assert check(worker, "files.mode", path=path, mode="0600").passed
        with pytest.raises(CheckError, match="does not exist on controlplane"):
            fault(worker, "files.copy", path="/opt/backup/none.db", from_node="controlplane")
    finally:
        driver.delete(made)
