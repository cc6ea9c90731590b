"""Kubernetes objects as the API server stores them in etcd: protobuf, read and written.

kubeadm's API server stores built-in kinds as protobuf (no ``--storage-media-type`` in its
manifest), as ``etcdctl get /registry/...`` shows on the exam: the bytes ``k8s\\x00`` and a
``runtime.Unknown`` envelope holding the apiVersion, the kind and the object's own
protobuf. :func:`decode` turns such a value into the object as ``kubectl get -o json``
would show it, :func:`encode` does the reverse, and :func:`stored_document` reads any
stored value, protobuf or JSON (custom resources, and values written by hand).

Protobuf carries field numbers, not names: the names come from ``kubeproto-schema.json``,
generated from the API's own ``generated.proto`` files at the pinned release by
``.ci/kubeproto-schema.py``. The JSON forms follow apimachinery: ``Time`` is RFC 3339 in
seconds, ``MicroTime`` in microseconds, ``Quantity`` a string, ``IntOrString`` a number
or a string, ``bytes`` base64, ``RawExtension`` and ``FieldsV1`` the JSON they hold.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import struct
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_TIME, _MICRO_TIME, _DURATION = f"{_META}.Time", f"{_META}.MicroTime", f"{_META}.Duration"
_FIELDS_V1 = f"{_META}.FieldsV1"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_VARINT = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool"}
_FIXED64 = {"fixed64", "sfixed64", "double"}
_FIXED32 = {"fixed32", "sfixed32", "float"}


class StoredValueError(ValueError):
    """A stored value this module cannot read or write; the message says why."""


@functools.cache
def schema() -> dict[str, Any]:
    """The generated table: ``messages`` (name -> fields) and ``groups`` (apiVersion ->
    protobuf package)."""
    data = json.loads(Path(__file__).with_name("kubeproto-schema.json").read_text())
    data["by_number"] = {name: {f[0]: f for f in fields} for name, fields in data["messages"].items()}
    data["by_name"] = {name: {f[1]: f for f in fields} for name, fields in data["messages"].items()}
    return data


def is_protobuf(value: bytes) -> bool:
    return value.startswith(MAGIC)


# -- the wire format ------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise StoredValueError("truncated protobuf (a varint runs past the end)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise StoredValueError("malformed protobuf (a varint longer than 10 bytes)")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in the order they appear."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise StoredValueError(f"malformed protobuf (wire type {wire} of field {number})")
        if pos > len(data):
            raise StoredValueError(f"truncated protobuf (field {number} runs past the end)")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(kind: str, wire: int, raw: Any) -> Any:
    if kind == "string":
        return raw.decode("utf-8", errors="replace")
    if kind == "bytes":
        return base64.b64encode(raw).decode()
    if kind == "bool":
        return bool(raw)
    if kind in ("int32", "int64"):
        return _signed(raw, 64)
    if kind in ("uint32", "uint64"):
        return raw
    if kind in ("sint32", "sint64"):
        return (raw >> 1) ^ -(raw & 1)
    if kind in ("double", "float"):
        return struct.unpack("<d" if kind == "double" else "<f", raw)[0]
    if kind in ("fixed64", "fixed32"):
        return int.from_bytes(raw, "little")
    if kind in ("sfixed64", "sfixed32"):
        return int.from_bytes(raw, "little", signed=True)
    raise StoredValueError(f"unknown scalar type {kind}")


def _packed(kind: str, raw: bytes) -> list[Any]:
    """A packed repeated scalar (proto3 style; accepted though Kubernetes writes proto2)."""
    if kind in _VARINT:
        values, pos = [], 0
        while pos < len(raw):
            value, pos = _varint(raw, pos)
            values.append(_scalar(kind, 0, value))
        return values
    width = 8 if kind in _FIXED64 else 4
    return [_scalar(kind, 1, raw[i:i + width]) for i in range(0, len(raw), width)]


def _value(kind: str, wire: int, raw: Any) -> Any:
    if kind in schema()["messages"]:
        if wire != 2:
            raise StoredValueError(f"malformed protobuf ({kind} with wire type {wire})")
        return _message(kind, raw)
    return _scalar(kind, wire, raw)


def _message(name: str, data: bytes) -> Any:
    fields = schema()["by_number"][name]
    doc: dict[str, Any] = {}
    for number, wire, raw in _fields(data):
        field = fields.get(number)
        if field is None:
            continue  # a field newer than the pinned release: skipped, as protobuf does
        _, key, label, kind = field
        if label == "map":
            entry = {n: (w, r) for n, w, r in _fields(raw)}
            k = _value(kind[0], *entry[1]) if 1 in entry else ""
            v = _value(kind[1], *entry[2]) if 2 in entry else _empty(kind[1])
            doc.setdefault(key, {})[k] = v
        elif label == "repeated":
            items = doc.setdefault(key, [])
            if wire == 2 and kind not in schema()["messages"] and kind not in ("string", "bytes"):
                items.extend(_packed(kind, raw))
            else:
                items.append(_value(kind, wire, raw))
        else:
            doc[key] = _value(kind, wire, raw)
    return _special(name, doc)


def _empty(kind: str) -> Any:
    if kind in schema()["messages"]:
        return _special(kind, {})
    return {"string": "", "bytes": "", "bool": False}.get(kind, 0)


def _special(name: str, doc: dict[str, Any]) -> Any:
    """The JSON form apimachinery gives its special messages."""
    if name in (_TIME, _MICRO_TIME):
        if not doc.get("seconds") and not doc.get("nanos"):
            return None  # Go's zero time, which JSON shows as null
        when = datetime.datetime.fromtimestamp(doc.get("seconds", 0), datetime.UTC)
        if name == _TIME:
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{doc.get('nanos', 0) // 1000:06d}Z"
    if name == _DURATION:
        return go_duration(doc.get("duration", 0))
    if name == _QUANTITY:
        return doc.get("string", "")
    if name == _INT_OR_STRING:
        return doc.get("strVal", "") if doc.get("type") == 1 else doc.get("intVal", 0)
    if name in (_RAW_EXTENSION, _FIELDS_V1):
        raw = base64.b64decode(doc.get("raw") or doc.get("Raw") or "")
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return raw.decode(errors="replace")
    return doc


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``1h0m0s``, ``1.5s``, ``300ms``."""
    if nanoseconds == 0:
        return "0s"
    sign, n = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return f"{sign}{_trim(n / size)}{unit}"
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else f"{sign}{seconds}"


def _trim(number: float) -> str:
    return f"{number:.9f}".rstrip("0").rstrip(".")


# -- objects ----------------------------------------------------------------------------


def message_of(api_version: str, kind: str) -> str:
    """The protobuf message of ``kind`` at ``api_version``; StoredValueError if unknown."""
    package = schema()["groups"].get(api_version)
    if package is None:
        raise StoredValueError(f"no protobuf schema for apiVersion {api_version} "
                               f"(cka-sim knows the stable groups of Kubernetes {schema()['kubernetes']})")
    name = f"{package}.{kind}"
    if name not in schema()["messages"]:
        raise StoredValueError(f"no protobuf schema for kind {kind} in {api_version}")
    return name


def decode(value: bytes) -> dict[str, Any]:
    """A stored protobuf value as the object's JSON document (apiVersion and kind first)."""
    if not is_protobuf(value):
        raise StoredValueError("not a Kubernetes protobuf value (it does not start with k8s\\x00)")
    envelope = _message(_UNKNOWN, value[len(MAGIC):])
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if not kind:
        raise StoredValueError("a Kubernetes protobuf value without a kind")
    body = _message(message_of(api_version, kind), base64.b64decode(envelope.get("raw", "")))
    return {"apiVersion": api_version, "kind": kind, **body}


def stored_document(value: bytes) -> Any:
    """The document a stored value holds: protobuf decoded, or JSON parsed (custom
    resources and values written by hand are JSON). StoredValueError says why not."""
    if is_protobuf(value):
        return decode(value)
    try:
        return json.loads(value)
    except ValueError:
        raise StoredValueError("neither Kubernetes protobuf nor JSON") from None


# -- writing ---------------------------------------------------------------------------


def _key(number: int, wire: int) -> bytes:
    return _put_varint((number << 3) | wire)


def _put_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _put_varint(len(payload)) + payload


def _encode_scalar(number: int, kind: str, value: Any) -> bytes:
    if kind == "string":
        return _length(number, str(value).encode())
    if kind == "bytes":
        return _length(number, base64.b64decode(value))
    if kind in _VARINT:
        n = int(bool(value)) if kind == "bool" else int(value)
        if kind in ("sint32", "sint64"):
            n = (n << 1) ^ (n >> 63)
        return _key(number, 0) + _put_varint(n)
    if kind in _FIXED64:
        raw = struct.pack("<d", value) if kind == "double" else int(value).to_bytes(
            8, "little", signed=kind == "sfixed64")
        return _key(number, 1) + raw
    raw = struct.pack("<f", value) if kind == "float" else int(value).to_bytes(
        4, "little", signed=kind == "sfixed32")
    return _key(number, 5) + raw


def _encode_value(number: int, kind: str, value: Any) -> bytes:
    if kind in schema()["messages"]:
        return _length(number, _encode_message(kind, value))
    return _encode_scalar(number, kind, value)


def _encode_message(name: str, value: Any) -> bytes:
    value = _unspecial(name, value)
    if not isinstance(value, dict):
        raise StoredValueError(f"{_short_name(name)} must be an object, not {value!r}")
    fields = schema()["by_name"][name]
    out = bytearray()
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            raise StoredValueError(f"{_short_name(name)} has no field {key!r}")
        number, _, label, kind = field
        if item is None and kind not in (_TIME, _MICRO_TIME):
            continue
        if label == "map":
            for k, v in sorted(item.items()):
                entry = _encode_value(1, kind[0], k) + _encode_value(2, kind[1], v)
                out += _length(number, entry)
        elif label == "repeated":
            for element in item:
                out += _encode_value(number, kind, element)
        else:
            out += _encode_value(number, kind, item)
    return bytes(out)


def _unspecial(name: str, value: Any) -> Any:
    """The message fields behind a special JSON form (the reverse of :func:`_special`)."""
    if name in (_TIME, _MICRO_TIME):
        if value is None:
            return {}  # the zero time: an empty message
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return {"seconds": int(when.timestamp()),
                "nanos": when.microsecond * 1000 if name == _MICRO_TIME else 0}
    if name == _QUANTITY:
        return {"string": str(value)}
    if name == _INT_OR_STRING:
        if isinstance(value, int):
            return {"type": 0, "intVal": value, "strVal": ""}
        return {"type": 1, "intVal": 0, "strVal": str(value)}
    if name in (_RAW_EXTENSION, _FIELDS_V1):
        raw = json.dumps(value, separators=(",", ":")).encode()
        return {("Raw" if name == _FIELDS_V1 else "raw"): base64.b64encode(raw).decode()}
    if name == _DURATION:
        raise StoredValueError("writing a Duration field is not supported")
    return value


def _short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def encode(document: dict[str, Any]) -> bytes:
    """The bytes the API server would store for ``document`` (a full object with
    apiVersion and kind); StoredValueError for an unknown kind or field."""
    api_version, kind = document.get("apiVersion", ""), document.get("kind", "")
    if not kind:
        raise StoredValueError("the object has no kind")
    name = message_of(api_version, kind)
    body = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
    envelope = (_length(1, _encode_scalar(1, "string", api_version) + _encode_scalar(2, "string", kind))
                + _length(2, _encode_message(name, body))
                + _encode_scalar(3, "string", "") + _encode_scalar(4, "string", ""))
    return MAGIC + envelope
