"""Checkers of certificates on a node: valid now, signed by the right CA, the right names,
the matching key, and time left before expiry.

Certificates are read through the Node API and parsed in Python, so the checks work on
every driver. A path may name a PEM certificate or a kubeconfig (its embedded client
certificate is checked, as ``kubeadm certs check-expiration`` does for ``admin.conf``).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import posixpath

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulator.cluster import kubeadm
from simulator.cluster.pki import describe, kubeconfig_client_cert, signed_by
from simulator.errors import CheckError, SimError
from simulator.registry import CheckResult, Context, checker

PKI = kubeadm.PKI
_ETCD_SIGNED = ("apiserver-etcd-client.crt",)
_FRONT_PROXY_SIGNED = ("front-proxy-client.crt",)

# kubeadm certs renew names of the certificates kubeadm manages.
_RENEW_NAMES = {
    f"{PKI}/apiserver.crt": "apiserver",
    f"{PKI}/apiserver-kubelet-client.crt": "apiserver-kubelet-client",
    f"{PKI}/apiserver-etcd-client.crt": "apiserver-etcd-client",
    f"{PKI}/front-proxy-client.crt": "front-proxy-client",
    f"{PKI}/etcd/server.crt": "etcd-server",
    f"{PKI}/etcd/peer.crt": "etcd-peer",
    f"{PKI}/etcd/healthcheck-client.crt": "etcd-healthcheck-client",
    kubeadm.ADMIN_CONF: "admin.conf",
    kubeadm.SUPER_ADMIN_CONF: "super-admin.conf",
    kubeadm.CONTROLLER_MANAGER_CONF: "controller-manager.conf",
    kubeadm.SCHEDULER_CONF: "scheduler.conf",
}


def default_ca(path: str) -> str:
    """The kubeadm CA that signs the certificate at ``path``.

    Certificates under ``pki/etcd/`` and ``apiserver-etcd-client`` come from the etcd CA,
    ``front-proxy-client`` from the front-proxy CA, everything else from ``pki/ca.crt``.
    """
    norm = posixpath.normpath(path)
    base = posixpath.basename(norm)
    if norm.startswith(f"{PKI}/etcd/") or base in _ETCD_SIGNED:
        return f"{PKI}/etcd/ca.crt"
    if base in _FRONT_PROXY_SIGNED:
        return f"{PKI}/front-proxy-ca.crt"
    return f"{PKI}/ca.crt"


def default_ca_key(ca_path: str) -> str:
    """The key file beside a CA certificate (``ca.crt`` -> ``ca.key``)."""
    root, _ = posixpath.splitext(ca_path)
    return root + ".key"


def renew_hint(path: str) -> str:
    """How a learner renews the certificate at ``path``."""
    name = _RENEW_NAMES.get(posixpath.normpath(path))
    if name:
        return f"renew it with `kubeadm certs renew {name}`"
    return f"re-sign it with its CA (for example `openssl x509 -req -CA {default_ca(path)} ...`)"


def when(moment: dt.datetime) -> str:
    """``Nov 21 2026 14:05 UTC``."""
    return moment.astimezone(dt.UTC).strftime("%b %d %Y %H:%M UTC")


def span(delta: dt.timedelta) -> str:
    """A duration in the largest whole unit: ``3 days``, ``5 hours``, ``12 minutes``."""
    seconds = abs(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


class Unreadable(Exception):
    """A file a checker needs is missing or is not what it should be; ``str`` says which."""


def read_cert(ctx: Context, path: str, what: str = "certificate") -> tuple[x509.Certificate, bytes | None]:
    """The certificate at ``path`` (PEM, or a kubeconfig's client certificate) and, for a
    kubeconfig, its embedded client key PEM."""
    try:
        data = ctx.node.read_file(path)
    except FileNotFoundError:
        raise Unreadable(f"there is no {what} at {path}") from None
    except IsADirectoryError:
        raise Unreadable(f"{path} is a directory, expected a {what} file") from None
    except OSError as exc:
        raise Unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    key_pem = None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        try:
            pem = kubeconfig_client_cert(data)
            key_pem = _kubeconfig_key(data)
        except SimError:
            raise Unreadable(f"{path} is neither a PEM certificate nor a kubeconfig "
                             "with an embedded client certificate") from None
        data = pem
    try:
        return x509.load_pem_x509_certificate(data), key_pem
    except ValueError:
        raise Unreadable(f"{path} does not hold a valid PEM certificate "
                         f"(`openssl x509 -in {path} -noout -text` shows why)") from None


def _kubeconfig_key(data: bytes) -> bytes | None:

    doc = yaml.safe_load(data)
    current = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])
    user = next(u for u in doc["users"] if u["name"] == current["context"]["user"])
    encoded = user["user"].get("client-key-data")
    return base64.b64decode(encoded) if encoded else None


def _public_der(public: object) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_problem(ctx: Context, cert: x509.Certificate, key_path: str | None,
                 embedded: bytes | None, optional: bool = False) -> tuple[bool, str | None]:
    """(whether a key was compared, the problem found or None)."""
    if key_path is None and embedded is None:
        return False, None
    if key_path is not None:
        try:
            data = ctx.node.read_file(key_path)
        except FileNotFoundError:
            if optional:
                return False, None
            return True, f"its key {key_path} does not exist"
        except OSError as exc:
            return True, f"cannot read its key {key_path}: {exc.strerror or exc}"
        where = key_path
    else:
        data, where = embedded or b"", "the kubeconfig's client-key-data"
    try:
        private = serialization.load_pem_private_key(data, password=None,
                                                     unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return True, f"{where} is not a PEM private key"
    if _public_der(private.public_key()) != _public_der(cert.public_key()):
        return True, (f"{where} is not the key of this certificate (the public keys differ): "
                      "a renewal that made a new key must write both files")
    return True, None


def _ca_problem(ctx: Context, cert: x509.Certificate, ca_path: str) -> str | None:
    try:
        ca_cert, _ = read_cert(ctx, ca_path, "CA certificate")
    except Unreadable as exc:
        return f"cannot check who signed it: {exc}"
    if signed_by(cert, ca_cert):
        return None
    issuer = cert.issuer.rfc4514_string() or "(empty)"
    if cert.issuer == ca_cert.subject:
        return (f"it is not signed by the CA in {ca_path}: the issuer name ({issuer}) matches, "
                "but the signature does not verify, so it comes from another CA of the same "
                f"name (`openssl verify -CAfile {ca_path} <cert>` fails)")
    return (f"it is not signed by the CA in {ca_path} ({ca_cert.subject.rfc4514_string()}); "
            f"its issuer is {issuer}")


def _missing_names(info: dict, names: list[str]) -> list[str]:
    dns = {d.lower() for d in info["dns_names"]}
    ips = set()
    for ip in info["ip_addresses"]:
        ips.add(ipaddress.ip_address(ip))
    missing = []
    for name in names:
        try:
            if ipaddress.ip_address(str(name)) not in ips:
                missing.append(str(name))
        except ValueError:
            if str(name).lower() not in dns:
                missing.append(str(name))
    return missing


def _san_text(info: dict) -> str:
    parts = [f"DNS:{d}" for d in info["dns_names"]] + [f"IP:{ip}" for ip in info["ip_addresses"]]
    return ", ".join(parts) or "no SANs at all"


@checker("certs.valid")
def valid(ctx: Context, path: str, ca: str | None = None, names: list[str] | None = None,
          key: str | None = None) -> CheckResult:
    """The certificate at ``path`` is valid now, chains to ``ca`` (default: the kubeadm CA
    that signs it), lists every one of ``names`` among its SANs, and matches its key.

    ``key`` defaults to the ``.key`` beside a ``.crt`` when that file exists (and to the
    embedded client key for a kubeconfig). Every problem found is named in the detail.
    """
    if isinstance(names, str):
        names = [names]
    try:
        cert, embedded_key = read_cert(ctx, path)
    except Unreadable as exc:
        return CheckResult(False, str(exc))
    info = describe(_pem(cert))
    now = dt.datetime.now(dt.UTC)
    problems: list[str] = []
    if info["not_after"] <= now:
        problems.append(f"it expired {span(now - info['not_after'])} ago on {when(info['not_after'])}; "
                        + renew_hint(path))
    if info["not_before"] > now:
        problems.append(f"it is not valid yet: its validity starts in {span(info['not_before'] - now)} "
                        f"on {when(info['not_before'])}; " + renew_hint(path))
    ca_problem = _ca_problem(ctx, cert, ca or default_ca(path))
    if ca_problem:
        problems.append(ca_problem)
    if names:
        missing = _missing_names(info, [str(n) for n in names])
        if missing:
            problems.append(f"its SANs lack {', '.join(missing)} (it has {_san_text(info)})")
    key_path, optional = key, False
    if key_path is None and embedded_key is None and path.endswith(".crt"):
        key_path, optional = path[:-len(".crt")] + ".key", True
    compared, key_problem = _key_problem(ctx, cert, key_path, embedded_key if key is None else None,
                                         optional)
    if key_problem:
        problems.append(key_problem)
    if problems:
        return CheckResult(False, f"{path} is not valid: " + "; ".join(problems))
    left = info["not_after"] - now
    signer = ca or default_ca(path)
    return CheckResult(True, f"{path} (CN={info['subject_cn']}) is valid until {when(info['not_after'])} "
                             f"({span(left)} left), signed by {signer}"
                             + (f", SANs include {', '.join(map(str, names))}" if names else "")
                             + (", key matches" if compared else ""))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@checker("certs.expires_after")
def expires_after(ctx: Context, path: str, days: float) -> CheckResult:
    """The certificate at ``path`` stays valid for more than ``days`` days from now."""
    try:
        days = float(days)
    except (TypeError, ValueError):
        raise CheckError(f"certs.expires_after: days must be a number, got {days!r}",
                         hint="for example days: 30") from None
    try:
        cert, _ = read_cert(ctx, path)
    except Unreadable as exc:
        return CheckResult(False, str(exc))
    not_after = cert.not_valid_after_utc
    now = dt.datetime.now(dt.UTC)
    needed = now + dt.timedelta(days=float(days))
    if not_after <= now:
        return CheckResult(False, f"{path} expired {span(now - not_after)} ago on {when(not_after)}; "
                                  f"expected it valid for more than {days:g} days; " + renew_hint(path))
    if not_after <= needed:
        return CheckResult(False, f"{path} expires in {span(not_after - now)} on {when(not_after)}; "
                                  f"expected more than {days:g} days left; " + renew_hint(path))
    return CheckResult(True, f"{path} expires on {when(not_after)}, in {span(not_after - now)} "
                             f"(more than {days:g} days)")
