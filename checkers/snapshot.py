"""Checkers for etcd snapshot files: sound, holding a key, recent, and their status answered.

The file is read through the Node API and verified in pure Python (``checkers.bbolt``), so
these checkers need no etcd binary on the node and work on every driver.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import OrderedDict
from typing import Any

from checkers import kubeproto
from checkers.bbolt import SnapshotFormatError, SnapshotInfo, parse_revision, read_snapshot
from simulator.cluster.node import JUMP_HOST
from simulator.errors import CheckError
from simulator.registry import CheckResult, Context, checker

_CACHE_SIZE = 4
_cache: OrderedDict[bytes, SnapshotInfo | SnapshotFormatError] = OrderedDict()


def _parse(data: bytes) -> SnapshotInfo:
    """read_snapshot with a small cache keyed by content, for several checks of one file."""
    digest = hashlib.sha256(data).digest()
    found = _cache.get(digest)
    if found is None:
        try:
            found = read_snapshot(data)
        except SnapshotFormatError as exc:
            found = exc
        _cache[digest] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(digest)
    if isinstance(found, SnapshotFormatError):
        raise found
    return found


def human_bytes(size: int) -> str:
    """``size`` as etcdutl prints TOTAL SIZE (go-humanize ``Bytes``: SI units, "33 kB")."""
    if size < 10:
        return f"{size} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    exp = min(int(math.floor(math.log(size) / math.log(1000))), len(units) - 1)
    val = math.floor(size / 1000 ** exp * 10 + 0.5) / 10
    return f"{val:.0f} {units[exp]}" if val >= 10 else f"{val:.1f} {units[exp]}"


def _summary(info: SnapshotInfo) -> str:
    return (f"revision {info.revision}, {info.live_keys} keys ({info.total_keys} entries), "
            f"{human_bytes(info.file_size)}, hash {info.hash:x}")


_FAILURES = {
    "empty": "{path} is empty (0 bytes): the save failed or was interrupted; "
             "take it again with etcdctl snapshot save",
    "no_hash": "{path} is a raw copy of member/snap/db ({size} bytes, no sha256 at the end), "
               "not a snapshot: take it with etcdctl snapshot save",
    "truncated": "{path} is truncated ({size} bytes): {detail}; take the snapshot again",
    "corrupted": "{path} is corrupted ({size} bytes): {detail}",
    "hash_mismatch": "{path} was changed after it was saved ({size} bytes): the sha256 at its end does "
                     "not match its contents; take the snapshot again",
    "not_bbolt": "{path} is not an etcd snapshot: {detail}",
}


def load_snapshot(ctx: Context, path: str) -> tuple[SnapshotInfo | None, CheckResult | None]:
    """Read and verify the snapshot at ``path`` on the node.

    Returns (info, None) when it is sound, else (None, a failed CheckResult whose detail says
    whether it is missing, empty, a raw db copy, truncated, corrupted or not a snapshot).
    """
    try:
        data = ctx.node.read_file(path)
    except FileNotFoundError:
        # the jump host has no etcdctl: a snapshot gets there as a copy
        how = ("copy it there from the node that took it, e.g. with scp"
               if ctx.node_name == JUMP_HOST else f"etcdctl snapshot save {path}")
        return None, CheckResult(False, f"no file at {path}: expected an etcd snapshot there "
                                        f"({how})")
    except IsADirectoryError:
        return None, CheckResult(False, f"{path} is a directory, expected a snapshot file")
    except OSError as exc:
        return None, CheckResult(False, f"cannot read {path}: {exc.strerror or exc}")
    try:
        return _parse(data), None
    except SnapshotFormatError as exc:
        text = _FAILURES[exc.kind].format(path=path, size=len(data), detail=exc.detail)
        return None, CheckResult(False, text)


@checker("snapshot.valid")
def valid(ctx: Context, path: str) -> CheckResult:
    """Pass when ``path`` is a complete, unmodified snapshot as ``etcdctl snapshot save`` writes it."""
    info, failed = load_snapshot(ctx, path)
    if failed:
        return failed
    assert info is not None
    return CheckResult(True, f"{path} is a sound etcd snapshot: {_summary(info)}")


_MISSING = object()


def _field(document: Any, dotted: str) -> Any:
    current = document
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part) and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, bool) == isinstance(expected, bool) and found == expected:
        return True
    return _text(found) == _text(expected)


def stored_field(raw: bytes, what: str, field: str, equals: Any = None) -> CheckResult:
    """Pass when the object stored as ``raw`` (protobuf or JSON) has ``field`` (dotted,
    list items by index), equal to ``equals`` when given; ``what`` names the value."""
    try:
        document = kubeproto.stored_document(raw)
    except kubeproto.StoredValueError as exc:
        return CheckResult(False, f"{what} holds {_short(raw)}: cannot read {field} ({exc})")
    found = _field(document, field)
    if found is _MISSING:
        return CheckResult(False, f"{what} has no field {field}")
    if equals is not None and not _same(found, equals):
        return CheckResult(False, f"{what}: {field} is {_short(_text(found))}, expected {_short(_text(equals))}")
    return CheckResult(True, f"{what}: {field} is {_short(_text(found))}")


def _short(data: bytes | str, limit: int = 80) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _deleted_at(info: SnapshotInfo, key: bytes) -> int | None:
    from checkers.bbolt import decode_key_value

    deleted = None
    for k, v in info.iter_bucket("key"):
        main, _, tombstone = parse_revision(k)
        kv = decode_key_value(v or b"")
        if kv.key == key:
            deleted = main if tombstone else None
    return deleted


@checker("snapshot.contains")
def contains(ctx: Context, path: str, key: str, value: Any = None,
             json_field: str | None = None, equals: Any = None) -> CheckResult:
    """Pass when the snapshot's latest state holds ``key``.

    With ``value`` the stored value must equal it; with ``json_field`` (a dotted path such as
    ``metadata.labels.app``, list items by index) the stored object must have that field,
    equal to ``equals`` when given. Objects are read as the API server stores them:
    protobuf (built-in kinds) or JSON (:func:`checkers.kubeproto.stored_document`).
    """
    info, failed = load_snapshot(ctx, path)
    if failed:
        return failed
    assert info is not None
    where = f"in {path} (revision {info.revision}, {info.live_keys} keys)"
    raw_key = key.encode()
    kv = info.kv_latest().get(raw_key)
    if kv is None:
        deleted = _deleted_at(info, raw_key)
        if deleted is not None:
            return CheckResult(False, f"key {key} was deleted at revision {deleted}, so it is not {where}: "
                                      "the snapshot was taken after the deletion")
        return CheckResult(False, f"key {key} is not {where}")
    if value is not None and kv.value != str(value).encode():
        return CheckResult(False, f"key {key} {where} holds {_short(kv.value)}, expected {_short(str(value))}")
    if json_field is not None:
        return stored_field(kv.value, f"key {key} {where}", json_field, equals)
    shown = f" = {_short(kv.value)}" if value is not None else ""
    return CheckResult(True, f"key {key}{shown} is {where} (mod revision {kv.mod_revision})")


def recorded_revision(ctx: Context, who: str, state_key: str = "setup_revision") -> int:
    """The etcd revision a setup step recorded in the attempt state (``record: revision``);
    CheckError for the scenario's author when there is none or it is not a revision."""
    if state_key not in ctx.state:
        raise CheckError(f"{who}: the attempt recorded no {state_key!r}",
                         hint="add the setup step `record: revision` after the objects are made")
    try:
        return int(ctx.state[state_key])
    except (TypeError, ValueError):
        raise CheckError(f"{who}: {state_key!r} is {ctx.state[state_key]!r}, not a revision",
                         hint="store the etcd revision as an integer") from None


@checker("snapshot.taken_after")
def taken_after(ctx: Context, path: str, state_key: str = "setup_revision") -> CheckResult:
    """Pass when the snapshot's revision is at least the one recorded at setup in ``ctx.state``.

    A file left over from before the attempt has an older revision.
    """
    wanted = recorded_revision(ctx, "snapshot.taken_after", state_key)
    info, failed = load_snapshot(ctx, path)
    if failed:
        return failed
    assert info is not None
    if info.revision < wanted:
        return CheckResult(False, f"{path} is at revision {info.revision}, older than revision {wanted} "
                                  "of the cluster when the task began: take a new snapshot now")
    return CheckResult(True, f"{path} is at revision {info.revision}, taken during the task "
                             f"(the task began at revision {wanted})")


# ---------------------------------------------------------------- snapshot status answers

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGTPE]?i?B)?\s*$")
_UNITS = {"": 1, "B": 1, "kB": 1000, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4,
          "PB": 1000 ** 5, "EB": 1000 ** 6, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def parse_status(text: str) -> dict[str, Any]:
    """Read ``snapshot status`` output of etcdctl/etcdutl 3.5 or 3.6 in any write-out format.

    Returns the fields found among ``hash`` (int), ``revision``, ``total_keys`` (ints) and
    ``total_size`` (the text as printed); ``hash_digits`` keeps hash text whose base is
    unclear (labelled answers). Raises ValueError when nothing recognizable is there.
    """
    for found in (_from_json(text), _from_table(text), _from_simple(text), _from_labels(text)):
        if found:
            return found
    raise ValueError("no snapshot status found")


def _from_json(text: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and "hash" in obj and "revision" in obj:
            out: dict[str, Any] = {}
            for name, field in (("hash", "hash"), ("revision", "revision"), ("total_keys", "totalKey"),
                                ("total_size", "totalSize")):
                if isinstance(obj.get(field), int) and not isinstance(obj.get(field), bool):
                    out[name] = obj[field]
            if "total_size" in out:
                out["total_size"] = str(out["total_size"])
            return out
    return {}


def _from_table(text: str) -> dict[str, Any]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.strip().startswith("|")]
    for i, row in enumerate(rows[:-1]):
        header = [cell.lower() for cell in row]
        if "hash" in header and "revision" in header:
            values = dict(zip(header, rows[i + 1]))
            out: dict[str, Any] = {}
            try:
                out["hash"] = int(values["hash"], 16)
                out["revision"] = int(values["revision"])
                if "total keys" in values:
                    out["total_keys"] = int(values["total keys"])
            except ValueError:
                return {}
            if "total size" in values:
                out["total_size"] = values["total size"]
            return out
    return {}


_SIMPLE = re.compile(r"^\s*([0-9a-fA-F]+),\s*(\d+),\s*(\d+),\s*(\d+(?:\.\d+)?\s*[kMGTPE]?B)(?:,.*)?$",
                     re.MULTILINE)


def _from_simple(text: str) -> dict[str, Any]:
    match = _SIMPLE.search(text)
    if not match:
        return {}
    return {"hash": int(match[1], 16), "revision": int(match[2]), "total_keys": int(match[3]),
            "total_size": match[4].strip()}


def _from_labels(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    patterns = {
        "hash_digits": r"\bhash\b\W*(?:0x)?([0-9a-fA-F]+)\b",
        "revision": r"\brevision\b\W*(\d+)\b",
        "total_keys": r"\btotal[ _-]?keys?\b\W*(\d+)\b",
        "total_size": r"\btotal[ _-]?size\b\W*(\d+(?:\.\d+)?\s*[kKMGTPE]?i?B?)",
    }
    for name, pattern in patterns.items():
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            out[name] = match[1].strip() if name in ("hash_digits", "total_size") else int(match[1])
    return out if "hash_digits" in out and "revision" in out else {}


def _size_matches(answer: str, size: int) -> bool:
    match = _SIZE.match(answer)
    if not match:
        return False
    if answer.strip() == human_bytes(size) or (match[2] is None and int(float(match[1])) == size):
        return True
    unit = _UNITS.get(match[2] or "")
    if unit is None:
        return False
    number = float(match[1])
    scaled = size / unit
    return round(scaled, 1) == number or round(scaled) == number


@checker("snapshot.status_matches")
def status_matches(ctx: Context, path: str, answer_path: str) -> CheckResult:
    """Pass when the answer file's hash, revision, total keys and total size are the snapshot's.

    The answer may be ``snapshot status`` output in table, JSON or simple form (etcdctl or
    etcdutl, 3.5 or 3.6); total keys may count all entries (3.5) or live keys (3.6).
    """
    try:
        text = ctx.node.read_file(answer_path).decode(errors="replace")
    except FileNotFoundError:
        return CheckResult(False, f"no answer file at {answer_path}: expected the output of "
                                  f"etcdutl snapshot status {path} there")
    except OSError as exc:
        return CheckResult(False, f"cannot read {answer_path}: {exc.strerror or exc}")
    if not text.strip():
        return CheckResult(False, f"{answer_path} is empty: expected the output of etcdutl snapshot status {path}")
    try:
        answer = parse_status(text)
    except ValueError:
        return CheckResult(False, f"{answer_path} holds no snapshot status (hash, revision, total keys, "
                                  f"total size): save the output of etcdutl snapshot status {path} -w table")
    info, failed = load_snapshot(ctx, path)
    if failed:
        return failed
    assert info is not None
    wrong: list[str] = []
    if "hash" in answer:
        if answer["hash"] != info.hash:
            wrong.append(f"hash is {answer['hash']:x}, the snapshot's is {info.hash:x}")
    elif "hash_digits" in answer:
        digits = answer["hash_digits"]
        candidates = {int(digits, 16)} | ({int(digits)} if digits.isdigit() else set())
        if info.hash not in candidates:
            wrong.append(f"hash is {digits}, the snapshot's is {info.hash:x} ({info.hash})")
    if answer.get("revision") != info.revision:
        wrong.append(f"revision is {answer.get('revision', 'missing')}, the snapshot's is {info.revision}")
    keys = answer.get("total_keys")
    if keys not in (info.total_keys, info.live_keys):
        wrong.append(f"total keys is {keys if keys is not None else 'missing'}, the snapshot has "
                     f"{info.total_keys} entries (etcd 3.5 counts these) and {info.live_keys} live keys (etcd 3.6)")
    size = answer.get("total_size")
    if size is None:
        wrong.append(f"total size is missing, the snapshot's is {human_bytes(info.total_size)}")
    elif not _size_matches(size, info.total_size):
        wrong.append(f"total size is {size}, the snapshot's is {human_bytes(info.total_size)} "
                     f"({info.total_size} bytes)")
    if wrong:
        return CheckResult(False, f"{answer_path} does not match {path}: " + "; ".join(wrong))
    return CheckResult(True, f"{answer_path} matches {path}: hash {info.hash:x}, revision {info.revision}, "
                             f"total keys {keys}, total size {human_bytes(info.total_size)}")
