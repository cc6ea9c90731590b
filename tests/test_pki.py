"""The embedded driver's PKI, checked with the real openssl CLI as a learner would."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from simulator.cluster import binaries, pki
from simulator.errors import SimError

NODE = "controlplane"
IP = "172.30.0.10"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)

ETCD_SANS = ("DNS:controlplane, DNS:localhost, IP Address:172.30.0.10, "
             "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1")

# file under pki/ -> (CA file, subject, usages, SANs or None)
EXPECTED = {
    "apiserver": ("ca", "CN=kube-apiserver", ["TLS Web Server Authentication"],
                  ("DNS:controlplane, DNS:kubernetes, DNS:kubernetes.default, "
                   "DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, "
                   "DNS:localhost, IP Address:10.96.0.1, IP Address:172.30.0.10, "
                   "IP Address:127.0.0.1")),
    "apiserver-kubelet-client": ("ca", "O=kubeadm:cluster-admins, CN=kube-apiserver-kubelet-client",
                                 ["TLS Web Client Authentication"], None),
    "front-proxy-client": ("front-proxy-ca", "CN=front-proxy-client",
                           ["TLS Web Client Authentication"], None),
    "etcd/server": ("etcd/ca", "CN=controlplane",
                    ["TLS Web Server Authentication", "TLS Web Client Authentication"],
                    ETCD_SANS),
    "etcd/peer": ("etcd/ca", "CN=controlplane",
                  ["TLS Web Server Authentication", "TLS Web Client Authentication"],
                  ETCD_SANS),
    "etcd/healthcheck-client": ("etcd/ca", "CN=kube-etcd-healthcheck-client",
                                ["TLS Web Client Authentication"], None),
    "apiserver-etcd-client": ("etcd/ca", "CN=kube-apiserver-etcd-client",
                              ["TLS Web Client Authentication"], None),
}

KUBECONFIGS = {
    "admin.conf": ("kubernetes-admin", "O=kubeadm:cluster-admins, CN=kubernetes-admin"),
    "super-admin.conf": ("kubernetes-super-admin", "O=system:masters, CN=kubernetes-super-admin"),
    "controller-manager.conf": ("system:kube-controller-manager", "CN=system:kube-controller-manager"),
    "scheduler.conf": ("system:kube-scheduler", "CN=system:kube-scheduler"),
    "kubelet.conf": ("system:node:controlplane", "O=system:nodes, CN=system:node:controlplane"),
}


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=False, timeout=30)


def x509_field(path: Path, *args: str) -> str:
    out = openssl("x509", "-in", str(path), "-noout", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def dn(text: str) -> str:
    """``O=a, CN=b`` in openssl's default one-line form ``O = a, CN = b``."""
    return text.replace("=", " = ")


def verify(ca: Path, cert: Path, *extra: str) -> subprocess.CompletedProcess:
    return openssl("verify", *extra, "-CAfile", str(ca), str(cert))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> tuple[pki.CAs, Path]:
    root = tmp_path_factory.mktemp("pki")
    cas = pki.load_or_create_cas(root / "cache", now=NOW)
    etc = root / "node" / "etc" / "kubernetes"
    pki.write_node_pki(etc, cas, NODE, IP, now=NOW)
    return cas, etc


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_leaf_verifies_against_its_own_ca_only(cluster, name):
    _, etc = cluster
    ca_name, _, _, _ = EXPECTED[name]
    crt = etc / "pki" / f"{name}.crt"
    at = ["-attime", str(int(NOW.timestamp()))]
    ok = verify(etc / "pki" / f"{ca_name}.crt", crt, *at)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert ok.stdout.decode().strip().endswith(": OK")
    for other in {"ca", "etcd/ca", "front-proxy-ca"} - {ca_name}:
        assert verify(etc / "pki" / f"{other}.crt", crt, *at).returncode != 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_leaf_subject_usages_sans_and_validity_match_kubeadm(cluster, name):
    _, etc = cluster
    ca_name, subject, usages, sans = EXPECTED[name]
    crt = etc / "pki" / f"{name}.crt"
    assert x509_field(crt, "-subject").strip() == f"subject={dn(subject)}"
    ca_subject = {"ca": "CN=kubernetes", "etcd/ca": "CN=etcd-ca",
                  "front-proxy-ca": "CN=front-proxy-ca"}[ca_name]
    assert x509_field(crt, "-issuer").strip() == f"issuer={dn(ca_subject)}"
    ext = x509_field(crt, "-ext", "keyUsage,extendedKeyUsage,basicConstraints,subjectAltName")
    assert "Digital Signature, Key Encipherment\n" in ext
    assert "Certificate Sign" not in ext
    assert "CA:FALSE" in ext
    assert ", ".join(usages) in ext
    if sans is None:
        assert "Subject Alternative Name" not in ext
    else:
        assert sans in ext
    dates = x509_field(crt, "-startdate", "-enddate")
    assert "notBefore=Mar  1 11:55:00 2026 GMT" in dates
    assert "notAfter=Mar  1 12:00:00 2027 GMT" in dates
    text = x509_field(crt, "-text")
    assert "Authority Key Identifier" in text
    assert "Public-Key: (2048 bit)" in text
    assert "sha256WithRSAEncryption" in text


@pytest.mark.parametrize("ca_name,cn", [("ca", "kubernetes"), ("etcd/ca", "etcd-ca"),
                                        ("front-proxy-ca", "front-proxy-ca")])
def test_cas_are_ten_year_self_signed_kubeadm_cas(cluster, ca_name, cn):
    _, etc = cluster
    crt = etc / "pki" / f"{ca_name}.crt"
    assert x509_field(crt, "-subject").strip() == f"subject=CN = {cn}"
    ext = x509_field(crt, "-ext", "keyUsage,basicConstraints,subjectKeyIdentifier,subjectAltName")
    assert "Digital Signature, Key Encipherment, Certificate Sign" in ext
    assert "CA:TRUE" in ext
    assert "Subject Key Identifier" in ext
    assert f"DNS:{cn}" in ext
    dates = x509_field(crt, "-startdate", "-enddate")
    assert "notBefore=Mar  1 11:55:00 2026 GMT" in dates
    assert "notAfter=Feb 27 12:00:00 2036 GMT" in dates  # 3650 days, as kubeadm's 87600h


def test_leaf_authority_key_id_is_the_signers_subject_key_id(cluster):
    _, etc = cluster
    ski = x509_field(etc / "pki/etcd/ca.crt", "-ext", "subjectKeyIdentifier").splitlines()[1].strip()
    aki = x509_field(etc / "pki/etcd/server.crt", "-ext", "authorityKeyIdentifier")
    assert ski in aki


def test_file_set_and_modes_match_kubeadm(cluster):
    _, etc = cluster
    files = {p.relative_to(etc).as_posix(): p.stat().st_mode & 0o777
             for p in etc.rglob("*") if p.is_file()}
    keys = {f"pki/{n}.key" for n in EXPECTED} | {"pki/ca.key", "pki/etcd/ca.key",
                                                 "pki/front-proxy-ca.key", "pki/sa.key", "pki/sa.pub"}
    certs = {f"pki/{n}.crt" for n in EXPECTED} | {"pki/ca.crt", "pki/etcd/ca.crt",
                                                  "pki/front-proxy-ca.crt"}
    assert set(files) == keys | certs | set(KUBECONFIGS)
    assert {f for f, m in files.items() if m == 0o600} == keys | set(KUBECONFIGS)
    assert {f for f, m in files.items() if m == 0o644} == certs


def test_key_files_hold_the_certificate_keys(cluster):
    _, etc = cluster
    for name in EXPECTED:
        crt_mod = openssl("x509", "-in", str(etc / "pki" / f"{name}.crt"), "-noout", "-modulus")
        key_mod = openssl("rsa", "-in", str(etc / "pki" / f"{name}.key"), "-noout", "-modulus")
        assert crt_mod.stdout and crt_mod.stdout == key_mod.stdout, name
    key_text = (etc / "pki/apiserver.key").read_text()
    assert key_text.startswith("-----BEGIN RSA PRIVATE KEY-----")
    sa_pub = openssl("rsa", "-in", str(etc / "pki/sa.key"), "-pubout")
    assert sa_pub.stdout == (etc / "pki/sa.pub").read_bytes()


@pytest.mark.parametrize("conf", sorted(KUBECONFIGS))
def test_kubeconfigs_parse_and_their_client_certs_chain_to_the_ca(cluster, conf, tmp_path):
    _, etc = cluster
    user, subject = KUBECONFIGS[conf]
    doc = yaml.safe_load((etc / conf).read_text())
    assert doc["current-context"] == f"{user}@kubernetes"
    assert doc["contexts"] == [{"context": {"cluster": "kubernetes", "user": user},
                                "name": f"{user}@kubernetes"}]
    (cluster_entry,) = doc["clusters"]
    assert cluster_entry["name"] == "kubernetes"
    assert cluster_entry["cluster"]["server"] == "https://172.30.0.10:6443"
    assert base64.b64decode(cluster_entry["cluster"]["certificate-authority-data"]) == \
        (etc / "pki/ca.crt").read_bytes()
    (user_entry,) = doc["users"]
    assert user_entry["name"] == user
    crt = tmp_path / "client.crt"
    key = tmp_path / "client.key"
    crt.write_bytes(base64.b64decode(user_entry["user"]["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user_entry["user"]["client-key-data"]))
    ok = verify(etc / "pki/ca.crt", crt, "-attime", str(int(NOW.timestamp())))
    assert ok.returncode == 0, ok.stderr
    assert x509_field(crt, "-subject").strip() == f"subject={dn(subject)}"
    assert "TLS Web Client Authentication" in x509_field(crt, "-ext", "extendedKeyUsage")
    assert openssl("x509", "-in", str(crt), "-noout", "-modulus").stdout == \
        openssl("rsa", "-in", str(key), "-noout", "-modulus").stdout
    assert verify(etc / "pki/etcd/ca.crt", crt, "-attime", str(int(NOW.timestamp()))).returncode != 0


def test_cas_are_created_once_and_shared_by_nodes(cluster, tmp_path):
    cas, etc = cluster
    again = pki.load_or_create_cas(cas.cache_dir)
    assert again.ca.cert_pem == cas.ca.cert_pem
    assert again.etcd.key_pem == cas.etcd.key_pem
    other = tmp_path / "cp2" / "etc" / "kubernetes"
    pki.write_node_pki(other, again, "controlplane2", "172.30.0.11", first_control_plane=False)
    assert (other / "pki/ca.crt").read_bytes() == (etc / "pki/ca.crt").read_bytes()
    assert (other / "pki/etcd/ca.key").read_bytes() == (etc / "pki/etcd/ca.key").read_bytes()
    assert (other / "pki/apiserver.key").read_bytes() != (etc / "pki/apiserver.key").read_bytes()
    assert not (other / "super-admin.conf").exists()
    assert verify(other / "pki/etcd/ca.crt", etc / "pki/etcd/peer.crt").returncode == 0
    assert "DNS:controlplane2" in x509_field(other / "pki/etcd/peer.crt", "-ext", "subjectAltName")


def test_worker_gets_only_the_ca_certificate_and_kubelet_conf(cluster, tmp_path):
    cas, _ = cluster
    etc = tmp_path / "node01" / "etc" / "kubernetes"
    pki.write_node_pki(etc, cas, "node01", "172.30.0.20", control_plane=False)
    files = sorted(p.relative_to(etc).as_posix() for p in etc.rglob("*") if p.is_file())
    assert files == ["kubelet.conf", "pki/ca.crt"]
    doc = yaml.safe_load((etc / "kubelet.conf").read_text())
    assert doc["users"][0]["name"] == "system:node:node01"


def test_reissue_expires_a_certificate_but_keeps_key_subject_and_sans(cluster, tmp_path):
    _, etc = cluster
    crt = tmp_path / "apiserver.crt"
    crt.write_bytes((etc / "pki/apiserver.crt").read_bytes())
    before = x509_field(crt, "-subject", "-ext", "subjectAltName,extendedKeyUsage", "-modulus")
    now = dt.datetime.now(dt.UTC)
    pki.reissue(crt, etc / "pki/apiserver.key", etc / "pki/ca.crt", etc / "pki/ca.key",
                not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=3))
    assert x509_field(crt, "-subject", "-ext", "subjectAltName,extendedKeyUsage", "-modulus") == before
    expired = verify(etc / "pki/ca.crt", crt)
    assert expired.returncode != 0
    assert b"certificate has expired" in expired.stdout + expired.stderr
    assert pki.describe(crt)["expired"] is True
    assert verify(etc / "pki/ca.crt", crt, "-attime", str(int((now - dt.timedelta(days=5)).timestamp()))).returncode == 0


def test_reissue_refuses_a_key_that_is_not_the_certificates(cluster, tmp_path):
    _, etc = cluster
    crt = tmp_path / "apiserver.crt"
    crt.write_bytes((etc / "pki/apiserver.crt").read_bytes())
    with pytest.raises(pki.PKIError) as info:
        pki.reissue(crt, etc / "pki/front-proxy-client.key", etc / "pki/ca.crt", etc / "pki/ca.key",
                    NOW, NOW + dt.timedelta(days=1))
    assert "is not the key of" in info.value.message and info.value.hint


def test_renew_makes_an_expired_certificate_valid_with_a_new_key(cluster, tmp_path):
    _, etc = cluster
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    crt.write_bytes((etc / "pki/etcd/server.crt").read_bytes())
    key.write_bytes((etc / "pki/etcd/server.key").read_bytes())
    now = dt.datetime.now(dt.UTC)
    pki.reissue(crt, key, etc / "pki/etcd/ca.crt", etc / "pki/etcd/ca.key",
                now - dt.timedelta(days=400), now - dt.timedelta(days=1))
    old_key = key.read_bytes()
    pki.renew(crt, key, etc / "pki/etcd/ca.crt", etc / "pki/etcd/ca.key")
    assert verify(etc / "pki/etcd/ca.crt", crt).returncode == 0
    assert key.read_bytes() != old_key
    assert key.stat().st_mode & 0o777 == 0o600
    info = pki.describe(crt)
    assert info["subject_cn"] == NODE and "::1" in info["ip_addresses"]
    assert dt.timedelta(days=364) < info["not_after"] - now <= dt.timedelta(days=365, minutes=1)
    assert openssl("x509", "-in", str(crt), "-noout", "-modulus").stdout == \
        openssl("rsa", "-in", str(key), "-noout", "-modulus").stdout


def test_kubeconfig_client_cert_can_be_expired_and_renewed(cluster, tmp_path):
    _, etc = cluster
    conf = tmp_path / "admin.conf"
    conf.write_bytes((etc / "admin.conf").read_bytes())
    now = dt.datetime.now(dt.UTC)
    ca_crt, ca_key = (etc / "pki/ca.crt").read_bytes(), (etc / "pki/ca.key").read_bytes()
    conf.write_bytes(pki.reissue_kubeconfig_pem(conf.read_bytes(), ca_crt, ca_key,
                                                now - dt.timedelta(days=366), now - dt.timedelta(days=1)))
    info = pki.describe(pki.kubeconfig_client_cert(conf.read_bytes()))
    assert info["expired"] and info["subject_o"] == ["kubeadm:cluster-admins"]
    pki.renew_kubeconfig(conf, etc / "pki/ca.crt", etc / "pki/ca.key")
    info = pki.describe(pki.kubeconfig_client_cert(conf.read_bytes()))
    assert not info["expired"] and info["subject_cn"] == "kubernetes-admin"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(conf.read_text())["current-context"] == "kubernetes-admin@kubernetes"


def test_describe_reports_what_checkers_need(cluster):
    _, etc = cluster
    info = pki.describe(etc / "pki/apiserver-kubelet-client.crt")
    assert info["subject_cn"] == "kube-apiserver-kubelet-client"
    assert info["subject_o"] == ["kubeadm:cluster-admins"]
    assert info["issuer_cn"] == "kubernetes"
    assert info["usages"] == ["clientAuth"]
    assert info["not_after"] == NOW + dt.timedelta(days=365)
    assert info["is_ca"] is False
    ca = pki.describe((etc / "pki/ca.crt").read_bytes())
    assert ca["is_ca"] is True and ca["dns_names"] == ["kubernetes"]
    with pytest.raises(pki.PKIError):
        pki.describe(b"not a certificate")
    with pytest.raises(pki.PKIError) as info:
        pki.describe(etc / "pki" / "missing.crt")
    assert "does not exist" in info.value.message


def test_key_pool_hands_each_key_out_once(tmp_path):
    pool = pki.KeyPool(tmp_path / "pool")
    assert pool.fill(3) == 3 and pool.fill(3) == 0
    keys = pool.take(5)
    assert len(keys) == 3 and pool.size() == 0
    assert len({k.public_key().public_numbers().n for k in keys}) == 3


def test_one_node_pki_is_fast(cluster, tmp_path, capsys):
    cas, _ = cluster
    start = time.perf_counter()
    pki.write_node_pki(tmp_path / "cold", cas, "cold", "172.30.0.12")
    cold = time.perf_counter() - start
    cas.fill_key_pool(12)
    start = time.perf_counter()
    pki.write_node_pki(tmp_path / "warm", cas, "warm", "172.30.0.13")
    warm = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[pki timing] one control-plane node: {cold:.3f}s generating 12 keys, "
              f"{warm:.3f}s from a filled key pool")
    assert warm < 0.5
    assert cold < 5  # generous: other developers share these two cores


# --------------------------------------------------------------------------- real kubeadm


@pytest.fixture
def kubeadm() -> Path:
    try:
        return binaries.find("kubeadm")
    except SimError as exc:
        pytest.skip(f"kubeadm not available: {exc}")


def run_kubeadm(kubeadm: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(kubeadm), *args], capture_output=True, check=False, timeout=60,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr.decode()
    return result


def normalized_text(path: Path) -> str:
    """``openssl x509 -text`` without what differs between any two issuances."""
    lines, skip = [], False
    for line in x509_field(path, "-text").splitlines():
        stripped = line.strip()
        if stripped.startswith(("Modulus:", "Signature Value:")):
            skip = True
        elif stripped.startswith(("Exponent:", "X509v3 extensions:")):
            skip = False
        if skip or stripped.startswith(("Serial Number", "Not Before", "Not After")) or \
                all(c in "0123456789abcdefABCDEF:" for c in stripped):
            continue
        lines.append(line)
    return "\n".join(lines)


def test_certificates_are_shaped_exactly_like_kubeadms(kubeadm, tmp_path):
    config = tmp_path / "kubeadm.yaml"
    config.write_text(f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: {IP}, bindPort: 6443}}
nodeRegistration: {{name: {NODE}}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
certificatesDir: {tmp_path / "kubeadm-pki"}
""")
    run_kubeadm(kubeadm, "init", "phase", "certs", "all", "--config", str(config))
    cas = pki.load_or_create_cas(tmp_path / "cache")
    ours = tmp_path / "ours"
    pki.write_node_pki(ours, cas, NODE, IP, apiserver_cert_sans=())
    theirs = tmp_path / "kubeadm-pki"
    names = [*EXPECTED, "ca", "etcd/ca", "front-proxy-ca"]
    for name in names:
        assert normalized_text(ours / "pki" / f"{name}.crt") == \
            normalized_text(theirs / f"{name}.crt"), name
        assert (ours / "pki" / f"{name}.key").read_text().splitlines()[0] == \
            (theirs / f"{name}.key").read_text().splitlines()[0]
    modes = {p.relative_to(theirs).as_posix(): p.stat().st_mode & 0o777
             for p in theirs.rglob("*") if p.is_file()}
    assert modes == {p.relative_to(ours / "pki").as_posix(): p.stat().st_mode & 0o777
                     for p in (ours / "pki").rglob("*") if p.is_file()}


def blank_data(text: str) -> dict:
    doc = yaml.safe_load(text)
    for cluster in doc["clusters"]:
        cluster["cluster"]["certificate-authority-data"] = "..."
    for user in doc["users"]:
        user["user"] = {k: "..." for k in user["user"]}
    return doc


def test_kubeconfigs_are_shaped_exactly_like_kubeadms(kubeadm, cluster, tmp_path):
    _, etc = cluster
    out = tmp_path / "dry-run"
    out.mkdir()
    for name in ("ca.crt", "ca.key"):
        (out / name).write_bytes((etc / "pki" / name).read_bytes())
    config = tmp_path / "kubeadm.yaml"
    config.write_text(f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: {IP}, bindPort: 6443}}
nodeRegistration: {{name: {NODE}}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
certificatesDir: {out}
""")
    run_kubeadm(kubeadm, "init", "phase", "kubeconfig", "all", "--config", str(config),
                "--dry-run", env={"KUBEADM_INIT_DRYRUN_DIR": str(out)})
    for conf in KUBECONFIGS:
        theirs = (out / conf).read_text()
        ours = (etc / conf).read_text()
        assert blank_data(ours) == blank_data(theirs), conf
        assert list(yaml.safe_load(ours)) == list(yaml.safe_load(theirs))
        theirs_cert = pki.describe(pki.kubeconfig_client_cert(theirs.encode()))
        ours_cert = pki.describe(pki.kubeconfig_client_cert(ours.encode()))
        for field in ("subject_cn", "subject_o", "issuer_cn", "usages", "dns_names"):
            assert ours_cert[field] == theirs_cert[field], (conf, field)


@pytest.mark.skipif(os.geteuid() != 0, reason="kubeadm --rootfs chroots, which needs root")
def test_real_kubeadm_reads_expires_and_renews_our_pki(kubeadm, cluster, tmp_path):
    cas, _ = cluster
    root = tmp_path / "node"
    etc = root / "etc" / "kubernetes"
    pki.write_node_pki(etc, cas, NODE, IP)
    table = run_kubeadm(kubeadm, "certs", "check-expiration", "--rootfs", str(root)).stdout.decode()
    for name in ("admin.conf", "apiserver", "etcd-server", "front-proxy-client", "scheduler.conf"):
        (line,) = [ln for ln in table.splitlines() if ln.split() and ln.split()[0] == name]
        assert "364d" in line and "<invalid>" not in line and line.rstrip().endswith("no"), line

    now = dt.datetime.now(dt.UTC)
    pki.reissue(etc / "pki/apiserver.crt", etc / "pki/apiserver.key", etc / "pki/ca.crt",
                etc / "pki/ca.key", now - dt.timedelta(days=400), now - dt.timedelta(days=2))
    table = run_kubeadm(kubeadm, "certs", "check-expiration", "--rootfs", str(root)).stdout.decode()
    (line,) = [ln for ln in table.splitlines() if ln.startswith("apiserver ")]
    assert "<invalid>" in line

    sans = x509_field(etc / "pki/apiserver.crt", "-ext", "subjectAltName")
    run_kubeadm(kubeadm, "certs", "renew", "apiserver", "--rootfs", str(root))
    assert verify(etc / "pki/ca.crt", etc / "pki/apiserver.crt").returncode == 0
    assert x509_field(etc / "pki/apiserver.crt", "-ext", "subjectAltName") == sans
