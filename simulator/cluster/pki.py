"""A kubeadm-identical PKI: cluster CAs, every node certificate, and the kubeconfigs.

Files, subjects, SANs, key usages, validity and file modes follow kubeadm
(``cmd/kubeadm/app/phases/certs/certlist.go``, ``util/pkiutil/pki_helpers.go``,
``phases/kubeconfig``), so ``openssl x509 -text``, ``kubeadm certs check-expiration``
and a learner's habits behave as on an exam node. Certificates are built the way Go's
``x509.CreateCertificate`` builds them: subject ``O`` before ``CN``, extensions in the
order keyUsage, extKeyUsage, basicConstraints, subjectKeyIdentifier (CAs only),
authorityKeyIdentifier (signed certs only), subjectAltName; DNS SANs sorted and unique.

The three CAs and the service-account key pair are made once per cluster and cached;
each node then gets fresh leaf keys. RSA key generation dominates the cost, so leaf
keys come from a per-cluster pool (filled ahead of time with :meth:`CAs.fill_key_pool`)
and whatever the pool lacks is generated in parallel threads.

Why one module of ~800 lines: its sections (keys, certificates, CAs and the key pool, a
node's PKI and kubeconfigs, re-signing, inspection) all build or read the same kubeadm
certificates with the same helpers (``sign_cert``, ``load_cert``/``load_key``, file
modes), and what they must agree on (subjects, SANs, usages, validity) is easier to keep
right when it is read in one place. The sections are marked; re-signing and inspection,
which only checkers and faults use, are the seam to cut along if it grows.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import fcntl
import ipaddress
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.cluster import kubeadm
from simulator.cluster.kubeadm import (
    API_PORT,
    CLUSTER_NAME,
    DNS_DOMAIN,
    SERVICE_SUBNET,
    service_ip,
)
from simulator.errors import ClusterError

RSA_BITS = 2048
CA_VALIDITY = dt.timedelta(days=3650)
CERT_VALIDITY = dt.timedelta(days=365)
BACKDATE = dt.timedelta(minutes=5)

# kind's kubeadm config adds these to the apiserver certificate; the embedded driver
# reaches its apiserver the same way, so the learner sees the same SAN list as on kind.
APISERVER_CERT_SANS = ("localhost", "127.0.0.1")

CLUSTER_ADMINS = "kubeadm:cluster-admins"
SYSTEM_MASTERS = "system:masters"
SYSTEM_NODES = "system:nodes"

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

KEY_MODE = 0o600
CERT_MODE = 0o644
KUBECONFIG_MODE = 0o600
DIR_MODE = 0o755


class PKIError(ClusterError):
    """A certificate, key or kubeconfig is missing, unreadable or does not fit its CA."""


# --------------------------------------------------------------------------- keys


def new_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key, as kubeadm generates by default."""
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def new_keys(count: int) -> list[rsa.RSAPrivateKey]:
    """``count`` fresh keys, generated in parallel threads (OpenSSL releases the GIL)."""
    if count <= 0:
        return []
    if count == 1:
        return [new_key()]
    workers = min(count, max(2, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda _: new_key(), range(count)))


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#1 ``RSA PRIVATE KEY`` PEM, the form kubeadm writes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """PKIX ``PUBLIC KEY`` PEM (the form of ``sa.pub``)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(data: bytes, what: str = "private key", *, trusted: bool = False) -> rsa.RSAPrivateKey:
    """Parse an RSA private key PEM; raise :class:`PKIError` naming ``what`` otherwise.

    ``trusted`` skips OpenSSL's slow RSA consistency check, for keys this module wrote.
    """
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=trusted
        )
    except (ValueError, TypeError) as exc:
        raise PKIError(f"{what} is not a PEM private key", hint=str(exc)) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PKIError(f"{what} is not an RSA key", hint="kubeadm's default keys are RSA-2048")
    return key


def load_cert(data: bytes, what: str = "certificate") -> x509.Certificate:
    """Parse the first certificate of a PEM; raise :class:`PKIError` naming ``what`` otherwise."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PKIError(f"{what} is not a PEM certificate", hint=str(exc)) from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise PKIError(f"{what} {path} does not exist", hint="was the PKI written?") from exc
    except OSError as exc:
        raise PKIError(f"cannot read {what} {path}: {exc.strerror}") from exc


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically with exactly ``mode`` (umask ignored), creating parents 0755."""
    path = Path(path)
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- certificates


@dataclasses.dataclass(frozen=True)
class CertSpec:
    """What a certificate says: subject, SANs, usages. ``name`` is its path under ``pki/``."""

    name: str
    cn: str
    orgs: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = (CLIENT_AUTH,)
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    signer: str = "ca"  # "ca", "etcd-ca" or "front-proxy-ca"


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _serial() -> int:
    return secrets.randbelow(2**63 - 2) + 1


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _san(dns: Sequence[str], ips: Sequence[str]) -> x509.SubjectAlternativeName | None:
    seen_ips: list[str] = []
    for ip in ips:
        text = str(ipaddress.ip_address(ip))
        if text not in seen_ips:
            seen_ips.append(text)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(set(dns))]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in seen_ips]
    return x509.SubjectAlternativeName(names) if names else None


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed_ca(
    cn: str, key: rsa.RSAPrivateKey, *, now: dt.datetime | None = None
) -> x509.Certificate:
    """A kubeadm CA: CN and DNS SAN ``cn``, valid 10 years from ``now``, backdated 5 minutes."""
    start = _utc(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def sign_cert(
    spec: CertSpec | None,
    public_key: rsa.RSAPublicKey,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    template: x509.Certificate | None = None,
) -> x509.Certificate:
    """Sign ``public_key`` with the CA as kubeadm's ``NewSignedCert`` does.

    Subject, SANs and extended usages come from ``spec``, or, when ``spec`` is None, are
    copied from ``template`` (an existing certificate being re-signed).
    """
    if spec is not None:
        subject = _name(spec.cn, spec.orgs)
        usages: list[x509.ObjectIdentifier] = list(spec.usages)
        san = _san(spec.dns, spec.ips)
    elif template is not None:
        subject = template.subject
        try:
            usages = list(template.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            usages = []
        try:
            san = template.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
    else:
        raise ValueError("sign_cert needs a spec or a template")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(_utc(not_before))
        .not_valid_after(_utc(not_after))
        .add_extension(_key_usage(ca=False), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(ski.digest, None, None), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``ca_cert``'s key made ``cert``'s signature (issuer name must match too)."""
    if cert.issuer != ca_cert.subject:
        return False
    public = ca_cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or cert.signature_hash_algorithm is None:
        return False
    try:
        public.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------- CAs


@dataclasses.dataclass(frozen=True)
class ClusterCA:
    """One CA: its path base under ``pki/`` (``ca``, ``etcd/ca``, ``front-proxy-ca``)."""

    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_pem: bytes
    key_pem: bytes


_CA_FILES = {"ca": ("ca", "kubernetes"), "etcd-ca": ("etcd/ca", "etcd-ca"),
             "front-proxy-ca": ("front-proxy-ca", "front-proxy-ca")}


@dataclasses.dataclass(frozen=True)
class CAs:
    """The cluster's three CAs and service-account key pair, cached in ``cache_dir``."""

    ca: ClusterCA
    etcd: ClusterCA
    front_proxy: ClusterCA
    sa_key_pem: bytes
    sa_pub_pem: bytes
    cache_dir: Path

    def signer(self, name: str) -> ClusterCA:
        """The CA called ``name`` in a :class:`CertSpec` (``ca``, ``etcd-ca``, ``front-proxy-ca``)."""
        return {"ca": self.ca, "etcd-ca": self.etcd, "front-proxy-ca": self.front_proxy}[name]

    @property
    def key_pool(self) -> KeyPool:
        return KeyPool(self.cache_dir / "keypool")

    def fill_key_pool(self, count: int) -> int:
        """Pre-generate keys until the pool holds ``count``; returns how many were added."""
        return self.key_pool.fill(count)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_or_create_cas(pki_cache: Path, *, now: dt.datetime | None = None) -> CAs:
    """The cluster's CAs and SA keys from ``pki_cache``; made and cached there on first use.

    Safe against two processes creating the same cluster at once (a lock file).
    """
    pki_cache = Path(pki_cache)
    with _locked(pki_cache):
        paths = [pki_cache / f"{base}.{ext}" for base, _ in _CA_FILES.values() for ext in ("crt", "key")]
        paths += [pki_cache / "sa.key", pki_cache / "sa.pub"]
        if not all(p.exists() for p in paths):
            keys = new_keys(len(_CA_FILES) + 1)
            for (base, cn), key in zip(_CA_FILES.values(), keys):
                cert = self_signed_ca(cn, key, now=now)
                write_file(pki_cache / f"{base}.key", key_pem(key), KEY_MODE)
                write_file(pki_cache / f"{base}.crt", cert_pem(cert), CERT_MODE)
            write_file(pki_cache / "sa.key", key_pem(keys[-1]), KEY_MODE)
            write_file(pki_cache / "sa.pub", public_key_pem(keys[-1]), KEY_MODE)
        loaded: dict[str, ClusterCA] = {}
        for label, (base, _) in _CA_FILES.items():
            c_pem = _read(pki_cache / f"{base}.crt", "CA certificate")
            k_pem = _read(pki_cache / f"{base}.key", "CA key")
            loaded[label] = ClusterCA(
                base, load_cert(c_pem, f"{base}.crt"), load_key(k_pem, f"{base}.key", trusted=True), c_pem, k_pem
            )
        return CAs(
            ca=loaded["ca"],
            etcd=loaded["etcd-ca"],
            front_proxy=loaded["front-proxy-ca"],
            sa_key_pem=_read(pki_cache / "sa.key", "service-account key"),
            sa_pub_pem=_read(pki_cache / "sa.pub", "service-account public key"),
            cache_dir=pki_cache,
        )


class KeyPool:
    """Pre-generated private keys in a directory; each key is handed out once."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def size(self) -> int:
        """How many unused keys the pool holds."""
        if not self.directory.is_dir():
            return 0
        return sum(1 for p in self.directory.iterdir() if p.suffix == ".key")

    def fill(self, count: int) -> int:
        """Generate keys until the pool holds ``count``; returns how many were added."""
        missing = count - self.size()
        if missing <= 0:
            return 0
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for key in new_keys(missing):
            write_file(self.directory / f"{secrets.token_hex(8)}.key", key_pem(key), KEY_MODE)
        return missing

    def take(self, count: int) -> list[rsa.RSAPrivateKey]:
        """Up to ``count`` keys removed from the pool (fewer when it runs dry)."""
        taken: list[rsa.RSAPrivateKey] = []
        if not self.directory.is_dir():
            return taken
        for path in sorted(self.directory.glob("*.key")):
            if len(taken) == count:
                break
            claimed = path.with_suffix(f".taken-{os.getpid()}-{threading.get_ident()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue
            try:
                taken.append(load_key(claimed.read_bytes(), "pooled key", trusted=True))
            except PKIError:
                pass
            finally:
                claimed.unlink(missing_ok=True)
        return taken


def _keys_for(cas: CAs, count: int) -> list[rsa.RSAPrivateKey]:
    keys = cas.key_pool.take(count)
    return keys + new_keys(count - len(keys))


# --------------------------------------------------------------------------- node PKI


def node_cert_specs(
    node_name: str,
    node_ip: str,
    *,
    service_subnet: str = SERVICE_SUBNET,
    dns_domain: str = DNS_DOMAIN,
    apiserver_cert_sans: Sequence[str] = APISERVER_CERT_SANS,
) -> list[CertSpec]:
    """Every certificate kubeadm issues to a control-plane node, per ``certlist.go``."""
    extra_dns = tuple(s for s in apiserver_cert_sans if not _is_ip(s))
    extra_ips = tuple(s for s in apiserver_cert_sans if _is_ip(s))
    etcd_dns = (node_name, "localhost")
    etcd_ips = (node_ip, "127.0.0.1", "::1")
    return [
        CertSpec(
            "apiserver",
            "kube-apiserver",
            usages=(SERVER_AUTH,),
            dns=(node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 f"kubernetes.default.svc.{dns_domain}") + extra_dns,
            ips=(service_ip(service_subnet), node_ip) + extra_ips,
        ),
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", (CLUSTER_ADMINS,)),
        CertSpec("front-proxy-client", "front-proxy-client", signer="front-proxy-ca"),
        CertSpec("etcd/server", node_name, usages=(SERVER_AUTH, CLIENT_AUTH), dns=etcd_dns,
                 ips=etcd_ips, signer="etcd-ca"),
        CertSpec("etcd/peer", node_name, usages=(SERVER_AUTH, CLIENT_AUTH), dns=etcd_dns,
                 ips=etcd_ips, signer="etcd-ca"),
        CertSpec("etcd/healthcheck-client", "kube-etcd-healthcheck-client", signer="etcd-ca"),
        CertSpec("apiserver-etcd-client", "kube-apiserver-etcd-client", signer="etcd-ca"),
    ]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class KubeconfigSpec:
    """A kubeconfig kubeadm writes: file name, client identity, server URL."""

    file: str
    user: str
    orgs: tuple[str, ...]
    server: str

    @property
    def context(self) -> str:
        return f"{self.user}@{CLUSTER_NAME}"


def kubeconfig_specs(
    node_name: str,
    node_ip: str,
    *,
    control_plane: bool = True,
    first_control_plane: bool = True,
    control_plane_endpoint: str | None = None,
) -> list[KubeconfigSpec]:
    """The kubeconfigs of a node, as ``phases/kubeconfig`` builds them.

    admin, super-admin and kubelet talk to the control-plane endpoint (the advertise
    address when none is set); controller-manager and scheduler to the local API endpoint.
    super-admin.conf exists only on the node that ran ``kubeadm init``.
    """
    local = f"https://{_host_port(node_ip, API_PORT)}"
    endpoint = f"https://{control_plane_endpoint}" if control_plane_endpoint else local
    kubelet = KubeconfigSpec(_file(kubeadm.KUBELET_CONF), f"system:node:{node_name}",
                             (SYSTEM_NODES,), endpoint)
    if not control_plane:
        return [kubelet]
    specs = [KubeconfigSpec(_file(kubeadm.ADMIN_CONF), "kubernetes-admin", (CLUSTER_ADMINS,),
                            endpoint)]
    if first_control_plane:
        specs.append(KubeconfigSpec(_file(kubeadm.SUPER_ADMIN_CONF), "kubernetes-super-admin",
                                    (SYSTEM_MASTERS,), endpoint))
    specs += [
        KubeconfigSpec(_file(kubeadm.CONTROLLER_MANAGER_CONF), "system:kube-controller-manager",
                       (), local),
        KubeconfigSpec(_file(kubeadm.SCHEDULER_CONF), "system:kube-scheduler", (), local),
        kubelet,
    ]
    return specs


def _file(path: str) -> str:
    """A kubeconfig's file name in the node's ``/etc/kubernetes``."""
    return path.rsplit("/", 1)[-1]


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kubeconfig_yaml(
    spec: KubeconfigSpec, ca_cert_pem: bytes, client_cert_pem: bytes, client_key_pem: bytes
) -> str:
    """The kubeconfig text as ``clientcmd.Write`` serialises it (sorted keys, embedded data)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": b64(ca_cert_pem), "server": spec.server},
             "name": CLUSTER_NAME}
        ],
        "contexts": [
            {"context": {"cluster": CLUSTER_NAME, "user": spec.user}, "name": spec.context}
        ],
        "current-context": spec.context,
        "kind": "Config",
        "users": [
            {"name": spec.user,
             "user": {"client-certificate-data": b64(client_cert_pem),
                      "client-key-data": b64(client_key_pem)}}
        ],
    }
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 30)


def write_node_pki(
    etc_kubernetes: Path,
    cas: CAs,
    node_name: str,
    node_ip: str,
    *,
    control_plane: bool = True,
    first_control_plane: bool = True,
    now: dt.datetime | None = None,
    service_subnet: str = SERVICE_SUBNET,
    dns_domain: str = DNS_DOMAIN,
    apiserver_cert_sans: Sequence[str] = APISERVER_CERT_SANS,
    control_plane_endpoint: str | None = None,
) -> list[Path]:
    """Write ``<etc_kubernetes>/pki/*`` and the kubeconfigs of one node; return the paths.

    A control-plane node gets the CA certs and keys, ``sa.key``/``sa.pub``, the seven
    leaf certificates of :func:`node_cert_specs` and admin, (super-admin,)
    controller-manager, scheduler and kubelet kubeconfigs. A worker gets ``pki/ca.crt``
    and ``kubelet.conf`` only. Every leaf is valid from ``now`` - 5 min to ``now`` + 365 d.
    """
    etc = Path(etc_kubernetes)
    pki = etc / "pki"
    start = _utc(now)
    not_before, not_after = start - BACKDATE, start + CERT_VALIDITY
    written: list[Path] = []

    def put(path: Path, data: bytes, mode: int) -> None:
        write_file(path, data, mode)
        written.append(path)

    specs = node_cert_specs(
        node_name, node_ip, service_subnet=service_subnet, dns_domain=dns_domain,
        apiserver_cert_sans=apiserver_cert_sans,
    ) if control_plane else []
    confs = kubeconfig_specs(
        node_name, node_ip, control_plane=control_plane, first_control_plane=first_control_plane,
        control_plane_endpoint=control_plane_endpoint,
    )
    keys = _keys_for(cas, len(specs) + len(confs))

    pki.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    put(pki / "ca.crt", cas.ca.cert_pem, CERT_MODE)
    if control_plane:
        for ca in (cas.ca, cas.etcd, cas.front_proxy):
            if ca is not cas.ca:
                put(pki / f"{ca.name}.crt", ca.cert_pem, CERT_MODE)
            put(pki / f"{ca.name}.key", ca.key_pem, KEY_MODE)
        put(pki / "sa.key", cas.sa_key_pem, KEY_MODE)
        put(pki / "sa.pub", cas.sa_pub_pem, KEY_MODE)

    for spec, key in zip(specs, keys):
        ca = cas.signer(spec.signer)
        cert = sign_cert(spec, key.public_key(), ca.cert, ca.key,
                         not_before=not_before, not_after=not_after)
        put(pki / f"{spec.name}.crt", cert_pem(cert), CERT_MODE)
        put(pki / f"{spec.name}.key", key_pem(key), KEY_MODE)

    for conf, key in zip(confs, keys[len(specs):]):
        client = CertSpec(conf.file, conf.user, conf.orgs)
        cert = sign_cert(client, key.public_key(), cas.ca.cert, cas.ca.key,
                         not_before=not_before, not_after=not_after)
        text = kubeconfig_yaml(conf, cas.ca.cert_pem, cert_pem(cert), key_pem(key))
        put(etc / conf.file, text.encode(), KUBECONFIG_MODE)
    return written


# --------------------------------------------------------------------------- re-signing


def reissue_pem(
    cert_data: bytes,
    ca_cert_data: bytes,
    ca_key_data: bytes,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """A new certificate for the same key, subject, SANs and usages, with the given dates.

    Signed by the CA given (so a fault can make a certificate that expired N days ago,
    or one signed by a wrong CA). Works on bytes so it runs over the Node API.
    """
    old = load_cert(cert_data)
    ca_cert = load_cert(ca_cert_data, "CA certificate")
    ca_key = load_key(ca_key_data, "CA key")
    public = old.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise PKIError("only RSA certificates can be re-signed")
    new = sign_cert(None, public, ca_cert, ca_key, not_before=not_before, not_after=not_after,
                    template=old)
    return cert_pem(new)


def reissue(
    cert_path: Path,
    key_path: Path,
    ca_cert_path: Path,
    ca_key_path: Path,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """Re-sign ``cert_path`` in place with the CA on disk, keeping its key and contents.

    Raises :class:`PKIError` when ``key_path`` does not hold the certificate's key.
    """
    data = _read(Path(cert_path), "certificate")
    key = load_key(_read(Path(key_path), "key"), str(key_path))
    if public_key_pem(key) != public_key_pem(load_cert(data, str(cert_path)).public_key()):  # type: ignore[arg-type]
        raise PKIError(f"{key_path} is not the key of {cert_path}",
                       hint="pass the .key file that belongs to the certificate")
    new = reissue_pem(data, _read(Path(ca_cert_path), "CA certificate"),
                      _read(Path(ca_key_path), "CA key"), not_before, not_after)
    write_file(Path(cert_path), new, CERT_MODE)
    return load_cert(new)


def renew(
    cert_path: Path,
    key_path: Path,
    ca_cert_path: Path,
    ca_key_path: Path,
    *,
    now: dt.datetime | None = None,
    validity: dt.timedelta = CERT_VALIDITY,
    new_key: bool = True,
) -> x509.Certificate:
    """``kubeadm certs renew`` for one file pair: same subject/SANs/usages, dated from ``now``.

    kubeadm generates a new private key on renewal; ``new_key=False`` keeps the old one.
    """
    start = _utc(now)
    old = load_cert(_read(Path(cert_path), "certificate"), str(cert_path))
    ca_cert = load_cert(_read(Path(ca_cert_path), "CA certificate"), str(ca_cert_path))
    ca_key = load_key(_read(Path(ca_key_path), "CA key"), str(ca_key_path))
    key = new_keys(1)[0] if new_key else load_key(_read(Path(key_path), "key"), str(key_path))
    cert = sign_cert(None, key.public_key(), ca_cert, ca_key, not_before=start - BACKDATE,
                     not_after=start + validity, template=old)
    if new_key:
        write_file(Path(key_path), key_pem(key), KEY_MODE)
    write_file(Path(cert_path), cert_pem(cert), CERT_MODE)
    return cert


def kubeconfig_client_cert(data: bytes) -> bytes:
    """The PEM client certificate embedded in a kubeconfig's current user."""
    return base64.b64decode(_kubeconfig_user(data)[1]["client-certificate-data"])


def _kubeconfig_user(data: bytes) -> tuple[dict, dict]:
    try:
        doc = yaml.safe_load(data)
        current = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])
        user = next(u for u in doc["users"] if u["name"] == current["context"]["user"])
        user["user"]["client-certificate-data"]
    except (yaml.YAMLError, KeyError, TypeError, StopIteration) as exc:
        raise PKIError("the kubeconfig has no embedded client certificate for its current context",
                       hint="kubeadm embeds client-certificate-data in admin.conf") from exc
    return doc, user["user"]


def reissue_kubeconfig_pem(
    data: bytes,
    ca_cert_data: bytes,
    ca_key_data: bytes,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """The kubeconfig with its embedded client certificate re-signed for the given dates."""
    doc, user = _kubeconfig_user(data)
    old = base64.b64decode(user["client-certificate-data"])
    new = reissue_pem(old, ca_cert_data, ca_key_data, not_before, not_after)
    user["client-certificate-data"] = base64.b64encode(new).decode()
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 30).encode()


def renew_kubeconfig(
    path: Path, ca_cert_path: Path, ca_key_path: Path, *, now: dt.datetime | None = None
) -> x509.Certificate:
    """``kubeadm certs renew admin.conf``-like: a new key and client cert valid 365 days."""
    start = _utc(now)
    doc, user = _kubeconfig_user(_read(Path(path), "kubeconfig"))
    old = load_cert(base64.b64decode(user["client-certificate-data"]))
    ca_cert = load_cert(_read(Path(ca_cert_path), "CA certificate"))
    ca_key = load_key(_read(Path(ca_key_path), "CA key"))
    key = new_keys(1)[0]
    cert = sign_cert(None, key.public_key(), ca_cert, ca_key, not_before=start - BACKDATE,
                     not_after=start + CERT_VALIDITY, template=old)
    user["client-certificate-data"] = base64.b64encode(cert_pem(cert)).decode()
    user["client-key-data"] = base64.b64encode(key_pem(key)).decode()
    text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 30)
    write_file(Path(path), text.encode(), KUBECONFIG_MODE)
    return cert


# --------------------------------------------------------------------------- inspection


def describe(cert: Path | str | bytes) -> dict:
    """What a checker needs to know about a certificate (a path, or PEM bytes).

    Keys: ``subject_cn``, ``subject_o`` (list), ``issuer_cn``, ``issuer_o``, ``dns_names``,
    ``ip_addresses``, ``not_before``, ``not_after`` (aware UTC datetimes), ``serial``,
    ``is_ca``, ``usages`` (``serverAuth``/``clientAuth``), ``expired`` (now).
    """
    data = cert if isinstance(cert, bytes) else _read(Path(cert), "certificate")
    parsed = load_cert(data, "certificate" if isinstance(cert, bytes) else str(cert))

    def attrs(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in name.get_attributes_for_oid(oid)]

    ext = parsed.extensions
    try:
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        is_ca = ext.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    names = {SERVER_AUTH: "serverAuth", CLIENT_AUTH: "clientAuth"}
    try:
        usages = [names.get(u, u.dotted_string)
                  for u in ext.get_extension_for_class(x509.ExtendedKeyUsage).value]
    except x509.ExtensionNotFound:
        usages = []
    subject_cn = attrs(parsed.subject, NameOID.COMMON_NAME)
    issuer_cn = attrs(parsed.issuer, NameOID.COMMON_NAME)
    not_after = parsed.not_valid_after_utc
    return {
        "subject_cn": subject_cn[0] if subject_cn else "",
        "subject_o": attrs(parsed.subject, NameOID.ORGANIZATION_NAME),
        "issuer_cn": issuer_cn[0] if issuer_cn else "",
        "issuer_o": attrs(parsed.issuer, NameOID.ORGANIZATION_NAME),
        "dns_names": dns,
        "ip_addresses": ips,
        "not_before": parsed.not_valid_before_utc,
        "not_after": not_after,
        "serial": parsed.serial_number,
        "is_ca": is_ca,
        "usages": usages,
        "expired": not_after < dt.datetime.now(dt.UTC),
    }
