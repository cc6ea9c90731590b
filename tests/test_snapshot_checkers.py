"""snapshot.* checkers on snapshots made by a real etcd 3.5, read through a real node filesystem."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hostnode import ETCD_BIN, RealEtcd, copy_into, etcdutl_status, host_context

from checkers.bbolt import read_snapshot
from checkers.snapshot import human_bytes, parse_status
from simulator import registry
from simulator.errors import CheckError

pytestmark = pytest.mark.slow

# values kube-apiserver v1.35.4 stored (protobuf), captured with etcdctl
STORED = json.loads((Path(__file__).parent / "data" / "stored-objects.json").read_text())
POD = {"kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "1"}},
       "spec": {"replicas": 3, "paused": False, "containers": [{"name": "nginx", "image": "nginx:1.25"}]}}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Snapshots from one etcd: before and after more writes, plus a raw db copy."""
    work = tmp_path_factory.mktemp("etcd")
    etcd = RealEtcd(work)
    try:
        etcd.put("/registry/pods/default/web", json.dumps(POD))
        etcd.put("/registry/pods/default/proto", b"k8s\x00\n\x09\n\x02v1\x12\x03Po")
        for key in ("/registry/deployments/billing/web", "/registry/secrets/billing/db"):
            etcd.put(key, base64.b64decode(STORED["values"][key]))
        etcd.put("/registry/notes/plain", "not json")
        etcd.put("/registry/notes/gone", "soon deleted")
        etcd.delete("/registry/notes/gone")
        early = etcd.save(work / "early.db")
        for i in range(20):
            etcd.put(f"/registry/configmaps/default/cm{i}", "x" * 100)
        snap = etcd.save(work / "snap.db")
        raw = work / "raw.db"
        shutil.copyfile(etcd.data_dir / "member" / "snap" / "db", raw)
        revision = json.loads(etcd.ctl("endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]["revision"]
        ctl_table = subprocess.run([str(ETCD_BIN / "etcdctl"), "snapshot", "status", "-w", "table", str(snap)],
                                   capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
    finally:
        etcd.stop()
    return {"early": early, "snap": snap, "raw": raw, "revision": revision,
            "ctl_table": ctl_table.stdout + ctl_table.stderr}


@pytest.fixture
def node_ctx(tmp_path, made):
    ctx, node = host_context(tmp_path / "node", state={"setup_revision": made["revision"]})
    copy_into(node, made["snap"], "/opt/backup/etcd.db")
    return ctx, node


def check(ctx, name, **params):
    fn = registry.get_checker(name)
    registry.check_params(fn, "checker", name, params)
    return fn(ctx, **params)


# ---------------------------------------------------------------- snapshot.valid


def test_valid_snapshot_passes_with_numbers(node_ctx, made):
    ctx, _ = node_ctx
    info = read_snapshot(made["snap"].read_bytes())
    result = check(ctx, "snapshot.valid", path="/opt/backup/etcd.db")
    assert result.passed
    assert f"revision {info.revision}" in result.detail and f"{info.live_keys} keys" in result.detail


def test_a_missing_snapshot_on_the_jump_host_says_to_copy_it_there(tmp_path):
    """The jump host has no etcdctl: the grade points to a copy, not to snapshot save."""
    ctx, node = host_context(tmp_path / "student")
    node.name = "student"
    ctx = ctx.on("student")
    detail = check(ctx, "snapshot.valid", path="/home/candidate/etcd.db").detail
    assert detail.startswith("no file at /home/candidate/etcd.db")
    assert "copy it there" in detail and "snapshot save" not in detail
    on_controlplane, _ = host_context(tmp_path / "controlplane")
    assert "(etcdctl snapshot save /opt/x.db)" in check(on_controlplane, "snapshot.valid",
                                                        path="/opt/x.db").detail


@pytest.mark.parametrize("case, expected", [
    ("missing", "no file at /opt/backup/etcd.db"),
    ("empty", "is empty (0 bytes)"),
    ("raw", "raw copy of member/snap/db"),
    ("truncated", "is truncated"),
    ("meta", "is corrupted"),
    ("changed", "was changed after it was saved"),
    ("text", "is not an etcd snapshot"),
    ("dir", "is a directory"),
])
def test_valid_tells_failures_apart(node_ctx, made, case, expected):
    ctx, node = node_ctx
    target = node.host_path("/opt/backup/etcd.db")
    data = made["snap"].read_bytes()
    if case == "missing":
        target.unlink()
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "raw":
        shutil.copyfile(made["raw"], target)
    elif case == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif case == "meta":
        target.write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])
    elif case == "changed":
        target.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    elif case == "text":
        target.write_bytes(b"Snapshot saved at /opt/backup/etcd.db\n")
    elif case == "dir":
        target.unlink()
        target.mkdir()
    result = check(ctx, "snapshot.valid", path="/opt/backup/etcd.db")
    assert not result.passed
    assert expected in result.detail, result.detail
    if case == "raw":
        assert "etcdctl snapshot save" in result.detail


# ---------------------------------------------------------------- snapshot.contains


def test_contains_key_and_value(node_ctx):
    ctx, _ = node_ctx
    ok = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/plain")
    assert ok.passed and "revision" in ok.detail
    assert check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/plain",
                 value="not json").passed
    wrong = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/plain", value="json")
    assert not wrong.passed and "'not json'" in wrong.detail and "expected 'json'" in wrong.detail


def test_contains_reports_missing_and_deleted_keys(node_ctx):
    ctx, _ = node_ctx
    missing = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/pods/default/db")
    assert not missing.passed and "is not in /opt/backup/etcd.db" in missing.detail
    gone = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/gone")
    assert not gone.passed and "was deleted at revision" in gone.detail


@pytest.mark.parametrize("field, equals, passed, words", [
    ("metadata.labels.app", "web", True, "'web'"),
    ("metadata.labels.app", None, True, "'web'"),
    ("metadata.labels.app", "db", False, "expected 'db'"),
    ("metadata.labels.tier", 1, True, "'1'"),
    ("spec.replicas", 3, True, "'3'"),
    ("spec.replicas", "3", True, "'3'"),
    ("spec.paused", False, True, "'false'"),
    ("spec.paused", 0, False, "expected '0'"),
    ("spec.containers.0.image", "nginx:1.25", True, "nginx:1.25"),
    ("spec.containers.1.image", None, False, "has no field spec.containers.1.image"),
    ("metadata.annotations", None, False, "has no field"),
])
def test_contains_json_field(node_ctx, field, equals, passed, words):
    ctx, _ = node_ctx
    result = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/pods/default/web",
                   json_field=field, equals=equals)
    assert result.passed is passed, result.detail
    assert words in result.detail


@pytest.mark.parametrize("key, field, equals, passed, words", [
    ("/registry/deployments/billing/web", "spec.replicas", 2, True, "'2'"),
    ("/registry/deployments/billing/web", "spec.template.spec.containers.0.image", "nginx:1.27", True, "nginx:1.27"),
    ("/registry/deployments/billing/web", "spec.strategy.rollingUpdate.maxSurge", "25%", True, "25%"),
    ("/registry/deployments/billing/web", "metadata.namespace", "billing", True, "'billing'"),
    ("/registry/deployments/billing/web", "spec.replicas", 3, False, "expected '3'"),
    ("/registry/deployments/billing/web", "spec.nothing", None, False, "has no field spec.nothing"),
    ("/registry/secrets/billing/db", "data.password", "czNjcjN0", True, "czNjcjN0"),
    ("/registry/secrets/billing/db", "type", "Opaque", True, "Opaque"),
])
def test_contains_json_field_of_objects_stored_as_protobuf(node_ctx, key, field, equals, passed, words):
    ctx, _ = node_ctx
    result = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key=key, json_field=field,
                   equals=equals)
    assert result.passed is passed, result.detail
    assert words in result.detail


def test_contains_json_field_of_an_unreadable_value(node_ctx):
    ctx, _ = node_ctx
    proto = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/pods/default/proto",
                  json_field="metadata.name")  # an envelope cut short
    assert not proto.passed and "cannot read metadata.name (truncated protobuf" in proto.detail
    text = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/plain",
                 json_field="metadata.name")
    assert not text.passed and "neither Kubernetes protobuf nor JSON" in text.detail


def test_contains_on_a_broken_file_says_why(node_ctx):
    ctx, node = node_ctx
    node.host_path("/opt/backup/etcd.db").write_bytes(b"")
    result = check(ctx, "snapshot.contains", path="/opt/backup/etcd.db", key="/registry/notes/plain")
    assert not result.passed and "empty" in result.detail


# ---------------------------------------------------------------- snapshot.taken_after


def test_taken_after(node_ctx, made):
    ctx, node = node_ctx
    assert check(ctx, "snapshot.taken_after", path="/opt/backup/etcd.db").passed
    copy_into(node, made["early"], "/opt/backup/etcd.db")
    old = check(ctx, "snapshot.taken_after", path="/opt/backup/etcd.db")
    assert not old.passed and "take a new snapshot" in old.detail
    ctx.state["other"] = 1
    assert check(ctx, "snapshot.taken_after", path="/opt/backup/etcd.db", state_key="other").passed
    with pytest.raises(CheckError):
        check(ctx, "snapshot.taken_after", path="/opt/backup/etcd.db", state_key="nothing")


# ---------------------------------------------------------------- snapshot.status_matches


def _answers(made) -> dict[str, str]:
    snap = made["snap"]
    out = {fmt: etcdutl_status(snap, fmt).stdout for fmt in ("table", "json", "simple")}
    out["etcdctl-table"] = made["ctl_table"]
    info = read_snapshot(snap.read_bytes())
    size = human_bytes(info.total_size)
    out["3.6-table"] = (
        "+----------+----------+------------+------------+---------+\n"
        "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE | VERSION |\n"
        "+----------+----------+------------+------------+---------+\n"
        f"| {info.hash:x} | {info.revision} | {info.live_keys} | {size} | 3.6.0 |\n"
        "+----------+----------+------------+------------+---------+\n")
    out["3.6-simple"] = f"{info.hash:x}, {info.revision}, {info.live_keys}, {size}, 3.6.0\n"
    out["3.6-json"] = json.dumps({"hash": info.hash, "revision": info.revision, "totalKey": info.live_keys,
                                  "totalSize": info.total_size, "version": "3.6.0"})
    return out


def test_status_answers_in_every_format_match(node_ctx, made):
    ctx, node = node_ctx
    answers = _answers(made)
    assert "Deprecated" in answers["etcdctl-table"]
    for name, text in answers.items():
        node.write_file("/root/status.txt", text.encode())
        result = check(ctx, "snapshot.status_matches", path="/opt/backup/etcd.db", answer_path="/root/status.txt")
        assert result.passed, (name, text, result.detail)


def test_status_answer_that_is_wrong(node_ctx, made):
    ctx, node = node_ctx
    info = read_snapshot(made["snap"].read_bytes())
    table = etcdutl_status(made["snap"], "table").stdout
    assert f" {info.revision} |" in table
    node.write_file("/root/status.txt", table.replace(f" {info.revision} |", f" {info.revision - 3} |").encode())
    result = check(ctx, "snapshot.status_matches", path="/opt/backup/etcd.db", answer_path="/root/status.txt")
    assert not result.passed
    assert f"revision is {info.revision - 3}, the snapshot's is {info.revision}" in result.detail

    early = etcdutl_status(made["early"], "json").stdout
    node.write_file("/root/status.txt", early.encode())
    result = check(ctx, "snapshot.status_matches", path="/opt/backup/etcd.db", answer_path="/root/status.txt")
    assert not result.passed and "hash is" in result.detail and "total keys is" in result.detail


def test_status_answer_missing_or_unreadable(node_ctx):
    ctx, node = node_ctx
    result = check(ctx, "snapshot.status_matches", path="/opt/backup/etcd.db", answer_path="/root/status.txt")
    assert not result.passed and "no answer file" in result.detail
    node.write_file("/root/status.txt", b"I took the snapshot\n")
    result = check(ctx, "snapshot.status_matches", path="/opt/backup/etcd.db", answer_path="/root/status.txt")
    assert not result.passed and "holds no snapshot status" in result.detail


def test_parse_status_reads_hex_and_sizes():
    table = ("| HASH | REVISION | TOTAL KEYS | TOTAL SIZE |\n"
             "| 8c150882 | 3377 | 2116 | 7.7 MB |\n")
    assert parse_status(table) == {"hash": 0x8C150882, "revision": 3377, "total_keys": 2116, "total_size": "7.7 MB"}
    assert parse_status("abc, 5, 9, 25 kB\n")["hash"] == 0xABC
    assert human_bytes(32768) == "33 kB" and human_bytes(3489792) == "3.5 MB" and human_bytes(9) == "9 B"
