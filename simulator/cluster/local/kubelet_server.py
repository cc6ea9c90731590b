"""The kubelet's HTTPS endpoint on port 10250, enough for ``kubectl logs`` of static pods.

The API server reaches a node's kubelet at its InternalIP and ``daemonEndpoints`` port
with the ``apiserver-kubelet-client`` certificate. This server accepts clients whose
certificate the cluster CA signed (the kubelet's x509 authentication; there is no
authorization webhook) and serves ``/containerLogs/<namespace>/<pod>/<container>`` from
the CRI log files the supervisor writes, with the query parameters the API server passes
(``follow``, ``previous``, ``timestamps``, ``tailLines``, ``limitBytes``, ``sinceSeconds``),
and ``/exec``, ``/attach`` and ``/portForward`` for the static pods' containers through
:mod:`simulator.cluster.local.kubelet_stream` (SPDY/3.1, as a container runtime's
streaming server). Other kubelet endpoints (metrics, stats) answer 404.

Like a kubelet without ``--tls-cert-file``, it serves a self-signed certificate it creates
at ``/var/lib/kubelet/pki/kubelet.{crt,key}``; kubeadm does not make the API server verify
it. Requests are served in threads of the node's init; only an exec starts a process, and
it learns the exit status without waiting for it (PID 1 reaps every child).
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import logging
import os
import socketserver
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from simulator.cluster import kubeadm
from simulator.cluster.local import kubelet_stream, spdy

log = logging.getLogger("cka_sim.kubelet")

PORT = kubeadm.KUBELET_PORT
FOLLOW_POLL = 0.2


CERT_DIR = "var/lib/kubelet/pki"


def write_serving_cert(node: str, ip: str, directory: Path, private: Any = None) -> None:
    """Write ``kubelet.crt`` and ``kubelet.key`` into ``directory`` as a kubelet without a
    serving certificate makes them: self-signed, ``CN=<node>@<unix time>``, the node's name
    and IP as SANs. ``private`` is an RSA key to use (a new one otherwise)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    if private is None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    now = dt.datetime.now(dt.UTC)
    stamp = int(now.timestamp())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node}@{stamp}")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node}-ca@{stamp}")])
    names: list[x509.GeneralName] = [x509.DNSName(node)]
    if ip:
        names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    built = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(private.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=365))
             .add_extension(x509.SubjectAlternativeName(names), critical=False)
             .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
             .sign(private, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()))
    tmp = cert.with_name(f".{cert.name}.tmp")
    tmp.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, cert)  # last and whole: a kubelet.crt present means both are complete


def _records(state_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in (state_dir / "containers").glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def find_log(rootfs: Path, state_dir: Path, namespace: str, pod: str, container: str,
             previous: bool) -> tuple[Path | None, str, dict[str, Any] | None]:
    """The log file of a container of a pod (its latest attempt, or the one before with
    ``previous``), with an error text like the kubelet's when there is none."""
    runs = [r for r in _records(state_dir)
            if r.get("podNamespace") == namespace and r.get("podName") == pod
            and r.get("name") == container]
    if not runs:
        return None, f'container "{container}" in pod "{pod}" is not available', None
    runs.sort(key=lambda r: (r.get("createdAt", 0), r.get("attempt", 0)))
    latest = runs[-1]
    path = str(latest.get("logPath", ""))
    if previous:
        attempt = int(latest.get("attempt", 0))
        if attempt == 0:
            return None, (f'previous terminated container "{container}" in pod "{pod}" '
                          "not found"), None
        path = os.path.join(os.path.dirname(path), f"{attempt - 1}.log")
    host = rootfs / path.lstrip("/")
    if not host.is_file():
        return None, f'log of container "{container}" in pod "{pod}" not found', None
    return host, "", latest


def render(line: bytes, timestamps: bool) -> bytes:
    """One CRI log line as ``kubectl logs`` prints it (timestamp prefix on request)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return b""
    body = parts[3] if len(parts) == 4 else b""
    return (parts[0] + b" " if timestamps else b"") + body + (b"" if parts[2] == b"P" else b"\n")


def _since_ok(line: bytes, since: float | None) -> bool:
    if since is None:
        return True
    stamp = line.split(b" ", 1)[0].decode(errors="replace")
    try:
        when = dt.datetime.fromisoformat(stamp[:26]).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return True
    return when >= since


def _pod_ip(state_dir: Path, uid: str) -> str:
    """A workload pod's own IP (its network namespace), or 127.0.0.1 for the node's network."""
    try:
        pods = json.loads((Path(state_dir) / "pods.json").read_text()).get("pods") or []
    except (OSError, ValueError, AttributeError):
        pods = []
    pod = next((p for p in pods if p.get("uid") == uid), {})
    return str(pod.get("ip")) if pod.get("ip") and not pod.get("hostNetwork", True) else "127.0.0.1"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: KubeletServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _fail(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts and parts[0] in ("exec", "attach", "portForward"):
            self._stream_request(parts, urllib.parse.parse_qs(url.query))
            return
        self._fail(404, "404 page not found\n")

    def _stream_request(self, parts: list[str], query: dict[str, list[str]]) -> None:
        """exec, attach and port-forward: find the container, upgrade, hand over."""
        kind = parts[0]
        if kind == "portForward":
            if len(parts) not in (3, 4):
                self._fail(404, "404 page not found\n")
                return
            pods = {(r.get("podNamespace"), r.get("podName")): r for r in
                    _records(self.server.state_dir) if r.get("state") == "CONTAINER_RUNNING"}
            record = pods.get((parts[1], parts[2]))
            if record is None:
                self._fail(404, f'pod "{parts[2]}" in namespace "{parts[1]}" not found')
                return
            protocols = kubelet_stream.PORT_FORWARD_PROTOCOLS
        else:
            if len(parts) not in (4, 5):
                self._fail(404, "404 page not found\n")
                return
            namespace, pod, container = parts[1], parts[2], parts[-1]
            running = [r for r in _records(self.server.state_dir)
                       if r.get("podNamespace") == namespace and r.get("podName") == pod
                       and r.get("name") == container
                       and r.get("state") == "CONTAINER_RUNNING" and r.get("pid")]
            if not running:
                self._fail(404, f'container not found ("{container}")')
                return
            record = max(running, key=lambda r: r.get("createdAt", 0))
            protocols = kubelet_stream.EXEC_PROTOCOLS

        def flag(name: str) -> bool:
            return query.get(name, [""])[-1].lower() in ("1", "true")

        options = {"stdin": flag("input"), "stdout": flag("output"),
                   "stderr": flag("error"), "tty": flag("tty")}
        if options["tty"]:
            options["stderr"] = False
        command = query.get("command", [])
        if kind == "exec" and not command:
            self._fail(400, "you must specify a command")
            return
        if kind != "portForward" and not any(options[k] for k in ("stdin", "stdout", "stderr")):
            self._fail(400, "you must specify at least 1 of stdin, stdout, stderr")
            return
        if "spdy/3.1" not in self.headers.get("Upgrade", "").lower():
            self._fail(400, "unable to upgrade: missing upgrade headers in request")
            return
        protocol = spdy.negotiate(self.headers.get_all("X-Stream-Protocol-Version")
                                            or [], protocols)
        if protocol is None:
            self._fail(403, "unable to upgrade: unable to negotiate protocol: client "
                       f"supports {self.headers.get_all('X-Stream-Protocol-Version')}, "
                       f"server supports {list(protocols)}")
            return
        self.wfile.write(spdy.upgrade_response(protocol))
        self.wfile.flush()
        self.close_connection = True
        rootfs, state_dir = self.server.rootfs, self.server.state_dir
        try:
            if kind == "portForward":
                kubelet_stream.serve_port_forward(self.connection, parts[2],
                                                  str(record.get("podUid", "")),
                                                  _pod_ip(state_dir, str(record.get("podUid", ""))))
            else:
                kubelet_stream.serve_exec(self.connection, protocol, options, record, command,
                                          rootfs, state_dir, attach=kind == "attach")
        except Exception:  # a broken session must not take the kubelet's thread down
            log.exception("%s stream for %s failed", kind, "/".join(parts[1:]))

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if url.path in ("/healthz", "/healthz/"):
            self._fail(200, "ok")
            return
        if parts and parts[0] in ("exec", "attach", "portForward"):
            self._stream_request(parts, urllib.parse.parse_qs(url.query))
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._fail(404, "404 page not found\n")
            return
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}

        def flag(name: str) -> bool:
            return query.get(name, "").lower() in ("true", "1")

        path, error, record = find_log(self.server.rootfs, self.server.state_dir,
                                       parts[1], parts[2], parts[3], flag("previous"))
        if path is None or record is None:
            self._fail(400, error)
            return
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else -1
            limit = int(query["limitBytes"]) if "limitBytes" in query else -1
            since = (time.time() - int(query["sinceSeconds"])) if "sinceSeconds" in query \
                else None
        except ValueError:
            self._fail(400, "invalid tailLines, limitBytes or sinceSeconds")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self._stream(path, record, flag("timestamps"), tail, limit, since,
                     flag("follow") and not flag("previous"))

    def _stream(self, path: Path, record: dict[str, Any], timestamps: bool, tail: int,
                limit: int, since: float | None, follow: bool) -> None:
        sent = 0

        def write(data: bytes) -> bool:
            nonlocal sent
            if limit >= 0:
                data = data[:max(0, limit - sent)]
            if data:
                self.wfile.write(data)
                sent += len(data)
            return limit < 0 or sent < limit

        try:
            with open(path, "rb") as fh:
                lines = [line for line in fh if _since_ok(line, since)]
                if tail >= 0:
                    lines = lines[len(lines) - tail:] if tail else []
                for line in lines:
                    if not write(render(line, timestamps)):
                        return
                self.wfile.flush()
                pending = b""
                state = self.server.state_dir / "containers" / f"{record['id']}.json"
                while follow and not self.server.closing.is_set():
                    chunk = fh.readline()
                    if chunk:
                        pending += chunk
                        if pending.endswith(b"\n"):
                            if not write(render(pending, timestamps)):
                                return
                            self.wfile.flush()
                            pending = b""
                        continue
                    try:
                        running = json.loads(state.read_text()).get("state") == \
                            "CONTAINER_RUNNING"
                    except (OSError, ValueError):
                        running = False
                    if not running:
                        for line in (pending + fh.read()).splitlines(keepends=True):
                            write(render(line, timestamps))
                        return
                    time.sleep(FOLLOW_POLL)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return


class KubeletServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """The node's kubelet endpoint; :meth:`start` serves it in a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, rootfs: Path, state_dir: Path, node: str, ip: str,
                 client_ca: bytes, port: int = PORT) -> None:
        self.rootfs, self.state_dir = Path(rootfs), Path(state_dir)
        self.closing = threading.Event()
        super().__init__(("0.0.0.0", port), _Handler)
        directory = self.rootfs / CERT_DIR
        cert, key = directory / "kubelet.crt", directory / "kubelet.key"
        if not (cert.exists() and key.exists()):
            write_serving_cert(node, ip, directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.decode())
        self.socket = context.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up in DNS, which a node cannot reach.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "kubelet", self.server_address[1]

    def get_request(self):  # type: ignore[no-untyped-def]
        conn, addr = self.socket.accept()
        conn.settimeout(10)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError):
            conn.close()
            raise
        conn.settimeout(None)
        return conn, addr

    def start(self) -> None:
        """Serve in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="kubelet-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.closing.set()
        self.shutdown()
        self.server_close()
