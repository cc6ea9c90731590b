"""Faults on etcd: stop it, wipe or corrupt its data, change keys."""

from __future__ import annotations

import time

from simulator.cluster import kubeadm
from simulator.errors import ClusterError
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
def put(ctx: Context, key: str, value: str) -> None:
    """Write ``key`` = ``value`` into etcd."""
    kubeadm.etcdctl(ctx.node, "put", key, value).check()


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


@fault("etcd.corrupt_wal")
def corrupt_wal(ctx: Context, data_dir: str = kubeadm.ETCD_DATA_DIR) -> None:
    """Overwrite the start of every WAL segment: etcd refuses to replay its log."""
    _stop(ctx)
    script = ('for f in "$DATA_DIR"/member/wal/*.wal; do '
              'dd if=/dev/urandom of="$f" bs=512 count=8 conv=notrunc status=none; done')
    ctx.run(["bash", "-c", script], env={"DATA_DIR": data_dir}).check()
    _start(ctx)
