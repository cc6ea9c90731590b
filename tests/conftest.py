"""Shared test setup: every test run keeps its user state in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SOLVE = ("ETCDCTL_API=3 etcdctl snapshot save /opt/backup/{name}.db --endpoints=https://127.0.0.1:2379 "
         "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt "
         "--key=/etc/kubernetes/pki/etcd/server.key")
"""The reference answer of the skeleton backup task, for NAME the drawn ``backup`` var."""


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clusters() -> set[str]:
    """Names of the embedded driver's clusters in the current user home."""
    from simulator import paths

    root = paths.data_dir() / "clusters"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory):
    """CKA_SIM_HOME points at a fresh directory so tests never touch real user state."""
    home = tmp_path_factory.mktemp("cka-sim-home")
    old = os.environ.get("CKA_SIM_HOME")
    os.environ["CKA_SIM_HOME"] = str(home)
    # no cluster made in advance behind the TUI tests' backs: the tests of it ask for one
    os.environ["CKA_SIM_STANDBY"] = "0"
    yield home
    if old is None:
        os.environ.pop("CKA_SIM_HOME", None)
    else:
        os.environ["CKA_SIM_HOME"] = old


def bare_etcd(skeleton: str) -> str:
    """The skeleton task on etcd alone, without its default API server: for the tests of
    the flows around a task (CLI, TUI, exams), which start several clusters and need no
    API server. The skeleton as written (kubeadm's control plane) passes its gate in
    test_cli."""
    out = skeleton.replace("  # components: [etcd]", "  components: [etcd]  ", 1)
    assert out != skeleton, "the skeleton no longer has the commented components line"
    return out


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cka-sim`` as a user would, in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True,
                          text=True, env=full_env, input=input, cwd=cwd, timeout=timeout)


def can_make_namespaces() -> bool:
    if not shutil.which("unshare"):
        return False
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork",
                           "--net", "--uts", "--ipc", "true"], capture_output=True)
    return done.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not can_make_namespaces(), reason="this machine does not allow Linux user namespaces "
    "(see `cka-sim doctor`)")


def real_kind_missing() -> str | None:
    """Why a real kind cluster cannot be made here (no docker client, no engine, no kind, or
    no node image the engine has), or None when it can."""
    import shutil
    import subprocess

    from simulator.cluster.kind import nodes as kind_nodes
    from simulator.cluster.kind.driver import KindDriver

    docker, kind = shutil.which("docker"), kind_nodes.which("kind")
    reasons = []
    if docker is None:
        reasons.append("docker is not installed")
    else:
        try:
            done = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                                  capture_output=True, text=True, timeout=20, check=False)
            if done.returncode != 0:
                said = (done.stderr.strip().splitlines() or ["no output"])[-1]
                reasons.append(f"the Docker engine does not answer ({said}); "
                               "`.ci/kind/engine.sh` starts one")
            else:
                image = KindDriver().image
                has = subprocess.run([docker, "image", "inspect", image], capture_output=True,
                                     timeout=20, check=False)
                if has.returncode != 0:
                    reasons.append(f"the engine has no node image {image}; build one with "
                                   "`.ci/kind/node-image.sh` and set CKA_SIM_KIND_IMAGE")
        except subprocess.TimeoutExpired:
            reasons.append("the Docker engine does not answer")
    if kind is None:
        reasons.append("kind is not installed (https://kind.sigs.k8s.io, or "
                       "`.ci/build-binaries.sh --kind`)")
    return "; ".join(reasons) or None
