"""Checkers of facts a learner writes down about the running etcd, one ``key: value`` line
each, compared with what actually runs: the etcd container's flags as the runtime started
it, the version etcd reports, the certificate it serves from, and its member list. Never a
default, so a line copied from the documentation without looking earns nothing.

One check per fact gives partial credit line by line. Values are read the way a candidate
would write them: a version with or without ``v``, a URL with or without a trailing slash,
an expiry as ``openssl x509 -enddate`` prints it, in ISO 8601, or as ``kubeadm certs
check-expiration`` prints it.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
import urllib.parse
from collections.abc import Callable

from cryptography import x509

from checkers.etcd import endpoint_status, serving_container
from simulator.cluster import kubeadm, staticpod
from simulator.errors import CheckError
from simulator.registry import CheckResult, Context, checker

# fact -> what the task calls it, for details
FACTS = {
    "version": "the version of the running etcd",
    "advertise-client-urls": "the client URL etcd advertises (--advertise-client-urls)",
    "cert-file": "the path of etcd's server certificate (--cert-file)",
    "key-file": "the path of etcd's server key (--key-file)",
    "trusted-ca-file": "the path of the CA etcd trusts for clients (--trusted-ca-file)",
    "cert-expiry": "the expiry (notAfter) of etcd's server certificate",
    "member-count": "the number of members in etcd's member list",
}

_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*(.*?)\s*$")


class _Unknown(Exception):
    """What runs cannot be read (etcd down, a file missing); ``str`` says why."""


def read_answers(text: str) -> dict[str, list[str]]:
    """The ``key: value`` (or ``key=value``) lines of ``text``: lower-case key -> every value
    given for it, in order, quotes around a value removed. Other lines are ignored."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        value = match[2]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        out.setdefault(match[1].lower(), []).append(value)
    return out


# ---------------------------------------------------------------- what runs


def _etcd(ctx: Context) -> staticpod.Container:
    running, why = serving_container(ctx, "etcd")
    if running is None:
        raise _Unknown(why)
    return running


def _flag(ctx: Context, name: str) -> tuple[str, staticpod.Container]:
    running = _etcd(ctx)
    value = staticpod.flag(running.argv, name)
    if value is None:
        raise _Unknown(f"the running etcd has no --{name} flag")
    return value, running


def _on_node(path: str, running: staticpod.Container) -> str:
    """The node path behind ``path`` inside the etcd container (itself when not mounted)."""
    host, _ = staticpod.data_dir_on_host(path, running.mounts)
    return host or posixpath.normpath(path)


def live_version(ctx: Context) -> str:
    """The version the etcd at kubeadm's endpoint reports (``endpoint status``)."""
    status, error = endpoint_status(ctx)
    if status is None:
        raise _Unknown(f"etcd does not answer: {error}")
    try:
        return str(status["version"])
    except KeyError:
        raise _Unknown(f"etcdctl endpoint status names no version: {status!r:.120}") from None


def live_members(ctx: Context) -> list[dict]:
    """Every member etcd lists, started or not, learners included."""
    done = kubeadm.etcdctl(ctx.node, "member", "list", "-w", "json", "--dial-timeout=2s",
                           "--command-timeout=3s", timeout=15)
    if not done.ok:
        raise _Unknown(f"etcd does not list its members: {(done.err or done.out).strip()[-200:]}")
    return list(json.loads(done.out).get("members") or [])


def live_not_after(ctx: Context) -> tuple[dt.datetime, str]:
    """(notAfter of the certificate etcd serves, its path): the file its --cert-file names."""
    path, running = _flag(ctx, "cert-file")
    on_node = _on_node(path, running)
    try:
        data = ctx.node.read_file(on_node)
    except OSError as exc:
        raise _Unknown(f"cannot read etcd's server certificate {on_node}: {exc.strerror or exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise _Unknown(f"{on_node} does not hold a PEM certificate") from None
    return cert.not_valid_after_utc, path


# ---------------------------------------------------------------- reading answers


def parse_version(text: str) -> str | None:
    """``3.5.16`` from ``3.5.16``, ``v3.5.16``, ``etcd Version: 3.5.16`` or the image tag
    ``3.5.16-0``; None when it is no full version."""
    match = re.fullmatch(r"(?:etcd\s+version\s*:?\s*)?v?(\d+\.\d+\.\d+)(?:-\d+)?", text.strip(), re.IGNORECASE)
    return match[1] if match else None


def _url_set(text: str) -> set[str] | None:
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            url = urllib.parse.urlsplit(part)
            port = url.port
        except ValueError:
            return None
        if not url.scheme or not url.hostname:
            return None
        out.add(f"{url.scheme.lower()}://{url.hostname.lower()}" + (f":{port}" if port else "")
                + url.path.rstrip("/"))
    return out or None


_DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("%b %d %H:%M:%S %Y %Z", "second"),    # openssl: Mar  4 16:05:12 2027 GMT
    ("%b %d %H:%M:%S %Y", "second"),
    ("%a %b %d %H:%M:%S %Z %Y", "second"),  # date: Thu Mar  4 16:05:12 UTC 2027
    ("%a %b %d %H:%M:%S %Y %Z", "second"),
    ("%b %d, %Y %H:%M %Z", "minute"),       # kubeadm certs check-expiration: Mar 04, 2027 16:05 UTC
    ("%Y-%m-%d %H:%M:%S %Z", "second"),
    ("%Y-%m-%d %H:%M %Z", "minute"),
    ("%Y-%m-%d", "day"),
)


def parse_expiry(text: str) -> tuple[dt.datetime, str] | None:
    """(moment in UTC, precision: second, minute or day) of an expiry written as openssl,
    ``date``, ``kubeadm certs check-expiration`` or ISO 8601 print it; None otherwise.
    A time without a zone is UTC, as on the node."""
    value = " ".join(text.strip().split())
    value = re.sub(r"^notafter\s*=\s*", "", value, flags=re.IGNORECASE)
    if not value:
        return None
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = dt.datetime.fromisoformat(iso)
    except ValueError:
        moment = None
    if moment is not None and re.search(r"\d[T ]\d", value):
        precision = "second" if re.search(r"\d:\d\d:\d\d", value) else "minute"
        return _utc(moment), precision
    for fmt, precision in _DATE_FORMATS:
        zoned = value
        if "%Z" in fmt:
            zoned = re.sub(r"\b(GMT|UTC|Z)\b", "UTC", value)
        try:
            return _utc(dt.datetime.strptime(zoned, fmt.replace("%Z", "UTC"))), precision
        except ValueError:
            continue
    return None


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _truncate(moment: dt.datetime, precision: str) -> dt.datetime:
    if precision == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if precision == "minute":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


def _openssl(moment: dt.datetime) -> str:
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


# ---------------------------------------------------------------- comparing


def _judge_version(ctx: Context, answer: str) -> CheckResult:
    live = live_version(ctx)
    given = parse_version(answer)
    if given is None:
        return CheckResult(False, f"{answer!r} is not a version such as {live}")
    if given != live:
        return CheckResult(False, f"the running etcd reports version {live}, not {given}")
    return CheckResult(True, f"the running etcd reports version {live}")


def _judge_urls(ctx: Context, answer: str) -> CheckResult:
    live, _ = _flag(ctx, "advertise-client-urls")
    given = _url_set(answer)
    if given is None:
        return CheckResult(False, f"{answer!r} is not a URL such as https://<address>:2379")
    if given != _url_set(live):
        return CheckResult(False, f"the running etcd advertises --advertise-client-urls={live}, not {answer} "
                                  "(the URLs it listens on, --listen-client-urls, are another flag)")
    return CheckResult(True, f"the running etcd advertises {live}")


def _judge_path(flag: str) -> Callable[[Context, str], CheckResult]:
    def judge(ctx: Context, answer: str) -> CheckResult:
        live, running = _flag(ctx, flag)
        if not answer.startswith("/"):
            return CheckResult(False, f"{answer!r} is not an absolute path")
        given = posixpath.normpath(answer)
        if given not in {posixpath.normpath(live), _on_node(live, running)}:
            return CheckResult(False, f"the running etcd has --{flag}={live}, not {answer}")
        return CheckResult(True, f"the running etcd has --{flag}={live}")
    return judge


def _judge_expiry(ctx: Context, answer: str) -> CheckResult:
    not_after, path = live_not_after(ctx)
    given = parse_expiry(answer)
    if given is None:
        return CheckResult(False, f"{answer!r} is not a date as openssl prints it ({_openssl(not_after)}) "
                                  f"or in ISO 8601 ({not_after:%Y-%m-%dT%H:%M:%SZ})")
    moment, precision = given
    if _truncate(moment, precision) != _truncate(not_after, precision):
        return CheckResult(False, f"etcd serves {path}, which expires {_openssl(not_after)}, not "
                                  f"{answer.strip()}: read the certificate that --cert-file names")
    return CheckResult(True, f"etcd serves {path}, which expires {_openssl(not_after)}")


def _judge_members(ctx: Context, answer: str) -> CheckResult:
    members = live_members(ctx)
    if not re.fullmatch(r"\d+", answer.strip()):
        return CheckResult(False, f"{answer!r} is not a whole number")
    learners = sum(1 for m in members if m.get("isLearner"))
    listed = f"{len(members)} member(s)" + (f", {learners} of them learner(s)" if learners else "")
    if int(answer) != len(members):
        return CheckResult(False, f"etcd lists {listed} (etcdctl member list), not {int(answer)}")
    return CheckResult(True, f"etcd lists {listed}")


_JUDGES: dict[str, Callable[[Context, str], CheckResult]] = {
    "version": _judge_version,
    "advertise-client-urls": _judge_urls,
    "cert-file": _judge_path("cert-file"),
    "key-file": _judge_path("key-file"),
    "trusted-ca-file": _judge_path("trusted-ca-file"),
    "cert-expiry": _judge_expiry,
    "member-count": _judge_members,
}


@checker("etcd.fact")
def fact(ctx: Context, path: str, fact: str, key: str | None = None) -> CheckResult:
    """The answer file ``path`` on the node gives ``fact`` about the running etcd correctly,
    on a line ``KEY: value`` (``key`` defaults to the fact's name).

    Facts: ``version``, ``advertise-client-urls``, ``cert-file``, ``key-file``,
    ``trusted-ca-file``, ``cert-expiry`` and ``member-count``. A key given twice with
    different values fails: one guess per line.
    """
    if fact not in _JUDGES:
        raise CheckError(f"etcd.fact: unknown fact {fact!r}", hint=f"facts: {', '.join(FACTS)}")
    key = key or fact
    try:
        text = ctx.node.read_file(path).decode(errors="replace")
    except FileNotFoundError:
        return CheckResult(False, f"there is no answer file at {path}")
    except IsADirectoryError:
        return CheckResult(False, f"{path} is a directory, expected the answer file")
    except OSError as exc:
        return CheckResult(False, f"cannot read {path}: {exc.strerror or exc}")
    values = read_answers(text).get(key.lower(), [])
    if not values:
        return CheckResult(False, f"{path} has no line '{key}: ...' giving {FACTS[fact]}")
    if len(set(values)) > 1:
        return CheckResult(False, f"{path} gives {key} {len(values)} times with different values "
                                  f"({', '.join(repr(v) for v in values[:4])}): write one line per key")
    if not values[0]:
        return CheckResult(False, f"the line '{key}:' in {path} is empty")
    try:
        return _JUDGES[fact](ctx, values[0])
    except _Unknown as exc:
        return CheckResult(False, f"cannot tell {FACTS[fact]}: {exc}")
