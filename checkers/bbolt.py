"""A pure-Python reader for etcd snapshot files: bbolt pages, the mvcc key space, the hash.

Everything here is a pure function over bytes. :func:`read_snapshot` either returns a
:class:`SnapshotInfo` or raises :class:`SnapshotFormatError` whose ``kind`` says what is
wrong with the file; no other exception escapes, whatever the input (truncated, bit-flipped,
random), and the work is bounded by the size of the input.

What it verifies mirrors ``etcdutl snapshot status``: both meta pages (magic, version,
FNV-1a checksum), the page tree of every bucket (bounds, page types, each page referenced
once, no cycles, keys in order), the freelist against the reachable pages ("page N: already
freed", "page N: unreachable unfreed", as bbolt's ``tx.Check`` words it), and the trailing
sha256 that ``etcdctl snapshot save`` appends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Iterator

KINDS = ("empty", "no_hash", "hash_mismatch", "truncated", "corrupted", "not_bbolt")

MAGIC = 0xED0CDAED
VERSION = 2
SHA256_SIZE = 32
NO_FREELIST = 0xFFFFFFFFFFFFFFFF

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF_FLAG = 0x01

_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQQ")  # magic version pageSize flags root sequence freelist pgid txid checksum
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
_BUCKET_HEADER = struct.Struct("<QQ")  # root, sequence
_PAGE_HEADER_SIZE = 16
_ELEMENT_SIZE = 16
_META_SIZE = _META.size
_MAX_DEPTH = 64
_MAX_ERRORS = 1000
_SHOWN_ERRORS = 10


class SnapshotFormatError(ValueError):
    """The file is not a sound etcd snapshot; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, kind: str, detail: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.problems = problems or (detail,)


@dataclasses.dataclass(frozen=True)
class KeyValue:
    """One ``mvccpb.KeyValue`` as etcd stores it in the ``key`` bucket."""

    key: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


# ---------------------------------------------------------------- CRC-32C (Castagnoli)

_CASTAGNOLI_REFLECTED = 0x82F63B78


def _byte_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return table


_T8 = _byte_table()
_wide_tables: tuple[list[int], list[int], list[int], list[int]] | None = None


def _tables64() -> tuple[list[int], list[int], list[int], list[int]]:
    """Four 65536-entry tables that fold eight input bytes per step (built on first use)."""
    global _wide_tables
    if _wide_tables is None:
        shifted = [_T8]
        for _ in range(7):
            prev = shifted[-1]
            shifted.append([(c >> 8) ^ _T8[c & 0xFF] for c in prev])

        def pair(lo: list[int], hi: list[int]) -> list[int]:
            return [a ^ b for b in hi for a in lo]

        _wide_tables = (pair(shifted[7], shifted[6]), pair(shifted[5], shifted[4]),
                        pair(shifted[3], shifted[2]), pair(shifted[1], shifted[0]))
    return _wide_tables


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``; Go's ``crc32.Update``."""
    crc ^= 0xFFFFFFFF
    n = len(data)
    words = n // 8
    if words >= 64:
        a, b, c, d = _tables64()
        for w in struct.unpack_from(f"<{words}Q", data):
            x = crc ^ w
            crc = a[x & 0xFFFF] ^ b[(x >> 16) & 0xFFFF] ^ c[(x >> 32) & 0xFFFF] ^ d[x >> 48]
        start = words * 8
    else:
        start = 0
    table = _T8
    for byte in data[start:]:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


# ---------------------------------------------------------------- protobuf and revisions


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise SnapshotFormatError("corrupted", "a stored key-value record has a broken varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_key_value(data: bytes) -> KeyValue:
    """Decode an ``mvccpb.KeyValue`` protobuf; SnapshotFormatError("corrupted") if malformed."""
    fields: dict[int, int | bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
            fields[number] = _int64(value)
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise SnapshotFormatError("corrupted", "a stored key-value record is cut short")
            fields[number] = data[pos:pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise SnapshotFormatError("corrupted", f"a stored key-value record has wire type {wire}")
        if pos > end:
            raise SnapshotFormatError("corrupted", "a stored key-value record is cut short")

    def num(n: int) -> int:
        v = fields.get(n, 0)
        return v if isinstance(v, int) else 0

    def raw(n: int) -> bytes:
        v = fields.get(n, b"")
        return v if isinstance(v, bytes) else b""

    return KeyValue(key=raw(1), create_revision=num(2), mod_revision=num(3), version=num(4),
                    value=raw(5), lease=num(6))


def parse_revision(key: bytes) -> tuple[int, int, bool]:
    """(main, sub, tombstone) of a ``key`` bucket key: 8-byte BE main, '_', 8-byte BE sub, 't'?"""
    if len(key) not in (17, 18) or key[8:9] != b"_" or (len(key) == 18 and key[17:] != b"t"):
        raise SnapshotFormatError("corrupted", f"the key bucket holds {key[:24]!r}, which is not a revision")
    return int.from_bytes(key[:8], "big"), int.from_bytes(key[9:17], "big"), len(key) == 18


# ---------------------------------------------------------------- the result


Element = tuple[bytes, bytes | None]


class SnapshotInfo:
    """What ``etcdutl snapshot status`` reports, plus access to the buckets and the keys.

    ``total_keys`` counts every key/value pair in every bucket (etcd 3.5's TOTAL KEYS);
    ``live_keys`` counts the etcd keys alive in the latest state (etcd 3.6's TOTAL KEYS).
    ``total_size`` is page count x page size; ``hash`` is the CRC-32C etcdutl prints.
    """

    def __init__(self, *, buckets: dict[bytes, list[Element]], page_size: int, page_count: int,
                 txid: int, file_size: int, has_hash: bool) -> None:
        self._buckets = buckets
        self.page_size = page_size
        self.page_count = page_count
        self.txid = txid
        self.file_size = file_size
        self.has_hash = has_hash
        self.total_size = page_count * page_size
        self.buckets: tuple[str, ...] = tuple(n.decode(errors="replace") for n in buckets)
        parts: list[bytes] = []
        total = 0
        for name, elements in buckets.items():
            parts.append(name)
            for k, v in elements:
                parts.append(k)
                if v is not None:
                    parts.append(v)
            total += len(elements)
        self.hash = crc32c(b"".join(parts))
        self.total_keys = total
        keys = buckets.get(b"key", [])
        self.revision = parse_revision(keys[-1][0])[0] if keys else 0
        self._latest = self._compute_latest()
        self.live_keys = len(self._latest)
        meta = dict(buckets.get(b"meta", []))
        self.consistent_index = _be_u64(meta.get(b"consistent_index"))
        self.term = _be_u64(meta.get(b"term"))
        version = meta.get(b"storageVersion")
        self.storage_version = version.decode(errors="replace") if version else ""

    def iter_bucket(self, name: str | bytes) -> Iterator[Element]:
        """(key, value) pairs of bucket ``name`` in key order; value None for a nested bucket.

        Raises KeyError if the snapshot has no such bucket.
        """
        raw = name.encode() if isinstance(name, str) else name
        return iter(self._buckets[raw])

    def kv_latest(self) -> dict[bytes, KeyValue]:
        """Each etcd key's latest version, deleted keys left out (the state a restore serves)."""
        return dict(self._latest)

    def _compute_latest(self) -> dict[bytes, KeyValue]:
        latest: dict[bytes, KeyValue] = {}
        for k, v in self._buckets.get(b"key", []):
            _, _, tombstone = parse_revision(k)
            kv = decode_key_value(v or b"")
            if tombstone or kv.version == 0:
                latest.pop(kv.key, None)
            else:
                latest[kv.key] = kv
        return latest

    def __repr__(self) -> str:
        return (f"SnapshotInfo(hash={self.hash:08x}, revision={self.revision}, "
                f"total_keys={self.total_keys}, live_keys={self.live_keys}, "
                f"total_size={self.total_size})")


def _be_u64(value: bytes | None) -> int:
    return int.from_bytes(value, "big") if value and len(value) == 8 else 0


# ---------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class _Meta:
    magic: int
    version: int
    page_size: int
    flags: int
    root: int
    sequence: int
    freelist: int
    pgid: int
    txid: int
    checksum: int
    computed: int
    page_flags: int

    def problem(self) -> str | None:
        if self.magic != MAGIC:
            return "invalid magic"
        if self.version != VERSION:
            return f"unsupported version {self.version}"
        if self.checksum != self.computed:
            return "checksum mismatch"
        if not self.page_flags & META_PAGE:
            return "not marked as a meta page"
        return None


def _read_meta(body: bytes, offset: int) -> _Meta | None:
    start = offset + _PAGE_HEADER_SIZE
    if len(body) < start + _META_SIZE:
        return None
    fields = _META.unpack_from(body, start)
    page_flags = _PAGE_HEADER.unpack_from(body, offset)[1]
    computed = _fnv1a64(body[start:start + _META_SIZE - 8])
    return _Meta(*fields, computed=computed, page_flags=page_flags)


def _sane_page_size(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


class _Walker:
    """Walks the page tree of every bucket, recording reachable pages and problems."""

    def __init__(self, body: bytes, page_size: int, pgid: int) -> None:
        self.body = body
        self.ps = page_size
        self.pgid = pgid
        self.reachable: dict[int, int] = {0: 0, 1: 1}
        self.tree_pages: list[int] = []
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)

    def page(self, pid: int) -> tuple[int, int, int, int] | None:
        """(offset, flags, count, end) of page ``pid`` after its bounds checks, else None."""
        if pid >= self.pgid or pid < 2:
            self.error(f"page {pid}: out of bounds: {self.pgid}")
            return None
        offset = pid * self.ps
        header_id, flags, count, overflow = _PAGE_HEADER.unpack_from(self.body, offset)
        if header_id != pid:
            self.error(f"page {pid}: header says page {header_id}")
            return None
        if pid + overflow >= self.pgid:
            self.error(f"page {pid}: overflow {overflow} runs past the last page {self.pgid - 1}")
            return None
        for i in range(overflow + 1):
            if pid + i in self.reachable:
                self.error(f"page {pid + i}: multiple references")
                return None
        for i in range(overflow + 1):
            self.reachable[pid + i] = pid
        self.tree_pages.append(pid)
        return offset, flags, count, offset + (overflow + 1) * self.ps

    def tree(self, root: int, out: list[tuple[int, bytes, bytes]], depth: int = 0) -> None:
        """Append (flags, key, value) of every leaf element under page ``root`` in order."""
        if depth > _MAX_DEPTH:
            self.error(f"page {root}: the tree is deeper than {_MAX_DEPTH} levels")
            return
        found = self.page(root)
        if found is None:
            return
        offset, flags, count, end = found
        if flags & LEAF_PAGE:
            self.leaf(self.body, offset, count, end, out, f"page {root}")
        elif flags & BRANCH_PAGE:
            table_end = offset + _PAGE_HEADER_SIZE + count * _ELEMENT_SIZE
            if table_end > end:
                self.error(f"page {root}: {count} elements do not fit in the page")
                return
            children = []
            for i in range(count):
                eoff = offset + _PAGE_HEADER_SIZE + i * _ELEMENT_SIZE
                pos, ksize, child = _BRANCH_ELEMENT.unpack_from(self.body, eoff)
                if eoff + pos + ksize > end:
                    self.error(f"page {root}: element {i} points outside the page")
                    return
                children.append(child)
            for child in children:
                self.tree(child, out, depth + 1)
        else:
            self.error(f"page {root}: invalid type: {_type_name(flags)}")

    def leaf(self, buf: bytes, offset: int, count: int, end: int,
             out: list[tuple[int, bytes, bytes]], where: str) -> None:
        table_end = offset + _PAGE_HEADER_SIZE + count * _ELEMENT_SIZE
        if table_end > end:
            self.error(f"{where}: {count} elements do not fit in the page")
            return
        unpack = _LEAF_ELEMENT.unpack_from
        for i in range(count):
            eoff = offset + _PAGE_HEADER_SIZE + i * _ELEMENT_SIZE
            eflags, pos, ksize, vsize = unpack(buf, eoff)
            kstart = eoff + pos
            vstart = kstart + ksize
            vend = vstart + vsize
            if vend > end:
                self.error(f"{where}: element {i} points outside the page")
                return
            out.append((eflags, buf[kstart:vstart], buf[vstart:vend]))

    def bucket(self, value: bytes, where: str, depth: int = 0) -> list[Element]:
        """The (key, value) pairs of the bucket whose header is ``value``."""
        if len(value) < _BUCKET_HEADER.size:
            self.error(f"{where}: bucket header is {len(value)} bytes")
            return []
        if depth > _MAX_DEPTH:
            self.error(f"{where}: buckets nested deeper than {_MAX_DEPTH} levels")
            return []
        root, _ = _BUCKET_HEADER.unpack_from(value, 0)
        raw: list[tuple[int, bytes, bytes]] = []
        if root == 0:
            inline = value[_BUCKET_HEADER.size:]
            if len(inline) < _PAGE_HEADER_SIZE:
                self.error(f"{where}: inline bucket page is {len(inline)} bytes")
                return []
            _, flags, count, _ = _PAGE_HEADER.unpack_from(inline, 0)
            if not flags & LEAF_PAGE:
                self.error(f"{where}: inline page has invalid type: {_type_name(flags)}")
                return []
            self.leaf(inline, 0, count, len(inline), raw, f"{where} (inline)")
        else:
            self.tree(root, raw)
        elements: list[Element] = []
        previous: bytes | None = None
        for eflags, k, v in raw:
            if previous is not None and k <= previous:
                self.error(f"{where}: keys out of order after {previous[:40]!r}")
                break
            previous = k
            if eflags & BUCKET_LEAF_FLAG:
                self.bucket(v, f"{where}/{k[:40]!r}", depth + 1)
                elements.append((k, None))
            else:
                elements.append((k, v))
        return elements


def _type_name(flags: int) -> str:
    names = {BRANCH_PAGE: "branch", LEAF_PAGE: "leaf", META_PAGE: "meta", FREELIST_PAGE: "freelist"}
    return names.get(flags, f"unknown<{flags:02x}>")


def _freelist_ids(walker: _Walker, pid: int) -> list[int] | None:
    body, ps = walker.body, walker.ps
    if pid < 2 or pid >= walker.pgid:
        walker.error(f"freelist page {pid}: out of bounds: {walker.pgid}")
        return None
    offset = pid * ps
    header_id, flags, count, overflow = _PAGE_HEADER.unpack_from(body, offset)
    if not flags & FREELIST_PAGE:
        walker.error(f"invalid freelist page: {pid}, page type is {_type_name(flags)}")
        return None
    if header_id != pid or pid + overflow >= walker.pgid:
        walker.error(f"freelist page {pid}: broken header")
        return None
    for i in range(overflow + 1):
        walker.reachable[pid + i] = pid
    start = offset + _PAGE_HEADER_SIZE
    end = offset + (overflow + 1) * ps
    if count == 0xFFFF:
        if start + 8 > end:
            walker.error(f"freelist page {pid}: broken count")
            return None
        count = struct.unpack_from("<Q", body, start)[0]
        start += 8
    if count > (end - start) // 8:
        walker.error(f"freelist page {pid}: {count} ids do not fit in the page")
        return None
    return list(struct.unpack_from(f"<{count}Q", body, start))


def read_snapshot(data: bytes, *, require_hash: bool = True) -> SnapshotInfo:
    """Verify and read an etcd snapshot file (or, with ``require_hash=False``, a bbolt db).

    Returns the status ``etcdutl snapshot status`` would print and the buckets' contents.
    Raises SnapshotFormatError with kind ``empty``, ``not_bbolt``, ``truncated``,
    ``corrupted``, ``hash_mismatch`` or ``no_hash`` (a whole number of pages without the
    sha256 trailer: a raw copy of ``member/snap/db``); never any other exception.
    """
    try:
        return _read(bytes(data), require_hash)
    except SnapshotFormatError:
        raise
    except (struct.error, IndexError, KeyError, TypeError, ValueError, OverflowError, MemoryError,
            RecursionError) as exc:
        raise SnapshotFormatError("corrupted", f"unreadable structure ({exc})") from None


def _read(data: bytes, require_hash: bool) -> SnapshotInfo:
    size = len(data)
    if size == 0:
        raise SnapshotFormatError("empty", "the file is empty (0 bytes)")
    has_hash = size % 512 == SHA256_SIZE
    body = data[:-SHA256_SIZE] if has_hash else data

    meta0 = _read_meta(body, 0)
    if meta0 is None or (meta0.magic != MAGIC and _read_meta(body, 4096) is None):
        raise SnapshotFormatError("not_bbolt", f"{size} bytes with no bbolt meta page: not an etcd snapshot")
    page_size = meta0.page_size if meta0.problem() is None else 4096
    if not _sane_page_size(page_size):
        raise SnapshotFormatError("corrupted", f"meta page 0: impossible page size {page_size}")
    meta1 = _read_meta(body, page_size)
    if meta1 is None:
        if meta0.problem() is None:
            raise SnapshotFormatError(
                "truncated", f"the file ends after {len(body)} bytes, before the second meta page")
        raise SnapshotFormatError("not_bbolt", f"{size} bytes with no valid bbolt meta page")
    problems = [(i, m.problem()) for i, m in enumerate((meta0, meta1))]
    if all(p for _, p in problems):
        if meta0.magic != MAGIC and meta1.magic != MAGIC:
            raise SnapshotFormatError("not_bbolt", f"{size} bytes with no bbolt meta page: not an etcd snapshot")
        raise SnapshotFormatError("corrupted", "; ".join(f"meta page {i}: {p}" for i, p in problems))
    bad = [f"meta page {i}: {p}" for i, p in problems if p]
    if bad:
        raise SnapshotFormatError("corrupted", "; ".join(bad))
    if meta1.page_size != page_size:
        raise SnapshotFormatError("corrupted", "the two meta pages disagree on the page size")
    meta = meta1 if meta1.txid > meta0.txid else meta0

    needed = meta.pgid * page_size
    if meta.pgid < 2:
        raise SnapshotFormatError("corrupted", f"meta page: page count {meta.pgid} is below 2")
    if needed > len(body):
        raise SnapshotFormatError(
            "truncated",
            f"the database needs {meta.pgid} pages of {page_size} bytes ({needed} bytes) "
            f"but the file holds only {len(body)} bytes")

    walker = _Walker(body, page_size, meta.pgid)
    freed: set[int] = set()
    if meta.freelist != NO_FREELIST:
        ids = _freelist_ids(walker, meta.freelist)
        for pid in ids or []:
            if pid in freed:
                walker.error(f"page {pid}: already freed")
            freed.add(pid)
    top: list[tuple[int, bytes, bytes]] = []
    walker.tree(meta.root, top)
    buckets: dict[bytes, list[Element]] = {}
    previous: bytes | None = None
    for eflags, name, value in top:
        if previous is not None and name <= previous:
            walker.error(f"root bucket: keys out of order after {previous[:40]!r}")
            break
        previous = name
        if not eflags & BUCKET_LEAF_FLAG:
            walker.error(f"top-level key {name[:40]!r} is not a bucket")
            continue
        buckets[name] = walker.bucket(value, f"bucket {name[:40].decode(errors='replace')!r}")
    if meta.freelist != NO_FREELIST:
        for pid in walker.tree_pages:
            if pid in freed:
                walker.error(f"page {pid}: reachable freed")
        for pid in range(meta.pgid):
            if pid not in walker.reachable and pid not in freed:
                walker.error(f"page {pid}: unreachable unfreed")
    if walker.errors:
        errors = walker.errors
        more = f"; and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        raise SnapshotFormatError(
            "corrupted", f"{len(errors)} consistency error(s): " + "; ".join(errors[:_SHOWN_ERRORS]) + more,
            tuple(errors))

    if has_hash:
        if hashlib.sha256(body).digest() != data[-SHA256_SIZE:]:
            raise SnapshotFormatError(
                "hash_mismatch",
                "the sha256 at the end of the file does not match its contents: "
                "the file was changed after it was saved")
    elif require_hash:
        if len(body) % page_size == 0:
            raise SnapshotFormatError(
                "no_hash",
                f"{size} bytes, a whole number of {page_size}-byte pages with no sha256 at the end: "
                "a raw copy of member/snap/db, not a snapshot")
        if len(body) - needed < SHA256_SIZE:
            raise SnapshotFormatError(
                "truncated", f"the file ends {len(body) - needed} bytes into the 32-byte sha256 at its end")
        raise SnapshotFormatError(
            "corrupted",
            f"{size} bytes is neither a snapshot (pages + 32-byte sha256) nor a whole number of pages")

    info = SnapshotInfo(buckets=buckets, page_size=page_size, page_count=meta.pgid, txid=meta.txid,
                        file_size=size, has_hash=has_hash)
    return info
