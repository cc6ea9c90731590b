"""The one error hierarchy for every failure a user can cause.

Each error carries a message (what went wrong) and a hint (what to do about it).
The CLI and the TUI print both, never a traceback (unless --debug).
"""

from __future__ import annotations


class SimError(Exception):
    """A failure the user can act on: ``message`` says what, ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ScenarioError(SimError):
    """A scenario or exam file is unreadable or invalid; ``problems`` lists each one."""

    def __init__(self, message: str, hint: str = "", problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or []


class CatalogError(SimError):
    """Scenario packs collide or cannot be found."""


class SessionError(SimError):
    """No active session, one already running, or the session is in the wrong state."""


class ClusterError(SimError):
    """A practice cluster could not be created, reached or removed."""


class BinaryMissing(ClusterError):
    """A required program (etcd, kube-apiserver, kubectl, ...) is not available."""


class PortBusy(ClusterError):
    """A port the cluster needs is taken."""


class NamespacesUnavailable(ClusterError):
    """This machine does not allow the Linux namespaces the embedded driver needs."""


class DockerUnavailable(ClusterError):
    """Docker (or kind) is not installed or not running."""


class CheckError(SimError):
    """A checker or fault is unknown or was given bad parameters."""
