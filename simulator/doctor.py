"""What this machine supports, and the clean-up of clusters a killed cka-sim left behind."""

from __future__ import annotations

import shutil
import subprocess

from simulator.errors import SimError


def _docker() -> tuple[bool, str]:
    if not shutil.which("docker"):
        return False, "not installed; the kind driver needs Docker (https://docs.docker.com/engine/install/)"
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, "the Docker engine does not answer; is the daemon running?"
    if done.returncode != 0:
        return False, "the Docker client is installed but no engine runs; start it (systemctl start docker)"
    return True, f"engine {done.stdout.strip()}"


def report() -> list[tuple[str, bool, str]]:
    """(name, ok, detail) lines for ``cka-sim doctor``; details of failures are hints."""
    lines: list[tuple[str, bool, str]] = []
    try:
        from simulator.cluster.local.driver import LocalDriver

        lines += LocalDriver().doctor()
    except SimError as exc:
        lines.append(("embedded driver", False, f"{exc.message}; {exc.hint}"))
    ok, detail = _docker()
    lines.append(("docker", ok, detail))
    kind = shutil.which("kind")
    lines.append(("kind", bool(kind), kind or "not installed; see https://kind.sigs.k8s.io/docs/user/quick-start/"))
    return lines


def clean_leftovers() -> list[str]:
    """Remove every local cluster but the active session's (a killed CLI or TUI, a
    half-made cluster, stray processes), and a session file whose cluster is gone."""
    from simulator.cluster.local.driver import LocalDriver
    from simulator.session import Session, session_file

    try:
        session = Session.load()
    except SimError:
        session_file().unlink(missing_ok=True)
        return LocalDriver().clean() + ["an unreadable session file"]
    keep = {session.cluster_name} if session is not None and session.status != "provisioning" else set()
    removed = LocalDriver().clean(keep=keep)
    if session is not None and session.driver == "local":
        alive = {c.name for c in LocalDriver().list() if c.state == "running"}
        if session.cluster_name not in alive:
            session_file().unlink(missing_ok=True)
            removed.append(f"session {session.scenario} (its cluster {session.cluster_name} is gone)")
    return removed
