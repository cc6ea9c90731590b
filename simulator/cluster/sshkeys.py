"""SSH keys of a practice cluster, the same on every driver: ``ssh node01`` as root works
from any node with no password and no host-key question, as on the exam's clusters.

One client key pair per cluster is root's on every node (``/root/.ssh/id_ed25519``) and
authorized on every node; each node has its own ed25519 host key; every node's
``known_hosts`` (root's and ``/etc/ssh/ssh_known_hosts``) lists every node's host key under
its exam name and its address. Where the cluster has a jump host, the learner's user
``candidate`` has a key pair there that every other node authorizes for ``candidate``
(:mod:`simulator.cluster.candidate`). Keys are ed25519, made here in well under a millisecond
each, so clusters need no ``ssh-keygen`` run.
"""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from simulator.cluster.node import CANDIDATE, JUMP_HOST

CLIENT_KEY = "/root/.ssh/id_ed25519"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
KNOWN_HOSTS = ("/root/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
SSH_DIRS = {"/root/.ssh": 0o700}
"""Directories the files below need, with their modes (sshd's StrictModes checks them)."""


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair in OpenSSH's formats: the private key file and the public line."""

    private: bytes
    public: str

    @classmethod
    def generate(cls, comment: str) -> KeyPair:
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        return cls(private, f"{public} {comment}")


@dataclasses.dataclass(frozen=True)
class ClusterKeys:
    """Root's client key and every node's host key, with the nodes' addresses."""

    client: KeyPair
    hosts: dict[str, KeyPair]
    addresses: dict[str, str]
    candidate: KeyPair | None = None
    """The learner's key where the cluster has a jump host: ``candidate``'s on the jump
    host, authorized for ``candidate`` on every other node."""

    @classmethod
    def generate(cls, addresses: dict[str, str], *, candidate: bool = False) -> ClusterKeys:
        """Keys for the nodes of ``addresses`` (exam name -> IP address); with
        ``candidate``, the learner's key pair too."""
        return cls(KeyPair.generate("root@cka-sim"),
                   {name: KeyPair.generate(f"root@{name}") for name in addresses},
                   dict(addresses),
                   KeyPair.generate(f"{CANDIDATE}@{JUMP_HOST}") if candidate else None)

    def known_hosts(self) -> str:
        """One line per node: its exam name and address, then its host key."""
        return "".join(f"{name},{self.addresses[name]} {' '.join(key.public.split()[:2])}\n"
                       for name, key in self.hosts.items())

    def node_files(self, name: str) -> dict[str, tuple[bytes, int]]:
        """Files of node ``name`` by path: (content, mode)."""
        host = self.hosts[name]
        known = self.known_hosts().encode()
        files = {CLIENT_KEY: (self.client.private, 0o600),
                 CLIENT_KEY + ".pub": ((self.client.public + "\n").encode(), 0o644),
                 AUTHORIZED_KEYS: ((self.client.public + "\n").encode(), 0o600),
                 HOST_KEY: (host.private, 0o600),
                 HOST_KEY + ".pub": ((host.public + "\n").encode(), 0o644)}
        for path in KNOWN_HOSTS:
            files[path] = (known, 0o644)
        return files

    def candidate_files(self, name: str) -> dict[str, tuple[bytes, int]]:
        """Files of ``candidate``'s ``~/.ssh`` on node ``name``, by name within it: the key
        pair and known_hosts on the jump host, authorized_keys elsewhere."""
        if self.candidate is None:
            return {}
        public = (self.candidate.public + "\n").encode()
        if name == JUMP_HOST:
            return {"id_ed25519": (self.candidate.private, 0o600),
                    "id_ed25519.pub": (public, 0o644),
                    "known_hosts": (self.known_hosts().encode(), 0o644)}
        return {"authorized_keys": (public, 0o600)}


__all__ = ["AUTHORIZED_KEYS", "CLIENT_KEY", "HOST_KEY", "KNOWN_HOSTS", "SSH_DIRS",
           "ClusterKeys", "KeyPair"]
