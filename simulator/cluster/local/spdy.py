"""SPDY/3.1 as Kubernetes streams use it: a server session over an upgraded connection.

``kubectl exec``, ``attach`` and ``port-forward`` reach a kubelet through the API server,
which speaks SPDY/3.1 to it (moby/spdystream, under ``k8s.io/apimachinery``'s httpstream):

- the HTTP upgrade (``Upgrade: SPDY/3.1``, ``101 Switching Protocols``) with a subprotocol
  chosen from the client's ``X-Stream-Protocol-Version`` list, in the client's order;
- the client opens a stream per channel; each SYN_STREAM is answered by an empty
  SYN_REPLY; header blocks are zlib-compressed with SPDY/3's dictionary in one compression
  context per direction for the whole session; pings are echoed; there is no flow
  control (spdystream has none).

:class:`Session` serves one connection in one selector loop together with the pipes,
terminals and sockets its streams are joined to: the TLS socket is never read and written
from two threads at once, and every write is buffered, so a peer that does not read cannot
dead-lock the loop. What the streams mean is :mod:`kubelet_stream`'s business.
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import struct
import time
import zlib
from collections.abc import Callable

CHUNK = 32 * 1024


_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status").split() + ["200 OK"] + \
    "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""SPDY/3's header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1)."""

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol of the client's list the server supports (httpstream.Handshake);
    ``""`` when the client offered none (the v1 fallback), None when none matches."""
    wanted = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    if not wanted:
        return ""
    return next((p for p in wanted if p in supported), None)


def upgrade_response(protocol: str) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: SPDY/3.1"]
    if protocol:
        lines.append(f"X-Stream-Protocol-Version: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Stream:
    """One SPDY stream the client opened: its headers, and callbacks for what arrives."""

    def __init__(self, session: Session, sid: int, headers: dict[str, str]) -> None:
        self.session, self.id, self.headers = session, sid, headers
        self.on_data: Callable[[bytes], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.early = bytearray()
        self.remote_done = False
        self.local_done = False

    @property
    def type(self) -> str:
        return self.headers.get("streamtype", "")

    def send(self, data: bytes, fin: bool = False) -> None:
        self.session.send(self, data, fin)

    def close(self) -> None:
        """Half-close our side (an empty data frame with FIN)."""
        if not self.local_done:
            self.session.send(self, b"", True)

    def _arrived(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)
        else:
            self.early += data

    def _ended(self) -> None:
        self.remote_done = True
        if self.on_end is not None:
            self.on_end()

    def listen(self, on_data: Callable[[bytes], None],
               on_end: Callable[[], None] | None = None) -> None:
        self.on_data, self.on_end = on_data, on_end
        if self.early:
            data, self.early = bytes(self.early), bytearray()
            on_data(data)
        if self.remote_done and on_end is not None:
            on_end()


class Session:
    """A server-side SPDY/3.1 session over a connected (TLS) socket, and the loop that
    serves it together with the pipes, terminals and sockets its streams are joined to."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._compress = zlib.compressobj(9, zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)
        self.streams: dict[int, Stream] = {}
        self.on_stream: Callable[[Stream], bool] = lambda stream: False
        self.on_close: Callable[[], None] = lambda: None
        self.peer_gone = False
        self.finished = False
        self._last_id = 0
        self._readers: dict[int, Callable[[], None]] = {}
        self._pending: dict[int, bytearray] = {}
        self._after_drain: dict[int, Callable[[], None]] = {}
        self._timers: list[tuple[float, Callable[[], None]]] = []

    # frames out ------------------------------------------------------------------------

    def _control(self, kind: int, flags: int, body: bytes) -> None:
        self._outbuf += struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(body)) + body

    def _header_block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            raw += struct.pack(">I", len(name)) + name.lower().encode()
            raw += struct.pack(">I", len(value.encode())) + value.encode()
        return self._compress.compress(raw) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def send(self, stream: Stream, data: bytes, fin: bool = False) -> None:
        if stream.local_done or self.peer_gone:
            return
        view = memoryview(data)
        while True:
            part, view = view[:CHUNK], view[CHUNK:]
            last = not len(view)
            flags = FLAG_FIN if (fin and last) else 0
            self._outbuf += struct.pack(">II", stream.id & 0x7FFFFFFF,
                                        (flags << 24) | len(part)) + part
            if last:
                break
        if fin:
            stream.local_done = True

    def reset(self, stream: Stream) -> None:
        if not self.peer_gone:
            self._control(RST_STREAM, 0, struct.pack(">II", stream.id, RST_CANCEL))
        stream.local_done = stream.remote_done = True
        self.streams.pop(stream.id, None)

    def finish(self) -> None:
        """Say GOAWAY, send what is queued and end the loop."""
        if not self.finished and not self.peer_gone:
            self._control(GOAWAY, 0, struct.pack(">II", self._last_id, 0))
        self.finished = True

    # frames in -------------------------------------------------------------------------

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._decompress.decompress(block)
        (count,), at = struct.unpack_from(">I", raw), 4
        headers: dict[str, str] = {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, at)
            name = raw[at + 4:at + 4 + size].decode().lower()
            at += 4 + size
            (size,) = struct.unpack_from(">I", raw, at)
            headers[name] = raw[at + 4:at + 4 + size].decode().split("\x00")[0]
            at += 4 + size
        return headers

    def _frames(self) -> None:
        buf = self._inbuf
        while len(buf) >= 8:
            first, second = struct.unpack_from(">II", buf)
            length, flags = second & 0xFFFFFF, second >> 24
            if len(buf) < 8 + length:
                return
            body = bytes(buf[8:8 + length])
            del buf[:8 + length]
            if first & 0x80000000:
                self._control_frame(first & 0xFFFF, flags, body)
            else:
                stream = self.streams.get(first & 0x7FFFFFFF)
                if stream is None:
                    continue
                if body:
                    stream._arrived(body)
                if flags & FLAG_FIN:
                    stream._ended()

    def _control_frame(self, kind: int, flags: int, body: bytes) -> None:
        if kind == SYN_STREAM:
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            stream = Stream(self, sid, self._headers(body[10:]))
            self._last_id = max(self._last_id, sid)
            self.streams[sid] = stream
            if not self.on_stream(stream):
                self.reset(stream)
                return
            self._control(SYN_REPLY, 0, struct.pack(">I", sid) + self._header_block({}))
            if flags & FLAG_FIN:
                stream._ended()
        elif kind == RST_STREAM:
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            stream = self.streams.pop(sid, None)
            if stream is not None:
                stream.local_done = True
                if not stream.remote_done:
                    stream._ended()
        elif kind == PING:
            self._control(PING, 0, body)
        elif kind == GOAWAY:
            self._lost()
        # SETTINGS, WINDOW_UPDATE and HEADERS carry nothing these streams use.

    def _lost(self) -> None:
        if not self.peer_gone:
            self.peer_gone = True
            self._outbuf.clear()
            for stream in list(self.streams.values()):
                if not stream.remote_done:
                    stream._ended()
            self.on_close()

    # the loop --------------------------------------------------------------------------

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._readers[fd] = on_readable
        self._register(fd)

    def unwatch(self, fd: int) -> None:
        self._readers.pop(fd, None)
        self._register(fd)

    def write(self, fd: int, data: bytes) -> None:
        """Queue ``data`` for a non-blocking fd (a pipe, terminal or socket)."""
        if data:
            self._pending.setdefault(fd, bytearray()).extend(data)
            self._drain(fd)

    def then(self, fd: int, action: Callable[[], None]) -> None:
        """Run ``action`` once everything queued for ``fd`` is written."""
        if self._pending.get(fd):
            self._after_drain[fd] = action
        else:
            action()

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self._timers.append((time.monotonic() + delay, action))

    def forget(self, fd: int) -> None:
        """Stop every interest in ``fd`` (before it is closed)."""
        self._readers.pop(fd, None)
        self._pending.pop(fd, None)
        self._after_drain.pop(fd, None)
        self._register(fd)

    def _register(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._readers else 0) | \
            (selectors.EVENT_WRITE if self._pending.get(fd) else 0)
        try:
            self.selector.modify(fd, mask) if mask else self.selector.unregister(fd)
        except KeyError:
            if mask:
                self.selector.register(fd, mask)
        except (ValueError, OSError):
            pass

    def _drain(self, fd: int) -> None:
        buf = self._pending.get(fd)
        while buf:
            try:
                written = os.write(fd, buf[:65536])
            except BlockingIOError:
                break
            except OSError:
                buf.clear()
                break
            del buf[:written]
        if not buf:
            self._pending.pop(fd, None)
            action = self._after_drain.pop(fd, None)
            if action is not None:
                action()
        self._register(fd)

    def _read_socket(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            except (ssl.SSLWantWriteError, InterruptedError):
                break
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self._lost()
                return
            self._inbuf += data
        self._frames()

    def _write_socket(self) -> None:
        while self._outbuf:
            try:
                sent = self.sock.send(self._outbuf[:65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except (OSError, ssl.SSLError):
                self._lost()
                return
            del self._outbuf[:sent]

    def run(self, deadline: float | None = None) -> None:
        """Serve until :meth:`finish` (and everything is sent) or the client is gone."""
        sock_fd = self.sock.fileno()
        while not self.peer_gone:
            self._write_socket()
            if self.finished and not self._outbuf:
                break
            now = time.monotonic()
            due = [t for t in self._timers if t[0] <= now]
            if due:
                self._timers = [t for t in self._timers if t[0] > now]
                for _, action in due:
                    action()
                continue
            timeout = min((t[0] for t in self._timers), default=now + 1.0) - now
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._outbuf else 0)
            self.selector.modify(self.sock, mask)
            for key, events in self.selector.select(max(0.0, timeout)):
                fd = key.fd
                if fd == sock_fd:
                    if events & selectors.EVENT_READ:
                        self._read_socket()
                    continue
                if events & selectors.EVENT_WRITE:
                    self._drain(fd)
                if events & selectors.EVENT_READ and fd in self._readers:
                    self._readers[fd]()
            if deadline is not None and time.monotonic() > deadline:
                break
        self.close()

    def close(self) -> None:
        for fd in list(self._readers) + list(self._pending):
            self.forget(fd)
        self.selector.close()
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(2)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
