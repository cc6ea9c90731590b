"""A minimal Kubernetes API client on the standard library, for the node's kubelet.

It speaks JSON over one kept-alive HTTPS connection, authenticates with the client
certificate of a kubeconfig (as the kubelet does with ``kubelet.conf``) and verifies the
server against the kubeconfig's CA. No retries: callers decide what a failure means.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from simulator.cluster import kubeadm

TIMEOUT = 5.0


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        self.reason = str(doc.get("reason") or "") if isinstance(doc, dict) else ""
        self.text = str(doc.get("message") or body[:300].decode(errors="replace")) \
            if isinstance(doc, dict) else body[:300].decode(errors="replace")
        super().__init__(f"{status} {self.reason}: {self.text}")


class Unreachable(Exception):
    """The API server could not be reached (refused, reset, timed out, TLS failure)."""


class KubeconfigError(ValueError):
    """A kubeconfig lacks the cluster or user fields a client needs."""


def _current(doc: dict, section: str, name: str) -> dict:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(section[:-1]) or {}
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _data(item: dict, key: str, base: Path) -> bytes:
    if item.get(f"{key}-data"):
        return base64.b64decode(item[f"{key}-data"])
    if item.get(key):
        path = Path(item[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    raise KubeconfigError(f"kubeconfig has neither {key} nor {key}-data")


class ApiClient:
    """Requests to one API server as the user of a kubeconfig."""

    def __init__(self, server: str, context: ssl.SSLContext, timeout: float = TIMEOUT) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise KubeconfigError(f"server {server!r} is not an https URL")
        self.server = server
        self._host = url.hostname
        self._port = url.port or 443
        self._context = context
        self._timeout = timeout
        self._conn: http.client.HTTPSConnection | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, key_file: Path, root: Path | None = None) -> ApiClient:
        """A client for the current context of the kubeconfig at ``path``.

        The client certificate and key are written to ``key_file`` (mode 0600), since
        ``ssl`` loads them only from a file; relative or absolute file references in the
        kubeconfig are read below ``root`` (the node's root) when given.
        Raises OSError or KubeconfigError.
        """
        doc = yaml.safe_load(path.read_bytes())
        if not isinstance(doc, dict):
            raise KubeconfigError(f"{path} is not a kubeconfig")
        context = _current(doc, "contexts", doc.get("current-context", ""))
        cluster = _current(doc, "clusters", context.get("cluster", ""))
        user = _current(doc, "users", context.get("user", ""))
        base = path.parent

        def read(item: dict, key: str) -> bytes:
            if root is not None and item.get(key) and not item.get(f"{key}-data"):
                ref = Path(item[key])
                ref = ref if ref.is_absolute() else Path(kubeadm.KUBERNETES_DIR) / ref
                return (root / str(ref).lstrip("/")).read_bytes()
            return _data(item, key, base)

        ca = read(cluster, "certificate-authority")
        cert = read(user, "client-certificate")
        key = read(user, "client-key")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=key_file.parent, prefix=f".{key_file.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(cert.rstrip(b"\n") + b"\n" + key)
        os.chmod(tmp, 0o600)
        os.replace(tmp, key_file)
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca.decode())
        ctx.load_cert_chain(str(key_file))
        return cls(str(cluster.get("server", "")), ctx)

    def close(self) -> None:
        """Drop the kept-alive connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        """Send one request; return the decoded JSON answer (None for an empty one).

        Raises ApiError for an error status and Unreachable when no answer came.
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": "kubelet/cka-sim"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                         context=self._context,
                                                         timeout=self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if attempt == 0:
                    continue  # a kept-alive connection the server had closed
                raise Unreachable(str(exc)) from exc
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                self.close()
                raise Unreachable(str(exc) or type(exc).__name__) from exc
            if response.status >= 400:
                raise ApiError(response.status, payload)
            return json.loads(payload) if payload else None
        raise Unreachable("no answer")  # pragma: no cover - the loop always returns or raises

    def get(self, path: str) -> Any:
        """GET ``path``."""
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` to ``path``."""
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        """PUT ``body`` at ``path``."""
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any, kind: str = "merge") -> Any:
        """PATCH ``path`` with a ``merge`` or ``strategic-merge`` patch."""
        return self.request("PATCH", path, body, f"application/{kind}-patch+json")

    def delete(self, path: str, body: Any = None) -> Any:
        """DELETE ``path`` (``body``: DeleteOptions, e.g. preconditions)."""
        return self.request("DELETE", path, body)
