"""Nodes of a kind cluster: Docker containers reached with the ``docker`` command.

Every call is an argv list handed to ``docker``; values travel as arguments or through
``docker exec -e``, never inside a shell string. A node keeps two names: the exam's
(``controlplane``, ``node01``), which scenarios use, and the container's
(``<cluster>-control-plane``), which Docker uses.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from simulator.cluster.node import CANDIDATE, JUMP_HOST_ROLE, Completed, run_process
from simulator.errors import ClusterError, DockerUnavailable
from simulator.paths import cache_dir
from simulator.versions import KIND_VERSION

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GRACE = 5.0

DOCKER_HINT = ("Install Docker (https://docs.docker.com/engine/install/) and start its daemon "
               "(`sudo systemctl start docker`), or use the embedded driver (`--driver local`).")
ENGINE_HINT = ("Start the Docker daemon (`sudo systemctl start docker`, or open Docker Desktop) "
               "and try again, or use the embedded driver (`--driver local`).")
KIND_HINT = (f"Install kind {KIND_VERSION} from "
             "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (one static binary "
             "on PATH), or build it with `.ci/build-binaries.sh --kind`, or use the embedded "
             "driver (`--driver local`).")

_ENGINE_DOWN = ("Cannot connect to the Docker daemon", "Is the docker daemon running",
                "error during connect")
_GONE = re.compile(r"No such container|is not running|is paused|is restarting", re.IGNORECASE)

_READ = 'test -e "$1" || exit 3; test -d "$1" && exit 4; exec cat -- "$1"'
_WRITE = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'


def kind_in_cache() -> Path:
    """Where ``.ci/build-binaries.sh --kind`` puts kind of the pinned version."""
    return cache_dir() / "bin" / f"kind-{KIND_VERSION}" / "kind"


def which(name: str) -> str | None:
    """Absolute path of ``docker`` or ``kind``, or None: PATH first, then (kind only) the
    user cache."""
    found = shutil.which(name)
    if found is None and name == "kind":
        cached = kind_in_cache()
        if cached.is_file() and os.access(cached, os.X_OK):
            found = str(cached)
    return found


def tool(name: str, hint: str) -> str:
    """Absolute path of ``docker`` or ``kind``; DockerUnavailable with ``hint`` if absent."""
    found = which(name)
    if not found:
        raise DockerUnavailable(f"{name} is not installed", hint=hint)
    return found


def engine_down(text: str) -> bool:
    """True when ``docker`` output says the engine does not answer."""
    return any(marker in text for marker in _ENGINE_DOWN)


def docker(argv: Sequence[str], *, input: bytes | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run ``docker argv...`` and return its outcome; DockerUnavailable when Docker is
    missing, does not answer in ``timeout`` seconds or reports its engine down."""
    binary = tool("docker", DOCKER_HINT)
    try:
        done = subprocess.run([binary, *argv], input=input, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DockerUnavailable(f"docker {argv[0]} did not answer within {timeout:g} s",
                                hint="The Docker engine is overloaded or hung; check "
                                     "`docker info`, or restart the daemon.") from None
    said = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0 and engine_down(said):
        raise DockerUnavailable("the Docker engine does not answer",
                                hint="\n".join([*said.splitlines()[-1:], ENGINE_HINT]))
    return done


class KindNode:
    """A node of a kind cluster (implements the Node protocol).

    ``name`` is the exam's name of the node; ``container`` the Docker container behind it.
    """

    def __init__(self, name: str, container: str, role: str) -> None:
        self.name, self.container, self.role = name, container, role

    def __repr__(self) -> str:
        return f"KindNode({self.name!r}, container={self.container!r})"

    def _exec(self, argv: Sequence[str], *, input: bytes | None, timeout: float,
              env: dict[str, str] | None) -> Completed:
        argv = [str(a) for a in argv]
        if not argv:
            raise ClusterError("nothing to run", hint="pass a command as a list of arguments")
        flags = ["exec", "-i", "-w", "/root"]
        for key, value in (env or {}).items():
            if not ENV_KEY_RE.match(key):
                raise ClusterError(f"invalid environment variable name {key!r}",
                                   hint="use letters, digits and underscores")
            flags += ["-e", f"{key}={value}"]
        # A killed `docker exec` client leaves its command running in the container, so
        # the command carries its own deadline, a little after ours.
        inner = ["timeout", "-s", "KILL", "--", f"{timeout + GRACE:g}", *argv]
        binary = tool("docker", DOCKER_HINT)
        done = run_process([binary, *flags, self.container, *inner], argv, self.name,
                           input=input or b"", timeout=timeout)
        if done.returncode != 0 and not done.stdout:
            text = done.err
            if engine_down(text):
                raise DockerUnavailable("the Docker engine does not answer", hint=ENGINE_HINT)
            if text.startswith("Error response from daemon") and _GONE.search(text):
                raise ClusterError(f"node {self.name} (container {self.container}) is not "
                                   "running", hint="Run `cka-sim stop`, then start the task "
                                                   "again.\n" + text.strip())
        return done

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 30,
            env: dict[str, str] | None = None) -> Completed:
        """Run ``argv`` as root inside the node's container (cwd ``/root``).

        ``env`` adds variables (through ``docker exec -e``). Raises ClusterError if the
        container is gone or the command outlives ``timeout``.
        """
        return self._exec(argv, input=input, timeout=timeout, env=env)

    def read_file(self, path: str) -> bytes:
        """Bytes of ``path`` as seen inside the node; FileNotFoundError if absent."""
        done = self._exec(["sh", "-c", _READ, "sh", path], input=None, timeout=60, env=None)
        if done.returncode == 3:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if done.returncode == 4:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if done.returncode != 0:
            raise ClusterError(f"cannot read {path} on {self.name}",
                               hint=done.err.strip() or f"cat exited with {done.returncode}")
        return done.stdout

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace ``path`` inside the node (parents created), with ``mode``."""
        self._exec(["sh", "-c", _WRITE, "sh", path, f"{mode:o}"], input=data, timeout=60,
                   env=None).check()

    def shell_argv(self, *, tty: bool | None = None) -> list[str]:
        """argv of a root login shell in the container (ends with ``bash -l``; on the jump
        host ``candidate``'s). With a
        terminal on standard input (``tty`` None: this process's stdin) it gets one
        (``docker exec -it``); without, as in ``cka-sim shell -c CMD </dev/null`` or a
        pipe, input is passed through (``-i``), since ``-t`` would fail with "the input
        device is not a TTY"."""
        term = os.environ.get("TERM") or "xterm-256color"
        if tty is None:
            tty = _stdin_is_tty()
        flags = "-it" if tty else "-i"
        if self.role == JUMP_HOST_ROLE:  # the learner's user, as on the exam's base node
            return [tool("docker", DOCKER_HINT), "exec", flags, "-u", CANDIDATE, "-w",
                    f"/home/{CANDIDATE}", "-e", f"TERM={term}", "-e", f"HOME=/home/{CANDIDATE}",
                    "-e", f"USER={CANDIDATE}", self.container, "bash", "-l"]
        return [tool("docker", DOCKER_HINT), "exec", flags, "-w", "/root", "-e", f"TERM={term}",
                self.container, "bash", "-l"]


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False
