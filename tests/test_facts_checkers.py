"""etcd.fact against a real etcd static pod on an embedded node: each line of an answer file
is judged on what runs (the container's flags, the version etcd reports, the certificate it
serves from, its member list), read independently here with the node's own tools.

One etcd-only cluster serves the module; the tests that change etcd run last and wait for it.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from clusterkit import check, fault, wait_until
from conftest import needs_namespaces

from checkers.facts import parse_expiry, parse_version, read_answers
from simulator import registry
from simulator.cluster import kubeadm
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec
from simulator.errors import CheckError

pytestmark = [pytest.mark.slow, needs_namespaces]

ANSWER = "/opt/audit/etcd.txt"
PKI = "/etc/kubernetes/pki/etcd"


@pytest.fixture(scope="module")
def cluster():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("factchk"), lambda step: None)
    yield made
    driver.delete(made)


@pytest.fixture
def ctx(cluster):
    context = registry.Context(cluster)
    wait_until("etcd is healthy", lambda: check(context, "etcd.healthy").passed, timeout=60.0)
    return context


def write(ctx, text: str) -> None:
    ctx.run(["mkdir", "-p", "/opt/audit"]).check()
    ctx.node.write_file(ANSWER, text.encode())


def live(ctx) -> dict[str, str]:
    """The facts as a careful candidate reads them on the node."""
    status = json.loads(kubeadm.etcdctl(ctx.node, "endpoint", "status", "-w", "json").check().out)
    members = json.loads(kubeadm.etcdctl(ctx.node, "member", "list", "-w", "json").check().out)["members"]
    manifest = ctx.node.read_file(kubeadm.ETCD_MANIFEST).decode()

    def flag(name: str) -> str:
        line = next(ln for ln in manifest.splitlines() if f"--{name}=" in ln)
        return line.split("=", 1)[1].strip()

    end = ctx.run(["openssl", "x509", "-noout", "-enddate", "-in", flag("cert-file")]).check().out
    return {"version": status[0]["Status"]["version"], "advertise-client-urls": flag("advertise-client-urls"),
            "cert-file": flag("cert-file"), "key-file": flag("key-file"),
            "trusted-ca-file": flag("trusted-ca-file"), "cert-expiry": end.strip().split("=", 1)[1],
            "member-count": str(len(members))}


def facts(ctx) -> dict[str, object]:
    return {name: check(ctx, "etcd.fact", path=ANSWER, fact=name) for name in
            ("version", "advertise-client-urls", "cert-file", "key-file", "trusted-ca-file",
             "cert-expiry", "member-count")}


def test_answers_read_as_a_candidate_writes_them():
    text = "# etcd facts\nversion: \"3.5.16\"\nCert-Expiry =  Mar  4 16:05:12 2027 GMT   \nnot a line\nversion: v3\n"
    assert read_answers(text) == {"version": ["3.5.16", "v3"], "cert-expiry": ["Mar  4 16:05:12 2027 GMT"]}
    assert [parse_version(v) for v in ("3.5.16", "v3.5.16", "3.5.16-0", "etcd Version: 3.5.16", "3.5")] == \
        ["3.5.16", "3.5.16", "3.5.16", "3.5.16", None]
    moment = dt.datetime(2027, 3, 4, 16, 5, 12, tzinfo=dt.UTC)
    for text, precision in (("Mar  4 16:05:12 2027 GMT", "second"), ("notAfter=Mar  4 16:05:12 2027 GMT", "second"),
                            ("2027-03-04T16:05:12Z", "second"), ("2027-03-04T17:05:12+01:00", "second"),
                            ("2027-03-04 16:05:12", "second"), ("Thu Mar  4 16:05:12 UTC 2027", "second"),
                            ("Mar 04, 2027 16:05 UTC", "minute"), ("2027-03-04", "day")):
        found = parse_expiry(text)
        assert found is not None and found[1] == precision, text
        assert found[0] == moment.replace(**({"second": 0} if precision == "minute" else
                                             {"hour": 0, "minute": 0, "second": 0} if precision == "day" else {}))
    assert parse_expiry("next year") is None


def test_a_missing_file_or_line_earns_nothing(ctx):
    ctx.run(["rm", "-f", ANSWER]).check()
    result = check(ctx, "etcd.fact", path=ANSWER, fact="version")
    assert not result.passed and result.detail == f"there is no answer file at {ANSWER}"
    write(ctx, "version: 3.5.1\n")
    result = check(ctx, "etcd.fact", path=ANSWER, fact="member-count")
    assert not result.passed and "has no line 'member-count: ...'" in result.detail
    with pytest.raises(CheckError):
        check(ctx, "etcd.fact", path=ANSWER, fact="uptime")


def test_the_running_etcds_facts_pass_in_every_form_a_candidate_writes(ctx):
    want = live(ctx)
    write(ctx, "".join(f"{k}: {v}\n" for k, v in want.items()))
    assert all(r.passed for r in facts(ctx).values()), {k: r.detail for k, r in facts(ctx).items()}
    end = parse_expiry(want["cert-expiry"])[0]
    write(ctx, f"version: 'v{want['version']}'\nadvertise-client-urls: {want['advertise-client-urls']}/\n"
               f"cert-file: {want['cert-file']}  \nkey-file={want['key-file']}\n"
               f"trusted-ca-file: {want['trusted-ca-file']}\ncert-expiry: {end:%Y-%m-%dT%H:%M:%SZ}\n"
               f"member-count: {want['member-count']}\nmember-count: {want['member-count']}\n")
    assert all(r.passed for r in facts(ctx).values()), {k: r.detail for k, r in facts(ctx).items()}


def test_defaults_and_guesses_fail_and_say_what_runs(ctx):
    want = live(ctx)
    write(ctx, "version: 3.4.0\nadvertise-client-urls: https://127.0.0.1:2379\ncert-file: server.crt\n"
               "cert-expiry: Jan  1 00:00:00 2030 GMT\nmember-count: 1\nmember-count: 3\n")
    got = facts(ctx)
    assert f"reports version {want['version']}, not 3.4.0" in got["version"].detail
    assert f"advertises --advertise-client-urls={want['advertise-client-urls']}" in got["advertise-client-urls"].detail
    assert "is not an absolute path" in got["cert-file"].detail
    assert "expires" in got["cert-expiry"].detail and "not Jan  1 00:00:00 2030 GMT" in got["cert-expiry"].detail
    assert "gives member-count 2 times with different values" in got["member-count"].detail
    assert not any(r.passed for r in got.values())


def test_facts_follow_the_running_etcd_after_a_renewal_and_a_learner(ctx):
    """A certificate renewed into new files with its own validity, and an unstarted learner:
    the answers that were right before are wrong now, and the new ones pass."""
    before = live(ctx)
    fault(ctx, "files.copy", path=f"{PKI}/server.key", from_node="controlplane", to=f"{PKI}/server-2026.key")
    fault(ctx, "certs.renew", path=f"{PKI}/server.crt", days=123, to=f"{PKI}/server-2026.crt")
    renewed = check(ctx, "certs.valid", path=f"{PKI}/server-2026.crt", key=f"{PKI}/server-2026.key",
                    ca=f"{PKI}/ca.crt", names=["controlplane", "127.0.0.1"])
    assert renewed.passed, renewed.detail
    fault(ctx, "manifest.set", component="etcd", flag="cert-file", value=f"{PKI}/server-2026.crt")
    fault(ctx, "manifest.set", component="etcd", flag="key-file", value=f"{PKI}/server-2026.key")
    write(ctx, "".join(f"{k}: {v}\n" for k, v in before.items()))
    wait_until("etcd runs with the renewed certificate",
               lambda: check(ctx, "etcd.fact", path=ANSWER, fact="cert-file").detail.endswith(
                   "not /etc/kubernetes/pki/etcd/server.crt"), timeout=30)
    wait_until("etcd is healthy", lambda: check(ctx, "etcd.healthy").passed, timeout=30)
    kubeadm.etcdctl(ctx.node, "member", "add", "controlplane2", "--learner",
                    "--peer-urls=https://10.255.0.9:2380").check()
    got = facts(ctx)
    assert {k for k, r in got.items() if not r.passed} == {"cert-file", "key-file", "cert-expiry", "member-count"}
    assert "etcd lists 2 member(s), 1 of them learner(s)" in got["member-count"].detail
    now = live(ctx)
    assert now["cert-file"] == f"{PKI}/server-2026.crt" and now["member-count"] == "2"
    expires = parse_expiry(now["cert-expiry"])[0]
    assert abs(expires - dt.datetime.now(dt.UTC) - dt.timedelta(days=123)) < dt.timedelta(minutes=5)
    write(ctx, "".join(f"{k}: {v}\n" for k, v in now.items()))
    assert all(r.passed for r in facts(ctx).values()), {k: r.detail for k, r in facts(ctx).items()}
