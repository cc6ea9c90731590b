"""``kubectl exec``, ``attach`` and ``port-forward`` on a practice node: the kubelet's streams.

kubectl 1.35 opens a WebSocket to the API server, which translates it to SPDY/3.1 towards
the node's kubelet (port 10250, ``/exec/<namespace>/<pod>/<container>``,
``/attach/...``, ``/portForward/<namespace>/<pod>``). On a kubeadm node the kubelet hands
the connection to containerd's streaming server (``k8s.io/kubelet/pkg/cri/streaming``).
This module speaks what that server speaks:

- SPDY/3.1 (:mod:`simulator.cluster.local.spdy`) with the subprotocols
  ``v4.channel.k8s.io`` down to ``channel.k8s.io`` for exec and attach (a stream per
  channel, header ``streamType``: ``error``, ``stdin``, ``stdout``, ``stderr``,
  ``resize``) and ``portforward.k8s.io`` for port-forward;
- exec: the command starts once every expected stream is open; its output goes to the
  stdout and stderr streams (a pseudo-terminal's to stdout with ``tty=1``); resize events
  are JSON ``{"Width": W, "Height": H}``; the end is a ``metav1.Status`` on the error
  stream (v4: JSON, ``Success`` or ``NonZeroExitCode`` with the exit code as a cause, which
  kubectl turns into "command terminated with exit code N" and its own exit status;
  v1-v3: only a failure's text);
- attach: the container's output from now on, until it exits;
- port-forward: per client connection a pair of streams (``error`` and ``data``, with
  ``port`` and ``requestID`` headers); the data stream is spliced with a TCP connection to
  that port in the pod's network namespace. Static pods use the node's network, which is
  this process's.

The exec'd command runs inside the container's root and mounts (``nsenter --target PID
--mount --root --wd``, run chrooted in the node so that PID and ``/proc`` are the node's)
with the container's environment, as ``crictl exec`` does, and like it refuses what the
distroless control-plane images do not ship (``crictl.exec_refusal``: no ``sh`` in etcd). The node's PID 1 reaps every
child, so a small ``sh`` runs the command and reports its exit status on fd 3. With a
terminal, ``setsid --ctty`` makes the pseudo-terminal the command's controlling terminal.

A connection is served by its request's thread in the session's selector loop, so a
command that does not read its input while writing its output cannot dead-lock it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import struct
import termios
import threading
from pathlib import Path
from typing import Any

from simulator.cluster.local import crictl
from simulator.cluster.local.spdy import Session, Stream

EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")
PORT_FORWARD_PROTOCOLS = ("portforward.k8s.io",)
STREAM_CREATION_TIMEOUT = 30.0
OUTPUT_GRACE = 2.0
"""Seconds to keep reading a command's output after it exited (background children may
hold the pipe open; containerd waits for the output too, this bounds it)."""
ATTACH_POLL = 0.2
CHUNK = 32 * 1024

# exec and attach ---------------------------------------------------------------------

def _status(code: int | None, command: list[str], error: str = "") -> dict[str, Any]:
    if error:  # apierrors.NewInternalError
        return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {error}",
                "reason": "InternalError",
                "details": {"causes": [{"message": error}]}, "code": 500}
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": (f"command terminated with non-zero exit code: error executing command "
                        f"[{' '.join(command)}], exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _nonblocking(fd: int) -> int:
    os.set_blocking(fd, False)
    return fd


_EXEC_SCRIPT = 'p=$1; shift; $WRAP nsenter --target "$p" --mount --net --uts --ipc --root --wd -- "$@" 3>&-; echo $? >&3'


class _Exec:
    """One ``kubectl exec`` (or attach): waits for its streams, runs, reports."""

    def __init__(self, session: Session, protocol: str, options: dict[str, bool],
                 record: dict[str, Any], command: list[str], rootfs: Path,
                 state_dir: Path, attach: bool) -> None:
        self.session, self.protocol, self.options = session, protocol, options
        self.record, self.command, self.rootfs = record, command, rootfs
        self.state_dir, self.attach = state_dir, attach
        self.streams: dict[str, Stream] = {}
        self.expected = {"error"} | {name for name, flag in (
            ("stdin", "stdin"), ("stdout", "stdout"), ("stderr", "stderr")) if options[flag]}
        if options["tty"] and protocol in ("v4.channel.k8s.io", "v3.channel.k8s.io"):
            self.expected.add("resize")
        self.started = False
        self.code: int | None = None
        self.open_outputs: set[int] = set()
        self.master: int | None = None
        self.stdin_fd: int | None = None
        self.status_fd: int | None = None
        self.status_text = b""
        self.size: tuple[int, int] | None = None
        self.done = False
        session.on_stream = self._stream
        session.later(STREAM_CREATION_TIMEOUT, self._timeout)

    def _stream(self, stream: Stream) -> bool:
        if stream.type not in ("error", "stdin", "stdout", "stderr", "resize"):
            return False
        self.streams[stream.type] = stream
        if stream.type == "resize":
            buffer = bytearray()

            def resized(data: bytes) -> None:
                buffer.extend(data)
                decoder = json.JSONDecoder()
                while buffer:
                    text = buffer.decode(errors="replace").lstrip()
                    try:
                        size, end = decoder.raw_decode(text)
                    except ValueError:
                        return
                    del buffer[:len(buffer) - len(text[end:].encode())]
                    self.size = (int(size.get("Height", 0)), int(size.get("Width", 0)))
                    self._apply_size()
            stream.listen(resized)
        if not self.started and self.expected <= set(self.streams):
            self.started = True
            self.session.later(0, self._start)
        return True

    def _timeout(self) -> None:
        if not self.started:
            self.session.finish()

    def _apply_size(self) -> None:
        if self.master is not None and self.size is not None:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", self.size[0], self.size[1], 0, 0))
            except OSError:
                pass

    # running -----------------------------------------------------------------------

    def _start(self) -> None:
        if self.attach:
            self._start_attach()
            return
        refusal = crictl.exec_refusal(self.command, str(self.record.get("image", "")),
                                      str(self.record.get("id", "")))
        if refusal:
            self._end(None, f"error executing command in container: {refusal}")
            return
        tty = self.options["tty"]
        env = crictl.exec_env(self.record, tty)
        env["WRAP"] = "setsid --ctty" if tty else ""
        actions: list[tuple[Any, ...]] = []
        close_after: list[int] = []
        if tty:
            master, slave = os.openpty()
            self.master = _nonblocking(master)
            self._apply_size()
            actions += [(os.POSIX_SPAWN_DUP2, slave, n) for n in (0, 1, 2)]
            close_after.append(slave)
            self._output(master, self.streams.get("stdout"))
            if "stdin" in self.streams:
                self.stdin_fd = master
        else:
            if "stdin" in self.streams:
                read, write = os.pipe()
                self.stdin_fd = _nonblocking(write)
                actions.append((os.POSIX_SPAWN_DUP2, read, 0))
                close_after.append(read)
            else:
                actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
            for n, name in ((1, "stdout"), (2, "stderr")):
                if name in self.streams:
                    read, write = os.pipe()
                    actions.append((os.POSIX_SPAWN_DUP2, write, n))
                    close_after.append(write)
                    self._output(_nonblocking(read), self.streams[name])
                else:
                    actions.append((os.POSIX_SPAWN_OPEN, n, os.devnull, os.O_WRONLY, 0))
        status_r, status_w = os.pipe()
        actions.append((os.POSIX_SPAWN_DUP2, status_w, 3))
        close_after.append(status_w)
        self.status_fd = _nonblocking(status_r)
        self.session.watch(status_r, self._status_readable)
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        argv = [chroot, str(self.rootfs), "/bin/sh", "-c", _EXEC_SCRIPT, "sh",
                str(self.record.get("pid", 0)), *self.command]
        try:
            pid = os.posix_spawn(chroot, argv, env, file_actions=actions, setsid=True)
        except OSError as exc:
            for fd in close_after:
                os.close(fd)
            self._end(None, f"error executing command in container: {exc}")
            return
        for fd in close_after:
            os.close(fd)
        if os.getpid() != 1:  # PID 1 (the node's init) reaps every child itself
            threading.Thread(target=_reap, args=(pid,), daemon=True).start()
        stdin = self.streams.get("stdin")
        if stdin is not None and self.stdin_fd is not None:
            fd = self.stdin_fd
            stdin.listen(lambda data: self.session.write(fd, data), self._stdin_closed)

    def _stdin_closed(self) -> None:
        fd = self.stdin_fd
        if fd is None or fd == self.master:
            return  # a terminal's input ends with the session, as with a runtime's exec
        self.stdin_fd = None

        def close() -> None:
            self.session.forget(fd)
            os.close(fd)
        self.session.then(fd, close)

    def _output(self, fd: int, stream: Stream | None) -> None:
        self.open_outputs.add(fd)

        def readable() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the terminal's last holder is gone
                data = b""
            if data:
                if stream is not None:
                    stream.send(data)
                return
            self.session.unwatch(fd)
            self.open_outputs.discard(fd)
            if fd != self.master:
                os.close(fd)
            self._maybe_end()
        self.session.watch(fd, readable)

    def _status_readable(self) -> None:
        assert self.status_fd is not None
        try:
            data = os.read(self.status_fd, 64)
        except BlockingIOError:
            return
        if data:
            self.status_text += data
            return
        self.session.forget(self.status_fd)
        os.close(self.status_fd)
        self.status_fd = None
        text = self.status_text.decode(errors="replace").strip()
        self.code = int(text) if text.isdigit() else 137
        self.session.later(OUTPUT_GRACE, lambda: self._end(self.code))
        self._maybe_end()

    def _maybe_end(self) -> None:
        if self.code is not None and not self.open_outputs:
            self._end(self.code)

    def _end(self, code: int | None, error: str = "") -> None:
        if self.done:
            return
        self.done = True
        for fd in list(self.open_outputs):
            self.session.forget(fd)
            if fd != self.master:
                os.close(fd)
        self.open_outputs.clear()
        if self.master is not None:
            self.session.forget(self.master)
            os.close(self.master)
            self.master = None
        if self.stdin_fd is not None:
            self.session.forget(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = None
        status = _status(code, self.command, error)
        error_stream = self.streams.get("error")
        if error_stream is not None:
            if self.protocol == "v4.channel.k8s.io":
                error_stream.send(json.dumps(status, separators=(",", ":")).encode())
            elif status["status"] != "Success":
                error_stream.send(status["message"].encode())
            error_stream.close()
        for name in ("stdout", "stderr"):
            if name in self.streams:
                self.streams[name].close()
        self.session.finish()

    # attach ------------------------------------------------------------------------

    def _start_attach(self) -> None:
        log_path = self.rootfs / str(self.record.get("logPath", "")).lstrip("/")
        state = self.state_dir / "containers" / f"{self.record['id']}.json"
        try:
            handle = open(log_path, "rb")  # closed when the attach ends
        except OSError as exc:
            self._end(None, f"error attaching to container: {exc}")
            return
        handle.seek(0, os.SEEK_END)
        pending = bytearray()

        def poll() -> None:
            if self.done:
                handle.close()
                return
            pending.extend(handle.read())
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                parts = line.split(b" ", 3)
                if len(parts) < 3:
                    continue
                body = (parts[3] if len(parts) == 4 else b"") + \
                    (b"" if parts[2] == b"P" else b"\n")
                target = self.streams.get("stderr" if parts[1] == b"stderr" else "stdout") \
                    or self.streams.get("stdout")
                if target is not None:
                    target.send(body)
            try:
                running = json.loads(state.read_text()).get("state") == "CONTAINER_RUNNING"
            except (OSError, ValueError):
                running = False
            if not running:
                handle.close()
                self._end(0)
                return
            self.session.later(ATTACH_POLL, poll)
        self.session.on_close = handle.close
        poll()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def serve_exec(sock: socket.socket, protocol: str, options: dict[str, bool],
               record: dict[str, Any], command: list[str], rootfs: Path, state_dir: Path,
               attach: bool = False) -> None:
    """Serve an upgraded exec (or attach) connection until the command ends."""
    session = Session(sock)
    _Exec(session, protocol, options, record, command, rootfs, state_dir, attach)
    session.run()


# port-forward ------------------------------------------------------------------------

class _Forward:
    """The stream pairs of one ``kubectl port-forward`` connection."""

    def __init__(self, session: Session, pod: str, uid: str, host: str = "127.0.0.1") -> None:
        self.session, self.pod, self.uid, self.host = session, pod, uid, host
        self.pairs: dict[str, dict[str, Stream]] = {}
        session.on_stream = self._stream

    def _stream(self, stream: Stream) -> bool:
        port, kind = stream.headers.get("port", ""), stream.type
        if not port.isdigit() or not 0 < int(port) < 65536 or kind not in ("error", "data"):
            return False
        request = stream.headers.get("requestid") or str(
            stream.id if kind == "error" else stream.id - 2)
        pair = self.pairs.setdefault(request, {})
        if kind in pair:
            return False
        pair[kind] = stream
        if len(pair) == 2:
            self.session.later(0, lambda: self._connect(pair, int(port)))
        return True

    def _connect(self, pair: dict[str, Stream], port: int) -> None:
        data, error = pair["data"], pair["error"]
        try:
            conn = socket.create_connection((self.host, port), timeout=5)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            reason = {errno.ECONNREFUSED: "connection refused"}.get(exc.errno or 0,
                                                                    reason.lower())
            error.send((f"error forwarding port {port} to pod {self.pod}, uid {self.uid}: "
                        f"failed to connect to localhost:{port} inside namespace of pod "
                        f"{self.pod}, IPv4: dial tcp4 127.0.0.1:{port}: connect: {reason}")
                       .encode())
            self.session.reset(data)
            self.session.reset(error)
            return
        conn.setblocking(False)
        fd = conn.fileno()
        closed = False

        def shut() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            self.session.forget(fd)
            conn.close()
            data.close()
            error.close()

        def readable() -> None:
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if chunk:
                data.send(chunk)
            else:
                shut()

        def client_done() -> None:
            if closed:
                return

            def half_close() -> None:
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            self.session.then(fd, half_close)

        self.session.watch(fd, readable)
        data.listen(lambda chunk: self.session.write(fd, chunk), client_done)


def serve_port_forward(sock: socket.socket, pod: str, uid: str, host: str = "127.0.0.1") -> None:
    """Serve an upgraded port-forward connection until the client closes it; ``host`` is
    where the pod's ports are seen from the node (a workload pod's own IP)."""
    session = Session(sock)
    _Forward(session, pod, uid, host)
    session.run()
