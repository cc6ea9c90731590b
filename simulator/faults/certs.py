"""Faults on certificates: re-sign one so that it has expired, with an unrelated CA, or
renewed for a validity of the scenario's choosing.

The certificate keeps its key, subject, SANs and usages, so only the dates or the
signature are wrong, as after a year without ``kubeadm certs renew`` or a certificate
copied from another cluster. A kubeconfig path re-signs its embedded client certificate.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from checkers.certs import default_ca, default_ca_key
from simulator.cluster import kubeadm, pki
from simulator.errors import CheckError
from simulator.registry import Context, fault


def _read(ctx: Context, path: str, what: str) -> bytes:
    try:
        return ctx.node.read_file(path)
    except FileNotFoundError:
        raise CheckError(f"{what} {path} does not exist on {ctx.node_name}",
                         hint=f"certificate faults need the kubeadm PKI under {kubeadm.PKI}") from None


def _is_kubeconfig(data: bytes) -> bool:
    return b"-----BEGIN CERTIFICATE-----" not in data


def _current(data: bytes) -> x509.Certificate:
    pem = pki.kubeconfig_client_cert(data) if _is_kubeconfig(data) else data
    return pki.load_cert(pem)


def _resign(ctx: Context, path: str, ca_cert: bytes, ca_key: bytes,
            not_before: dt.datetime, not_after: dt.datetime, to: str | None = None) -> None:
    data = _read(ctx, path, "certificate")
    dest = to or path
    if _is_kubeconfig(data):
        new = pki.reissue_kubeconfig_pem(data, ca_cert, ca_key, not_before, not_after)
        ctx.node.write_file(dest, new, pki.KUBECONFIG_MODE)
    else:
        new = pki.reissue_pem(data, ca_cert, ca_key, not_before, not_after)
        ctx.node.write_file(dest, new, pki.CERT_MODE)


@fault("certs.expire")
def expire(ctx: Context, path: str, days_ago: float = 1, ca: str | None = None,
           ca_key: str | None = None) -> None:
    """Re-sign ``path`` with the CA on disk so that it expired ``days_ago`` days ago.

    The certificate keeps its key, subject, SANs and usages and a 365-day validity;
    ``ca``/``ca_key`` default to the kubeadm CA that signs it.
    """
    if float(days_ago) <= 0:
        raise CheckError(f"certs.expire: days_ago must be positive, got {days_ago}",
                         hint="days_ago: 1 makes a certificate that expired yesterday")
    ca_path = ca or default_ca(path)
    key_path = ca_key or default_ca_key(ca_path)
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=float(days_ago))
    _resign(ctx, path, _read(ctx, ca_path, "CA certificate"), _read(ctx, key_path, "CA key"),
            not_after - pki.CERT_VALIDITY, not_after)


@fault("certs.renew")
def renew(ctx: Context, path: str, days: float, to: str | None = None, ca: str | None = None,
          ca_key: str | None = None) -> None:
    """Re-sign ``path`` with the CA on disk, valid from now for ``days`` days.

    The certificate keeps its key, subject, SANs and usages, as a renewal by an in-house
    script would; with ``to`` the renewed certificate is written there (its parent
    directory must exist) and ``path`` stays as it was. ``ca``/``ca_key`` default to the
    kubeadm CA that signs ``path``.
    """
    try:
        days = float(days)
    except (TypeError, ValueError):
        raise CheckError(f"certs.renew: days must be a number, got {days!r}", hint="days: 200") from None
    if days <= 0:
        raise CheckError(f"certs.renew: days must be positive, got {days:g}",
                         hint="use certs.expire for a certificate that has expired")
    ca_path = ca or default_ca(path)
    key_path = ca_key or default_ca_key(ca_path)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _resign(ctx, path, _read(ctx, ca_path, "CA certificate"), _read(ctx, key_path, "CA key"),
            now, now + dt.timedelta(days=days), to)


@fault("certs.wrong_ca")
def wrong_ca(ctx: Context, path: str, ca_name: str | None = None) -> None:
    """Re-sign ``path`` with a freshly made CA unrelated to the cluster's.

    The new CA is named like the real one (``ca_name`` overrides it), so the issuer looks
    right and only verifying the signature against the CA file shows the fault. Dates,
    key, subject, SANs and usages stay as they were.
    """
    current = _current(_read(ctx, path, "certificate"))
    if ca_name is None:
        real = pki.load_cert(_read(ctx, default_ca(path), "CA certificate"))
        names = real.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        ca_name = str(names[0].value) if names else "kubernetes"
    key = pki.new_key()
    ca_cert = pki.self_signed_ca(ca_name, key)
    _resign(ctx, path, pki.cert_pem(ca_cert), pki.key_pem(key),
            current.not_valid_before_utc, current.not_valid_after_utc)
