"""A cluster made ahead of time, while the learner reads the catalog.

Making a cluster is most of the wait between choosing a task and reading it: an API server
alone takes seconds to start. The TUI therefore keeps one cluster of the shape most tasks
ask for (one control plane running kubeadm's four static pods) ready in the background, on
the embedded driver. When the learner starts a task whose cluster is of that shape,
:meth:`Standby.take` hands the ready cluster over and only the task's setup is left to
run; a task of another shape (several control planes, a jump host, etcd run by systemd)
makes its own cluster as before.

The cluster is fresh: nothing ran on it but its own start, as for a cluster made after the
Enter key, and one ``kubectl apply --dry-run=server`` that changes nothing in it: kubectl's
first apply on a node fetches the API's discovery and OpenAPI documents into
``/root/.kube/cache``, half a second of a task's setup that is better spent while the
learner reads. It belongs to this process until taken; :meth:`Standby.discard` (on quitting)
removes it, and ``cka-sim doctor --clean`` removes one a killed TUI left behind, as it
does every cluster no session uses.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from collections.abc import Callable

from simulator.cluster import get_driver
from simulator.cluster.node import ClusterSpec, Step
from simulator.envflags import env_flag
from simulator.errors import SimError

DRIVER = "local"
"""Only the embedded driver keeps one: a kind cluster on standby would hold a Docker
container and about a gigabyte of memory for a task the learner may never start."""


def enabled() -> bool:
    """Whether the TUI keeps a cluster ready (``CKA_SIM_STANDBY=0`` turns it off)."""
    return env_flag("CKA_SIM_STANDBY", True)


def default_spec(name: str) -> ClusterSpec:
    """The shape most tasks ask for: a scenario's default cluster."""
    from simulator.scenario.models import ClusterReq

    return ClusterReq().to_spec(name)


# what a task's setup applies most (core/v1 and apps/v1 kinds), so that kubectl's first
# apply has read their API documents already; dry run: nothing is stored
_WARM_UP = {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warm-up", "namespace": "default"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "warm-up", "namespace": "default"},
     "spec": {"selector": {"matchLabels": {"app": "warm-up"}},
              "template": {"metadata": {"labels": {"app": "warm-up"}},
                           "spec": {"containers": [{"name": "warm-up", "image": "warm-up"}]}}}},
]}


def _warm_up(cluster) -> None:
    """Fill kubectl's discovery and OpenAPI caches on the first node (best effort)."""
    cluster.nodes[0].run(["kubectl", "apply", "--dry-run=server", "-f", "-"],
                         input=json.dumps(_WARM_UP).encode(), timeout=30)


def _shape(spec: ClusterSpec) -> ClusterSpec:
    return dataclasses.replace(spec, name="")


class Standby:
    """At most one ready cluster of ``default_spec``'s shape, made in a thread.

    ``prepare`` starts making one unless one is ready or being made; ``take(spec)`` returns
    its name when ``spec`` has its shape, waiting for one still being made, and forgets it;
    ``discard`` removes one not taken.
    """

    def __init__(self, driver: str = DRIVER) -> None:
        self.driver = driver
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._name: str | None = None
        self._ready = False
        self._closed = False
        self.error: str | None = None
        self.on_change: Callable[[], None] = lambda: None

    @property
    def ready(self) -> bool:
        """A cluster is made and not yet taken."""
        with self._lock:
            return self._ready and self._name is not None

    @property
    def making(self) -> bool:
        with self._lock:
            return self._thread is not None and not self._done.is_set()

    def prepare(self) -> None:
        """Start making a cluster in the background unless one is ready or on its way."""
        with self._lock:
            if self._closed or self._name is not None:
                return
            self._name = f"cka-{secrets.token_hex(3)}"
            self._ready, self.error = False, None
            self._done = threading.Event()
            self._thread = threading.Thread(target=self._make, args=(self._name, self._done),
                                            name="standby-cluster", daemon=True)
            self._thread.start()

    def _make(self, name: str, done: threading.Event) -> None:
        drv = get_driver(self.driver)
        try:
            _warm_up(drv.create(default_spec(name), lambda step: None))
        except BaseException as exc:  # a bug must not kill the TUI either: say it, make none
            with self._lock:
                if isinstance(exc, SimError):
                    self.error = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
                else:
                    self.error = repr(exc)
                if self._name == name:
                    self._name = None
        else:
            with self._lock:
                keep = self._name == name and not self._closed
                if keep:
                    self._ready = True
            if not keep:  # discarded while it was being made
                drv.delete(name)
        finally:
            done.set()
            self.on_change()

    def take(self, spec: ClusterSpec, progress: Callable[[Step], None] = lambda step: None,
             timeout: float = 120) -> str | None:
        """The standby cluster's name when ``spec`` has its shape (it is then the caller's
        to use and remove); None when there is none or the shape differs. A cluster still
        being made is waited for: it is further along than a new one would be."""
        if _shape(spec) != _shape(default_spec("x")):
            return None
        with self._lock:
            name, done = self._name, self._done
            if name is None or self._thread is None:
                return None
        if not done.is_set():
            progress(Step("nodes", 0, 1, "finishing the cluster made while you read the catalog"))
            done.wait(timeout)
        with self._lock:
            if self._name != name or not self._ready:
                return None
            self._name, self._ready, self._thread = None, False, None
        self.on_change()
        return name

    def discard(self, timeout: float = 120) -> None:
        """Remove a cluster not taken and make no more. One still being made is waited
        for (at most ``timeout`` seconds) and removed: a process that ended during its
        making would leave half a cluster behind."""
        with self._lock:
            self._closed = True
            name, ready, thread = self._name, self._ready, self._thread
            self._name, self._ready = None, False
        if thread is not None and thread.is_alive():
            thread.join(timeout)  # its end sees the name forgotten and removes the cluster
        elif name is not None and ready:
            get_driver(self.driver).delete(name)
