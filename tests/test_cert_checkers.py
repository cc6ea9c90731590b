"""certs.* checkers and certificate faults on the kubeadm PKI of a real embedded node.

One etcd-only cluster serves the whole module; every test puts back the files it changed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from clusterkit import check, fault
from conftest import needs_namespaces

from simulator import registry
from simulator.cluster import pki
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec
from simulator.errors import CheckError

pytestmark = [pytest.mark.slow, needs_namespaces]

PKI = "/etc/kubernetes/pki"
SERVER = f"{PKI}/etcd/server.crt"
TOUCHED = [SERVER, f"{PKI}/etcd/server.key", f"{PKI}/apiserver.crt", f"{PKI}/front-proxy-client.crt",
           "/etc/kubernetes/admin.conf"]


@pytest.fixture(scope="module")
def cluster():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("certs"), lambda step: None)
    yield made
    driver.delete(made)


@pytest.fixture
def ctx(cluster):
    context = registry.Context(cluster)
    saved = {path: cluster.node("controlplane").read_file(path) for path in TOUCHED}
    yield context
    for path, data in saved.items():
        cluster.node("controlplane").write_file(path, data, 0o600 if path.endswith((".key", ".conf")) else 0o644)


# ---------------------------------------------------------------- certs.valid passes


@pytest.mark.parametrize("path, names", [
    (SERVER, ["controlplane", "localhost", "127.0.0.1", "172.30.0.10", "::1"]),
    (f"{PKI}/apiserver.crt", ["kubernetes.default.svc.cluster.local", "10.96.0.1", "controlplane"]),
    (f"{PKI}/apiserver-etcd-client.crt", None),
    (f"{PKI}/front-proxy-client.crt", None),
    ("/etc/kubernetes/admin.conf", None),
])
def test_fresh_kubeadm_certificates_are_valid_against_their_own_ca(ctx, path, names):
    result = check(ctx, "certs.valid", path=path, **({"names": names} if names else {}))
    assert result.passed, result.detail
    assert "364 days left" in result.detail and "key matches" in result.detail


def test_default_ca_follows_kubeadm_signers(ctx):
    detail = check(ctx, "certs.valid", path=SERVER).detail
    assert "signed by /etc/kubernetes/pki/etcd/ca.crt" in detail
    detail = check(ctx, "certs.valid", path=f"{PKI}/front-proxy-client.crt").detail
    assert "signed by /etc/kubernetes/pki/front-proxy-ca.crt" in detail


# ---------------------------------------------------------------- certs.valid failures


def test_expired_certificate_says_when_and_how_to_renew(ctx):
    fault(ctx, "certs.expire", path=SERVER, days_ago=3)
    result = check(ctx, "certs.valid", path=SERVER)
    expired_on = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).strftime("%b %d %Y")
    assert not result.passed
    assert f"expired 3 days ago on {expired_on}" in result.detail
    assert "kubeadm certs renew etcd-server" in result.detail
    assert "not signed" not in result.detail and "key" not in result.detail.split("renew")[0]


def test_expired_etcd_server_certificate_breaks_clients_that_verify(ctx):
    assert check(ctx, "etcd.healthy").passed
    fault(ctx, "certs.expire", path=SERVER)
    healthy = check(ctx, "etcd.healthy")
    assert not healthy.passed
    done = ctx.node.run(["etcdctl", "--endpoints=https://127.0.0.1:2379", f"--cacert={PKI}/etcd/ca.crt",
                         f"--cert={PKI}/etcd/healthcheck-client.crt", f"--key={PKI}/etcd/healthcheck-client.key",
                         "--command-timeout=3s", "endpoint", "health"], timeout=20)
    assert not done.ok and "expired" in done.err


def test_expire_keeps_key_subject_names_and_usages(ctx):
    before = pki.describe(ctx.node.read_file(SERVER))
    fault(ctx, "certs.expire", path=SERVER, days_ago=10)
    after = pki.describe(ctx.node.read_file(SERVER))
    for field in ("subject_cn", "dns_names", "ip_addresses", "usages", "issuer_cn"):
        assert after[field] == before[field]
    assert after["expired"] and after["not_after"] - after["not_before"] == dt.timedelta(days=365)
    result = check(ctx, "certs.valid", path=SERVER)
    assert "key matches" not in result.detail and "is not the key" not in result.detail


def test_not_yet_valid_certificate(ctx):
    node = ctx.node
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2, hours=1)
    future = pki.reissue_pem(node.read_file(SERVER), node.read_file(f"{PKI}/etcd/ca.crt"),
                             node.read_file(f"{PKI}/etcd/ca.key"), start, start + dt.timedelta(days=365))
    node.write_file(SERVER, future)
    result = check(ctx, "certs.valid", path=SERVER)
    assert not result.passed and "is not valid yet: its validity starts in 2 days" in result.detail


def test_certificate_from_a_ca_of_the_same_name(ctx):
    fault(ctx, "certs.wrong_ca", path=SERVER)
    assert pki.describe(ctx.node.read_file(SERVER))["issuer_cn"] == "etcd-ca"
    result = check(ctx, "certs.valid", path=SERVER)
    assert not result.passed
    assert "not signed by the CA in /etc/kubernetes/pki/etcd/ca.crt" in result.detail
    assert "another CA of the same name" in result.detail and "expired" not in result.detail
    assert not check(ctx, "etcd.healthy").passed


def test_certificate_from_another_named_ca_and_the_wrong_ca_given(ctx):
    fault(ctx, "certs.wrong_ca", path=f"{PKI}/apiserver.crt", ca_name="rogue-ca")
    result = check(ctx, "certs.valid", path=f"{PKI}/apiserver.crt")
    assert not result.passed and "its issuer is CN=rogue-ca" in result.detail
    wrong = check(ctx, "certs.valid", path=SERVER, ca=f"{PKI}/ca.crt")
    assert not wrong.passed and "(CN=kubernetes); its issuer is CN=etcd-ca" in wrong.detail


def test_missing_sans_are_named_with_what_the_certificate_has(ctx):
    assert check(ctx, "certs.valid", path=SERVER, names="controlplane").passed
    result = check(ctx, "certs.valid", path=SERVER, names=["etcd.example.com", "10.0.0.9", "CONTROLPLANE"])
    assert not result.passed
    assert "its SANs lack etcd.example.com, 10.0.0.9 (it has DNS:controlplane" in result.detail


def test_key_that_does_not_belong_to_the_certificate(ctx):
    node = ctx.node
    explicit = check(ctx, "certs.valid", path=SERVER, key=f"{PKI}/etcd/peer.key")
    assert not explicit.passed and "peer.key is not the key of this certificate" in explicit.detail
    node.write_file(f"{PKI}/etcd/server.key", node.read_file(f"{PKI}/etcd/peer.key"), 0o600)
    sibling = check(ctx, "certs.valid", path=SERVER)
    assert not sibling.passed and "server.key is not the key of this certificate" in sibling.detail
    gone = check(ctx, "certs.valid", path=SERVER, key="/root/none.key")
    assert not gone.passed and "its key /root/none.key does not exist" in gone.detail
    node.write_file("/root/garbage.key", b"not a key")
    garbage = check(ctx, "certs.valid", path=SERVER, key="/root/garbage.key")
    assert not garbage.passed and "is not a PEM private key" in garbage.detail


def test_every_problem_is_listed(ctx):
    fault(ctx, "certs.expire", path=SERVER, days_ago=2)
    fault(ctx, "certs.wrong_ca", path=SERVER)
    result = check(ctx, "certs.valid", path=SERVER, names=["etcd.example.com"])
    assert not result.passed
    for part in ("expired 2 days ago", "another CA of the same name", "SANs lack etcd.example.com"):
        assert part in result.detail


def test_unreadable_certificates(ctx):
    node = ctx.node
    assert check(ctx, "certs.valid", path="/root/none.crt").detail == "there is no certificate at /root/none.crt"
    node.write_file("/root/bad.crt", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    bad = check(ctx, "certs.valid", path="/root/bad.crt")
    assert not bad.passed and "does not hold a valid PEM certificate" in bad.detail
    node.write_file("/root/notes.txt", b"hello")
    notes = check(ctx, "certs.valid", path="/root/notes.txt")
    assert not notes.passed and "neither a PEM certificate nor a kubeconfig" in notes.detail
    folder = check(ctx, "certs.valid", path=PKI)
    assert not folder.passed and "is a directory" in folder.detail
    no_ca = check(ctx, "certs.valid", path=SERVER, ca="/root/no-ca.crt")
    assert not no_ca.passed and "cannot check who signed it: there is no CA certificate at /root/no-ca.crt" in no_ca.detail


def test_kubeconfig_client_certificate(ctx):
    fault(ctx, "certs.expire", path="/etc/kubernetes/admin.conf", days_ago=1)
    result = check(ctx, "certs.valid", path="/etc/kubernetes/admin.conf")
    assert not result.passed and "kubeadm certs renew admin.conf" in result.detail
    assert "expired 1 day ago" in result.detail


# ---------------------------------------------------------------- certs.expires_after


def test_expires_after(ctx):
    ok = check(ctx, "certs.expires_after", path=SERVER, days=300)
    assert ok.passed and "in 364 days (more than 300 days)" in ok.detail
    soon = check(ctx, "certs.expires_after", path=SERVER, days=400)
    assert not soon.passed
    assert "expires in 364 days" in soon.detail and "expected more than 400 days left" in soon.detail
    assert "kubeadm certs renew etcd-server" in soon.detail
    fault(ctx, "certs.expire", path=SERVER, days_ago=5)
    gone = check(ctx, "certs.expires_after", path=SERVER, days=30)
    assert not gone.passed and "expired 5 days ago" in gone.detail
    missing = check(ctx, "certs.expires_after", path="/root/none.crt", days=30)
    assert not missing.passed and "there is no certificate" in missing.detail
    with pytest.raises(CheckError, match="days must be a number"):
        check(ctx, "certs.expires_after", path=SERVER, days="a month")


# ---------------------------------------------------------------- fault parameters


def test_cert_faults_refuse_bad_parameters(ctx):
    with pytest.raises(CheckError, match="days_ago must be positive"):
        fault(ctx, "certs.expire", path=SERVER, days_ago=0)
    with pytest.raises(CheckError, match="does not exist on controlplane"):
        fault(ctx, "certs.expire", path="/root/none.crt")
    with pytest.raises(CheckError, match="does not exist on controlplane"):
        fault(ctx, "certs.wrong_ca", path="/root/none.crt")
