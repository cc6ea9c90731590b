"""The pure-Python snapshot reader against real etcd 3.5 snapshots and etcdutl."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import struct

import pytest
from hostnode import RealEtcd, etcdutl_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.bbolt import (
    KINDS,
    SnapshotFormatError,
    SnapshotInfo,
    crc32c,
    decode_key_value,
    read_snapshot,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def etcd_files(tmp_path_factory):
    """A real etcd with history (overwrites, deletes, a lease, a compaction, a large value),
    its snapshot and a raw copy of its member/snap/db."""
    work = tmp_path_factory.mktemp("etcd")
    etcd = RealEtcd(work)
    try:
        for i in range(300):
            etcd.put(f"/registry/configmaps/default/cm{i:03d}",
                     json.dumps({"kind": "ConfigMap", "metadata": {"name": f"cm{i:03d}"}, "data": {"x": "y" * 150}}))
        etcd.put("/registry/pods/default/web", json.dumps(
            {"kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
             "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}))
        etcd.put("/plain", "hello")
        etcd.put("/plain", "hello again")
        etcd.put("/binary", b"\x00\xff\x10k8s")
        etcd.put("/big", "z" * 20000)
        for i in range(0, 300, 7):
            etcd.delete(f"/registry/configmaps/default/cm{i:03d}")
        etcd.delete("/plain")
        etcd.put("/plain", "reborn")
        lease = etcd._post("/v3/lease/grant", {"TTL": 600})["ID"]
        etcd._post("/v3/kv/put", {"key": base64.b64encode(b"/leased").decode(),
                                   "value": base64.b64encode(b"v").decode(), "lease": lease})
        etcd.put("/registry/configmaps/default/cm001", "overwritten")
        rev = int(etcd._post("/v3/kv/range", {"key": base64.b64encode(b"/plain").decode()})["header"]["revision"])
        etcd._post("/v3/kv/compaction", {"revision": rev - 5, "physical": True})
        etcd.put("/after-compaction", "1")
        snap = etcd.save(work / "snap.db")
        listing = json.loads(etcd.ctl("get", "", "--prefix", "-w", "json").stdout)
        count = int(listing["count"])
        raw = work / "raw.db"
        shutil.copyfile(etcd.data_dir / "member" / "snap" / "db", raw)
    finally:
        etcd.stop()
    return {"snap": snap, "raw": raw, "listing": listing, "count": count, "lease": int(lease)}


@pytest.fixture(scope="module")
def snap_bytes(etcd_files) -> bytes:
    return etcd_files["snap"].read_bytes()


def _etcdutl(path) -> dict:
    done = etcdutl_status(path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_agrees_with_etcdutl(etcd_files, snap_bytes):
    expected = _etcdutl(etcd_files["snap"])
    info = read_snapshot(snap_bytes)
    assert info.hash == expected["hash"]
    assert info.revision == expected["revision"]
    assert info.total_keys == expected["totalKey"]
    assert info.total_size == expected["totalSize"]
    assert info.has_hash and info.file_size == len(snap_bytes) == info.total_size + 32
    assert {"key", "meta", "lease", "members"} <= set(info.buckets)


def test_raw_db_reads_like_etcdutl_when_the_hash_is_not_required(etcd_files):
    expected = _etcdutl(etcd_files["raw"])
    info = read_snapshot(etcd_files["raw"].read_bytes(), require_hash=False)
    assert not info.has_hash
    assert (info.hash, info.revision, info.total_keys, info.total_size) == (
        expected["hash"], expected["revision"], expected["totalKey"], expected["totalSize"])


def test_latest_state_equals_etcdctl_get(etcd_files, snap_bytes):
    latest = read_snapshot(snap_bytes).kv_latest()
    kvs = etcd_files["listing"]["kvs"]
    expected = {base64.b64decode(kv["key"]): kv for kv in kvs}
    assert set(latest) == set(expected)
    for key, kv in expected.items():
        got = latest[key]
        assert got.value == base64.b64decode(kv.get("value", ""))
        assert (got.create_revision, got.mod_revision, got.version) == (
            kv["create_revision"], kv["mod_revision"], kv["version"])
    assert latest[b"/leased"].lease == etcd_files["lease"]
    assert b"/registry/configmaps/default/cm007" not in latest
    assert latest[b"/plain"].value == b"reborn" and latest[b"/plain"].version == 1
    assert len(latest[b"/big"].value) == 20000


def test_live_keys_is_the_etcd_36_count(etcd_files, snap_bytes):
    info = read_snapshot(snap_bytes)
    assert info.live_keys == etcd_files["count"] == len(info.kv_latest())
    assert info.live_keys < info.total_keys


def test_iter_bucket_yields_keys_in_order(snap_bytes):
    info = read_snapshot(snap_bytes)
    keys = [k for k, _ in info.iter_bucket("key")]
    assert keys == sorted(keys) and len(keys) > 200
    meta = dict(info.iter_bucket(b"meta"))
    assert int.from_bytes(meta[b"consistent_index"], "big") == info.consistent_index > 0
    with pytest.raises(KeyError):
        info.iter_bucket("nope")


def test_crc32c_known_values():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    data = random.Random(5).randbytes(5000)
    assert crc32c(data) == crc32c(data[1234:], crc32c(data[:1234]))


def test_protobuf_decoder_reads_negative_and_unknown_fields():
    # key=1 "k", version=4 -> -1 as a 10-byte varint, unknown field 9 (varint) and 10 (fixed32)
    raw = b"\x0a\x01k" + b"\x20" + b"\xff" * 9 + b"\x01" + b"\x48\x05" + b"\x55abcd"
    kv = decode_key_value(raw)
    assert kv.key == b"k" and kv.version == -1
    with pytest.raises(SnapshotFormatError):
        decode_key_value(b"\x0a\x05ab")


# ---------------------------------------------------------------- failure kinds


def _kind(data: bytes, **kw) -> SnapshotFormatError:
    with pytest.raises(SnapshotFormatError) as caught:
        read_snapshot(data, **kw)
    return caught.value


def test_empty_file():
    assert _kind(b"").kind == "empty"


def test_raw_copy_of_member_snap_db_has_no_hash(etcd_files):
    err = _kind(etcd_files["raw"].read_bytes())
    assert err.kind == "no_hash" and "member/snap/db" in err.detail


def test_truncated_snapshots(snap_bytes):
    for size in (len(snap_bytes) - 1, len(snap_bytes) - 4096 - 32, 3 * 4096 + 32, 5000):
        assert _kind(snap_bytes[:size]).kind == "truncated", size


def test_random_bytes_are_not_bbolt():
    assert _kind(random.Random(1).randbytes(40000)).kind == "not_bbolt"
    assert _kind(b"hello world\n").kind == "not_bbolt"


def test_flipped_bit_in_meta_page_is_corrupted(snap_bytes):
    data = bytearray(snap_bytes)
    data[16 + 40] ^= 0x04  # meta 0: page count
    err = _kind(bytes(data))
    assert err.kind == "corrupted" and "meta page 0: checksum mismatch" in err.detail
    data = bytearray(snap_bytes)
    data[4096 + 16] ^= 0x01  # meta 1: magic
    err = _kind(bytes(data))
    assert err.kind == "corrupted" and "meta page 1: invalid magic" in err.detail


def _leaf_pages(body: bytes, page_size: int = 4096) -> list[int]:
    pages = []
    for pid in range(2, len(body) // page_size):
        header_id, flags, count, _ = struct.unpack_from("<QHHI", body, pid * page_size)
        if header_id == pid and flags == 0x02 and count > 5:
            pages.append(pid)
    return pages


@pytest.fixture(scope="module")
def free_pages(snap_bytes, tmp_path_factory) -> list[int]:
    """Pages of the snapshot that bbolt itself finds unreachable (stale copies, free space)."""
    path = tmp_path_factory.mktemp("free") / "nofree.db"
    path.write_bytes(_with_freelist(snap_bytes, []))
    return sorted(int(re.search(r"\d+", e)[0]) for e in _bbolt_errors(path))


@pytest.fixture(scope="module")
def live_leaves(snap_bytes, free_pages) -> list[int]:
    leaves = [p for p in _leaf_pages(snap_bytes[:-32]) if p not in free_pages]
    assert leaves
    return leaves


def test_flipped_bit_in_a_leaf_value_breaks_the_hash(snap_bytes, live_leaves):
    pid = live_leaves[-1]
    data = bytearray(snap_bytes)
    data[pid * 4096 + 4000] ^= 0x20
    assert _kind(bytes(data)).kind == "hash_mismatch"


def test_flipped_bit_in_a_leaf_element_is_corrupted(snap_bytes, live_leaves, etcd_files):
    for pid in live_leaves:
        data = bytearray(snap_bytes)
        data[pid * 4096 + 16 + 16 + 11] ^= 0x40  # element 1: ksize high byte
        err = _kind(bytes(data))
        assert err.kind == "corrupted", (pid, err)
    raw = bytearray(etcd_files["raw"].read_bytes())
    metas = [struct.unpack_from("<QQ", raw, base + 16 + 16) for base in (0, 4096)]  # (root, _) of each
    txids = [struct.unpack_from("<Q", raw, base + 16 + 48)[0] for base in (0, 4096)]
    pid = metas[txids.index(max(txids))][0]
    raw[pid * 4096 + 2] ^= 0x01  # the root page's header id
    err = _kind(bytes(raw), require_hash=False)
    assert err.kind == "corrupted" and f"page {pid}" in err.detail


def test_bytes_after_a_raw_db_are_not_a_snapshot(etcd_files):
    err = _kind(etcd_files["raw"].read_bytes() + b"junk" * 25)
    assert err.kind == "corrupted"


# ---------------------------------------------------------------- freelist consistency vs bbolt


def _with_freelist(snapshot: bytes, ids: list[int]) -> bytes:
    """The snapshot with an extra last page holding a freelist of ``ids``, metas resealed."""
    body = bytearray(snapshot[:-32])
    page_size = 4096
    pgid = struct.unpack_from("<Q", body, 16 + 40)[0]
    page = bytearray(page_size)
    struct.pack_into("<QHHI", page, 0, pgid, 0x10, len(ids), 0)
    struct.pack_into(f"<{len(ids)}Q", page, 16, *ids)
    body += page
    for meta in (16, page_size + 16):
        struct.pack_into("<QQ", body, meta + 32, pgid, pgid + 1)
        h = 0xCBF29CE484222325
        for byte in body[meta:meta + 56]:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        struct.pack_into("<Q", body, meta + 56, h)
    return bytes(body) + hashlib.sha256(body).digest()


def _bbolt_errors(path) -> set[str]:
    done = etcdutl_status(path)
    assert done.returncode != 0
    return set(re.findall(r"page \d+: [a-z ]+[a-z]", done.stderr))


def _our_errors(data: bytes) -> set[str]:
    err = _kind(data)
    assert err.kind == "corrupted"
    return set(re.findall(r"page \d+: [a-z ]+[a-z]", "\n".join(err.problems)))


def test_freelist_errors_match_bbolt_check(snap_bytes, free_pages, live_leaves, tmp_path):
    empty = _with_freelist(snap_bytes, [])
    assert free_pages, "the fixture history should leave stale pages behind"
    assert _our_errors(empty) == {f"page {p}: unreachable unfreed" for p in free_pages}

    free = free_pages
    reachable_leaf = live_leaves[0]
    broken = _with_freelist(snap_bytes, [free[0], free[0], reachable_leaf] + free[2:])
    path = tmp_path / "broken.db"
    path.write_bytes(broken)
    expected = _bbolt_errors(path)
    assert f"page {free[0]}: already freed" in expected
    assert f"page {reachable_leaf}: reachable freed" in expected
    if len(free) > 1:
        assert f"page {free[1]}: unreachable unfreed" in expected
    assert _our_errors(broken) == expected

    sound = _with_freelist(snap_bytes, free)
    path = tmp_path / "sound.db"
    path.write_bytes(sound)
    assert _etcdutl(path)["hash"] == read_snapshot(sound).hash


# ---------------------------------------------------------------- fuzzing: always a verdict


def _verdict(data: bytes, require_hash: bool = True) -> str:
    try:
        info = read_snapshot(data, require_hash=require_hash)
    except SnapshotFormatError as exc:
        assert exc.kind in KINDS
        return exc.kind
    assert isinstance(info, SnapshotInfo)
    info.kv_latest()
    return "ok"


FUZZ = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=bool(os.environ.get("CI")))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10 ** 9))
def test_fuzz_truncation(snap_bytes, cut):
    data = snap_bytes[:cut % (len(snap_bytes) + 1)]
    _verdict(data)
    _verdict(data, require_hash=False)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)),
                      min_size=1, max_size=8),
       require_hash=st.booleans())
def test_fuzz_bit_flips(snap_bytes, flips, require_hash):
    data = bytearray(snap_bytes)
    for offset, bit in flips:
        data[offset % len(data)] ^= 1 << bit
    _verdict(bytes(data), require_hash)


@FUZZ
@given(junk=st.binary(min_size=1, max_size=64), where=st.integers(min_value=0))
def test_fuzz_overwritten_structure(etcd_files, junk, where):
    data = bytearray(etcd_files["raw"].read_bytes())
    pages = len(data) // 4096
    offset = (where % pages) * 4096 + (where // pages) % 96
    data[offset:offset + len(junk)] = junk
    _verdict(bytes(data), require_hash=False)


@FUZZ
@given(data=st.binary(max_size=20000))
def test_fuzz_random_bytes(data):
    _verdict(data)


@FUZZ
@given(tail=st.binary(max_size=9000), size=st.sampled_from([1024, 4096, 8192, 65536]),
       flags=st.sampled_from([0x01, 0x02, 0x10, 0x00]))
def test_fuzz_valid_meta_then_random(tail, size, flags):
    """Random pages behind meta pages that pass every check reach the tree walker."""
    if len(tail) >= 16:
        tail = struct.pack("<QH", 2, flags) + tail[10:]
    body = bytearray(2 * size)
    for pid in (0, 1):
        base = pid * size
        struct.pack_into("<QHHI", body, base, pid, 0x04, 0, 0)
        struct.pack_into("<IIIIQQQQQ", body, base + 16, 0xED0CDAED, 2, size, 0, 2, 0,
                         0xFFFFFFFFFFFFFFFF, 2 + len(tail) // size + 1, pid)
        h = 0xCBF29CE484222325
        for byte in body[base + 16:base + 72]:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        struct.pack_into("<Q", body, base + 72, h)
    data = bytes(body) + tail + bytes(-len(tail) % size)
    _verdict(data, require_hash=False)
    _verdict(data + hashlib.sha256(data).digest())
