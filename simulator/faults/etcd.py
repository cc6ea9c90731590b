"""Faults on etcd: stop it, wipe or corrupt its data, change keys."""

from __future__ import annotations

import json
import time
from typing import Any

from simulator.cluster import kubeadm
from simulator.errors import ClusterError, ScenarioError
from simulator.registry import Context, fault


def wait_etcd(ctx: Context, healthy: bool, timeout: float = 20) -> None:
    """Wait until etcd on the node is (or is no longer) answering over TLS."""
    deadline = time.monotonic() + timeout
    while True:
        ok = kubeadm.etcdctl(ctx.node, "endpoint", "health", "--command-timeout=2s",
                             timeout=10).ok
        if ok == healthy:
            return
        if time.monotonic() > deadline:
            state = "healthy" if healthy else "stopped"
            raise ClusterError(f"etcd on {ctx.node_name} did not become {state} in {timeout:.0f}s",
                               hint="see `crictl ps -a` and `crictl logs` on the node")
        time.sleep(0.2)


@fault("etcd.put")
def put(ctx: Context, key: str, value: str | None = None,
        object: dict[str, Any] | None = None) -> None:
    """Write ``key`` = ``value`` into etcd, behind the API server's back.

    With ``object`` instead of ``value`` (a full manifest, or the ``{kind, name,
    namespace}`` shorthand of ``apply``) the bytes are those the API server would store:
    protobuf for built-in kinds, JSON for others. Objects the learner should meet as if
    made through the API are better made with ``apply``: those get a uid, timestamps and
    managed fields from the API server itself.
    """
    from checkers import kubeproto
    from simulator.faults.kube import expand

    if (value is None) == (object is None):
        raise ScenarioError("etcd.put needs either value or object",
                            hint="value: a string stored as is; object: a Kubernetes object "
                                 "stored as the API server stores it")
    if object is None:
        kubeadm.etcdctl(ctx.node, "put", key, str(value)).check()
        return
    document = expand(object)
    try:
        data = kubeproto.encode(document)
    except kubeproto.StoredValueError as exc:
        if "no protobuf schema for" not in str(exc):
            raise ScenarioError(f"etcd.put object: {exc}",
                                hint="write the object as `kubectl get -o yaml` shows it") from None
        data = json.dumps(document, separators=(",", ":")).encode()  # custom kinds: JSON
    # binary (the value starts with k8s\0): etcdctl reads it from standard input
    kubeadm.etcdctl(ctx.node, "put", key, input=data).check()


@fault("etcd.delete")
def delete(ctx: Context, key: str, prefix: bool = False) -> None:
    """Delete ``key`` (or every key under it with ``prefix``) from etcd."""
    args = ["del", key] + (["--prefix"] if prefix else [])
    kubeadm.etcdctl(ctx.node, *args).check()


def _stop(ctx: Context) -> None:
    ctx.run(["mv", kubeadm.ETCD_MANIFEST, "/root/etcd.yaml.stopped"]).check()
    wait_etcd(ctx, healthy=False)


def _start(ctx: Context) -> None:
    ctx.run(["mv", "/root/etcd.yaml.stopped", kubeadm.ETCD_MANIFEST]).check()


@fault("etcd.stop")
def stop(ctx: Context) -> None:
    """Stop etcd by moving its manifest to /root/etcd.yaml.stopped."""
    _stop(ctx)


@fault("etcd.wipe_data")
def wipe_data(ctx: Context, data_dir: str = kubeadm.ETCD_DATA_DIR) -> None:
    """Delete etcd's data directory; etcd comes back empty."""
    _stop(ctx)
    ctx.run(["bash", "-c", 'rm -rf -- "$DATA_DIR"/member'], env={"DATA_DIR": data_dir}).check()
    _start(ctx)


@fault("etcd.corrupt_db")
def corrupt_db(ctx: Context, data_dir: str = kubeadm.ETCD_DATA_DIR) -> None:
    """Overwrite the meta pages of etcd's bbolt database: etcd fails at start and crash-loops."""
    _stop(ctx)
    script = 'dd if=/dev/urandom of="$DATA_DIR/member/snap/db" bs=4096 count=2 conv=notrunc status=none'
    ctx.run(["bash", "-c", script], env={"DATA_DIR": data_dir}).check()
    _start(ctx)


# A WAL segment is a run of frames: a little-endian u64 (the record's length, the pad
# count in the top byte) then the walpb.Record (type=1, crc=2, data=3) padded to 8 bytes.
# A zero length ends the written part of a preallocated segment.
_WAL_READ = 8 << 20
_WAL_ENTRY = b"\x08\x02"  # Record.type = entryType
_SECTOR = 512


def wal_entry_frames(segment: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each entry record in a WAL segment, in order, up to the first
    frame that is zero or runs past the bytes given."""
    frames, offset = [], 0
    while offset + 8 <= len(segment):
        field = int.from_bytes(segment[offset:offset + 8], "little")
        size = field & 0x00FFFFFFFFFFFFFF
        pad = (field >> 56) & 0x7 if field >> 63 else 0
        start = offset + 8
        if size == 0 or start + size + pad > len(segment):
            break
        if segment[start:start + 2] == _WAL_ENTRY:
            frames.append((start, size))
        offset = start + size + pad
    return frames


def _flip_wal_entry(ctx: Context, data_dir: str) -> None:
    wal_dir = f"{data_dir.rstrip('/')}/member/wal"
    listed = ctx.run(["find", wal_dir, "-maxdepth", "1", "-name", "*.wal", "-printf", "%f\\n"]).check()
    segments = sorted(listed.out.split())
    hint = "etcd.corrupt_wal needs an etcd that has run on that data directory"
    if not segments:
        raise ClusterError(f"no WAL segment in {wal_dir} on {ctx.node_name}", hint=hint)
    path = f"{wal_dir}/{segments[-1]}"
    head = ctx.run(["head", "-c", str(_WAL_READ), path]).check().stdout
    # etcd takes a bad record that spans a zeroed disk sector for a torn write and cuts
    # the log there; an entry within one sector fails its CRC instead
    frames = [(start, size) for start, size in wal_entry_frames(head)
              if (start - 8) // _SECTOR == (start + size - 1) // _SECTOR]
    if not frames:
        raise ClusterError(f"no log entry to damage in {path} on {ctx.node_name}", hint=hint)
    start, size = frames[len(frames) // 2]
    last = start + size - 1  # the entry's last data byte: the frame still parses
    ctx.run(["dd", f"of={path}", "bs=1", f"seek={last}", "count=1", "conv=notrunc", "status=none"],
            input=bytes([head[last] ^ 0xFF])).check()


@fault("etcd.corrupt_wal")
def corrupt_wal(ctx: Context, data_dir: str = kubeadm.ETCD_DATA_DIR) -> None:
    """Flip a byte inside an entry in the middle of etcd's newest WAL segment, as a bad
    disk block does: the frame stays whole but its CRC no longer matches, so etcd refuses
    to replay its log at every start (``walpb: crc mismatch``) and crash-loops; etcd
    repairs only a torn tail, not this."""
    _stop(ctx)
    try:
        _flip_wal_entry(ctx, data_dir)
    finally:
        _start(ctx)
