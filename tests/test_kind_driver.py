"""The kind driver through the Node API, against the real docker + kind where a Docker
engine, kind and a node image are here (CI's kind lane), and otherwise against stand-ins
(``tests/fakes``) whose "containers" are nodes of the embedded driver, with real namespaces
and real etcd.

Each test runs on one engine, the real one where it exists; one cluster (a control plane
and a worker) is shared by the tests of the module. Tests of what only a real cluster has
(kubelet, API server, pod network, image pulls) skip on the stand-ins and say so.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import pexpect
import pytest
from clusterkit import walk_from_jump_host
from conftest import real_kind_missing

from simulator.cluster import binaries, etcdunit
from simulator.cluster.kind import nodes as kind_nodes
from simulator.cluster.kind.driver import (
    KindDriver,
    etcd_tools,
    etcd_version_of,
    exam_name,
)
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec, Completed, kube_nodes, login_node
from simulator.errors import ClusterError, DockerUnavailable
from simulator.paths import clusters_dir
from simulator.registry import Context, get_checker

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests" / "fakes"
PKI = "/etc/kubernetes/pki/etcd"
TLS = [f"--cacert={PKI}/ca.crt", f"--cert={PKI}/server.crt", f"--key={PKI}/server.key"]

pytestmark = [pytest.mark.slow, pytest.mark.kind]


def _namespaces_missing() -> str | None:
    probe = LocalDriver()._probe_namespaces()
    return None if probe[1] else f"the fake engine needs Linux namespaces: {probe[2]}"


class Environ:
    """Set (or with None, unset) environment variables for a while, then restore them."""

    def __init__(self, **values: str | None) -> None:
        self.values = values
        self.old: dict[str, str | None] = {}

    def __enter__(self) -> Self:
        for key, value in self.values.items():
            self.old[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        for key, value in self.old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fake_environ(state: Path | None) -> Environ:
    """The environment under which ``docker`` and ``kind`` are the stand-ins; without a
    ``state`` directory their engine is down."""
    return Environ(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}",
                   CKA_SIM_FAKE_DOCKER=str(state) if state else None, CKA_SIM_FAKE_PYTHON=sys.executable,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                            os.environ.get("PYTHONPATH")])))


# why the real engine cannot be used here (None: it can), asked once per run
_real_engine_reason = functools.cache(real_kind_missing)


@pytest.fixture(scope="module", params=["fake", "real"])
def engine(request, tmp_path_factory):
    """The docker + kind the driver sees: the real commands where an engine, kind and a
    node image are here, else the stand-ins (so these tests still run on a machine without
    Docker). Never both: every behaviour is proved on the real engine where it exists."""
    if request.param == "fake" and _real_engine_reason() is None:
        pytest.skip("the real engine is here and runs these tests; the stand-in engine is "
                    "for machines without one")
    base = tmp_path_factory.mktemp(f"kind-{request.param}")
    if request.param == "fake":
        home = Environ(CKA_SIM_HOME=str(base / "home"), CKA_SIM_CACHE=str(base / "cache"))
    else:  # the user's cache: where kind and the etcd tools were built
        home = Environ(CKA_SIM_HOME=str(base / "home"))
    if request.param == "fake":
        reason = _namespaces_missing()
        if reason:
            pytest.skip(reason)
        with home, fake_environ(base / "engine"):
            yield request.param
    else:
        reason = _real_engine_reason()
        if reason:
            pytest.skip(f"real kind cluster not tested: {reason}")
        with home:
            yield request.param


@pytest.fixture(scope="module")
def made(engine):
    driver = KindDriver()
    steps = []
    cluster = driver.create(ClusterSpec(f"cka-test-{secrets.token_hex(3)}", workers=1),
                            steps.append)
    yield driver, cluster, steps
    driver.delete(cluster)


@pytest.fixture(scope="module")
def cluster(made):
    return made[1]


@pytest.fixture
def node(cluster):
    return cluster.node("controlplane")


def etcdctl(node, *args: str) -> Completed:
    return node.run(["etcdctl", "--endpoints=https://127.0.0.1:2379", *TLS, *args],
                    env={"ETCDCTL_API": "3"}, timeout=30)


def test_create_reports_progress_and_names_nodes_as_on_the_exam(made):
    _, cluster, steps = made
    names = list(dict.fromkeys(s.name for s in steps))
    assert names == ["nodes", "control plane", "tools", "ready"]
    assert all(s.total == 3 for s in steps) and steps[-1].done == 3
    tools = next(s for s in steps if s.name == "tools")
    assert re.search(r"etcdctl/etcdutl \d+\.\d+\.\d+", tools.detail)
    assert [n.name for n in cluster.nodes] == ["controlplane", "node01"]
    assert [n.container for n in cluster.nodes] == [f"{cluster.name}-control-plane",
                                                    f"{cluster.name}-worker"]


def test_run_returns_output_exit_status_and_stdin(node):
    done = node.run(["bash", "-c", 'read -r line; printf "%s|%s" "$line" "$PWD"; exit 3'],
                    input=b"from stdin\n")
    assert (done.returncode, done.out) == (3, "from stdin|/root")
    assert node.run(["id", "-u"]).out.strip() == "0"
    assert node.run(["no-such-program"]).returncode == 127


def test_env_values_reach_the_command_untouched(node):
    value = "a b 'single' \"double\" $(touch /tmp/injected) `id` ; *"
    done = node.run(["printenv", "VALUE"], env={"VALUE": value})
    assert done.out == value + "\n"
    assert not node.run(["test", "-e", "/tmp/injected"]).ok


def test_files_round_trip_through_awkward_paths(node):
    path = "/opt/exam files/it's a \"quoted\" $(touch /tmp/injected).db"
    data = bytes(range(256)) * 64
    node.write_file(path, data, 0o600)
    assert node.read_file(path) == data
    assert node.run(["stat", "-c", "%a", path]).out.strip() == "600"
    node.write_file(path, b"replaced", 0o644)
    assert node.read_file(path) == b"replaced"
    assert not node.run(["test", "-e", "/tmp/injected"]).ok


def test_missing_file_and_directory_are_told_apart(node):
    with pytest.raises(FileNotFoundError):
        node.read_file("/etc/kubernetes/no-such-file.yaml")
    with pytest.raises(IsADirectoryError):
        node.read_file("/etc/kubernetes")


def test_a_command_past_its_timeout_raises_cluster_error(node):
    began = time.monotonic()
    with pytest.raises(ClusterError, match="timed out"):
        node.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - began < 10


def test_etcdctl_answers_with_the_kubeadm_certificates(cluster, node):
    assert node.run(["which", "etcdctl", "etcdutl"]).out.split() == [
        "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl"]
    health = etcdctl(node, "endpoint", "health")
    assert health.ok and "is healthy" in health.out + health.err
    assert etcdctl(node, "put", "/cka-sim/kind", "works").ok
    assert etcdctl(node, "get", "/cka-sim/kind", "--print-value-only").out.strip() == "works"
    assert not cluster.node("node01").run(["which", "etcdctl"]).ok
    version = etcd_version_of(node.read_file("/etc/kubernetes/manifests/etcd.yaml"))
    assert version and re.fullmatch(r"\d+\.\d+\.\d+", version)


def test_checkers_pass_and_fail_on_kind_nodes(cluster):
    ctx = Context(cluster)
    assert get_checker("etcd.healthy")(ctx).passed
    assert get_checker("etcd.key")(ctx, key="/cka-sim/kind", value="works").passed
    missing = get_checker("etcd.key")(ctx, key="/cka-sim/never-written")
    assert not missing.passed and "not in etcd" in missing.detail


def test_login_shell_prompt_shows_the_clock_and_the_exam_node_name(node):
    node.write_file("/run/cka-sim/session.env",
                    f"CKA_SIM_TASK=etcd-backup\nCKA_SIM_DEADLINE={int(time.time()) + 600}\n"
                    .encode())
    shell = node.shell_argv(tty=True)
    assert shell[-2:] == ["bash", "-l"]
    child = pexpect.spawn(shell[0], shell[1:], encoding="utf-8", timeout=30,
                          dimensions=(24, 120), env={**os.environ, "TERM": "xterm"})
    try:
        child.expect(r"\[etcd-backup (9|10):\d\d\] root@controlplane:~# ")
        child.sendline("echo $(( 6 * 7 ))")
        child.expect("42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_shell_runs_a_command_with_and_without_a_terminal(engine, node, tmp_path):
    """`cka-sim shell -c CMD` from a script (no terminal) and from a terminal: output and
    exit status come through either way."""
    argv = node.shell_argv(tty=False)
    done = subprocess.run([*argv, "-c", "echo on $(cat /etc/cka-sim/node-name); exit 7"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (7, "on controlplane"), done.stderr
    piped = subprocess.run([*argv, "-c", "tr a-z A-Z"], input="from a pipe\n",
                           capture_output=True, text=True, timeout=60)
    assert (piped.returncode, piped.stdout) == (0, "FROM A PIPE\n"), piped.stderr
    child = pexpect.spawn(sys.executable, ["-c", "import os, sys; from simulator.cluster.kind "
                                           "import nodes; n = nodes.KindNode('controlplane', "
                                           f"{node.container!r}, 'control-plane'); a = "
                                           "n.shell_argv(); os.execvp(a[0], [*a, '-c', "
                                           "'test -t 0 && echo tty yes; exit 4'])"],
                          encoding="utf-8", timeout=60, env={**os.environ, "TERM": "xterm"},
                          cwd=str(REPO))
    child.expect("tty yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


def test_the_cluster_uses_the_exam_names(engine, cluster, node):
    """Node names, hostnames, static pod names and the etcd member carry the exam's names,
    not kind's container names."""
    if engine == "fake":
        pytest.skip("the stand-in engine runs no kubelet or API server; real kind only")
    assert node.run(["hostname"]).out.strip() == "controlplane"
    assert cluster.node("node01").run(["hostname"]).out.strip() == "node01"
    kubectl = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
    nodes = node.run([*kubectl, "get", "nodes", "-o", "name"], timeout=60)
    assert sorted(nodes.out.split()) == ["node/controlplane", "node/node01"], nodes.err
    pod = node.run([*kubectl, "-n", "kube-system", "get", "pod", "etcd-controlplane", "-o",
                    "name"], timeout=60)
    assert pod.out.strip() == "pod/etcd-controlplane", pod.err
    members = etcdctl(node, "member", "list")
    assert ", controlplane, https://" in members.out, members.out
    # the other node answers to its exam name, as `ssh node01` and `ping node01` need
    assert node.run(["getent", "hosts", "node01"]).check().out.split()[1:] == ["node01"]
    assert node.run(["ping", "-c", "1", "-W", "5", "node01"]).ok
    exec_ = node.run([*kubectl, "-n", "kube-system", "exec", "etcd-controlplane", "--",
                      "etcdctl", "version"], timeout=60)
    assert exec_.ok and "etcdctl version" in exec_.out, exec_.err


def test_kubectl_exec_and_port_forward_on_real_kind(engine, node):
    """What the embedded kubelet's exec and port-forward copy (tests/test_control_plane.py),
    on a real kubelet and containerd: same outcomes, same messages."""
    if engine == "fake":
        pytest.skip("the stand-in engine has no kubelet or containerd; real kind only")
    env = {"KUBECONFIG": "/etc/kubernetes/admin.conf"}
    tls = ["--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
           "--cert=/etc/kubernetes/pki/etcd/server.crt",
           "--key=/etc/kubernetes/pki/etcd/server.key"]
    exec_etcd = ["kubectl", "-n", "kube-system", "exec", "etcd-controlplane", "--"]
    saved = node.run([*exec_etcd, "etcdctl", *tls, "snapshot", "save",
                      "/var/lib/etcd/exec-backup.db"], env=env, timeout=60)
    assert "Snapshot saved at /var/lib/etcd/exec-backup.db" in saved.out + saved.err
    assert node.run(["test", "-s", "/var/lib/etcd/exec-backup.db"]).ok
    node.run(["rm", "-f", "/var/lib/etcd/exec-backup.db"])
    failed = node.run([*exec_etcd, "etcdctl", "--endpoints=127.0.0.1:1", "--dial-timeout=1s",
                       "get", "x"], env=env, timeout=60)
    assert failed.returncode == 1
    assert failed.err.rstrip().endswith("command terminated with exit code 1")
    shell = node.run([*exec_etcd, "sh", "-c", "echo hi"], env=env, timeout=60)
    assert not shell.ok and not shell.out
    assert 'exec: "sh": executable file not found in $PATH' in shell.err, shell.err
    etcd = node.run(["crictl", "ps", "--name", "^etcd$", "-q"]).check().out.split()[0]
    refused = node.run(["crictl", "exec", etcd, "sh"])
    assert not refused.ok and 'exec: "sh": executable file not found in $PATH' in refused.err
    forwarded = node.run(["bash", "-c", """
kubectl -n kube-system port-forward pod/etcd-controlplane 12381:2381 >/tmp/pf.log 2>&1 &
pf=$!
for i in $(seq 50); do grep -q 'Forwarding from 127.0.0.1:12381' /tmp/pf.log && break; sleep 0.2; done
exec 3<>/dev/tcp/127.0.0.1/12381
printf 'GET /health HTTP/1.0\r\nHost: x\r\n\r\n' >&3
cat <&3 | tail -n 1; echo
kill $pf
"""], env=env, timeout=60)
    assert '{"health":"true"' in forwarded.out, forwarded.out + forwarded.err


def test_crictl_stopp_and_rmp_on_real_kind(engine, node):
    """The embedded node's crictl stopp/rmp copy these outcomes and messages
    (tests/test_supervisor.py)."""
    if engine == "fake":
        pytest.skip("the stand-in engine has no kubelet or containerd; real kind only")

    def pods() -> dict[str, tuple[str, str]]:
        rows = [line.split() for line in node.run(["crictl", "pods", "--name", "^kube-scheduler"])
                .check().out.splitlines()[1:]]
        return {row[0]: (row[-5], row[-2]) for row in rows}  # POD ID -> (STATE, ATTEMPT)

    before = {p for p, (state, _) in pods().items() if state == "Ready"}
    assert len(before) == 1
    pod = before.pop()
    assert node.run(["crictl", "stopp", pod[:8]]).check().out == f"Stopped sandbox {pod[:8]}\n"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p, (s, _) in pods().items() if s == "Ready"]:
        time.sleep(1)
    states = pods()
    assert states[pod][0] == "NotReady"
    new_pod, (_, attempt) = next((p, v) for p, v in states.items() if v[0] == "Ready")
    assert int(attempt) == int(states[pod][1]) + 1
    running = node.run(["crictl", "rmp", new_pod])
    assert running.returncode == 1
    assert running.err == f'pod sandbox "{new_pod}" is running, please stop it first\n'
    assert node.run(["crictl", "rmp", pod[:8]]).check().out == f"Removed sandbox {pod[:8]}\n"
    assert pod not in pods()


def test_crictl_stop_exec_sudo_and_a_running_cron_on_real_kind(engine, node):
    """The moves the embedded node's crictl and cron daemon copy, on a real kind node:
    the same outcome there is what the embedded tests assert."""
    if engine == "fake":
        pytest.skip("the stand-in engine has no kubelet, containerd or cron; real kind only")
    node.write_file("/etc/cron.d/probe", b"* * * * * root echo \"$PATH|$SHELL\" > /tmp/cron-env\n")
    scheduled = time.monotonic()

    def running(name: str) -> list[str]:
        return node.run(["crictl", "ps", "--name", f"^{name}$", "-q"]).out.split()

    first = running("kube-scheduler")
    assert len(first) == 1
    attempt = json.loads(node.run(["crictl", "inspect", first[0]]).check().out)["status"]["metadata"]["attempt"]
    assert node.run(["crictl", "stop", first[0]]).check().out == first[0] + "\n"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and running("kube-scheduler") in ([], first):
        time.sleep(1)
    second = running("kube-scheduler")
    assert second and second != first, "the kubelet starts a new container for a stopped one"
    status = json.loads(node.run(["crictl", "inspect", second[0]]).check().out)["status"]
    assert status["metadata"]["attempt"] == attempt + 1

    etcd = running("etcd")[0]
    assert node.run(["crictl", "exec", etcd, "etcdctl", "version"]).check().out.startswith("etcdctl version")

    assert node.run(["sudo", "-i", "sh", "-c", "id -un; pwd"]).check().out == "root\n/root\n"

    while time.monotonic() - scheduled < 75 and not node.run(["test", "-s", "/tmp/cron-env"]).ok:
        time.sleep(1)
    assert node.read_file("/tmp/cron-env") == b"/usr/bin:/bin|/bin/sh\n", "cron runs /etc/cron.d lines"
    node.run(["rm", "-f", "/etc/cron.d/probe"])


def test_ssh_and_scp_between_nodes_as_root_on_real_kind(engine, made, node):
    """`ssh node01` and `scp` as a candidate types them on the exam: the cluster's root key
    and every node's host key are in place, so there is no password or host-key question
    (without a terminal either would fail the command)."""
    if engine == "fake":
        pytest.skip("the stand-in engine runs no systemd to start sshd; real kind only")
    driver, cluster, steps = made
    assert json.loads((clusters_dir() / cluster.name / "cluster.json").read_text())["ssh"] is True
    done = node.run(["ssh", "node01", "hostname"], timeout=30)
    assert done.ok and done.out == "node01\n", done.err
    node.write_file("/opt/snap.db", b"etcd snapshot\n")
    node.run(["scp", "/opt/snap.db", "node01:/tmp/"], timeout=30).check()
    assert cluster.node("node01").read_file("/tmp/snap.db") == b"etcd snapshot\n"
    # back the other way, by address and by name
    worker = cluster.node("node01")
    address = node.run(["getent", "hosts", "controlplane"]).check().out.split()[0]
    for target in ("controlplane", address):
        back = worker.run(["ssh", target, "hostname"], timeout=30)
        assert back.ok and back.out == "controlplane\n", f"{target}: {back.err}"


def test_jump_host_student_as_candidate_on_real_kind(engine):
    """The exam's base node on kind: `student` is a container of the node image on the
    cluster's network, no Kubernetes node (no kubelet, not in `kubectl get nodes`); the
    learner's shell opens there as `candidate`, who reaches `controlplane` with `ssh` and
    becomes root with `sudo -i`; kind lists it with the cluster and deletes it with it."""
    if engine == "fake":
        pytest.skip("the stand-in engine cannot run a container of the node image; real kind only")
    driver = KindDriver()
    cluster = driver.create(ClusterSpec(f"cka-jump-{secrets.token_hex(3)}", jump_host=True),
                            lambda step: None)
    container = f"{cluster.name}-student"
    try:
        assert [(n.name, n.container) for n in cluster.nodes] == [
            ("controlplane", f"{cluster.name}-control-plane"), ("student", container)]
        student = cluster.node("student")
        assert login_node(cluster) is student and kube_nodes(cluster) == cluster.nodes[:1]
        bare = student.run(["bash", "-c", "hostname; pgrep -x kubelet; pgrep -x containerd; "
                                          "command -v etcdctl; ls /etc/kubernetes"])
        assert bare.out.split() == ["student"], bare.out
        listed = subprocess.run([kind_nodes.which("kind") or "kind", "get", "nodes", "--name",
                                 cluster.name], capture_output=True, text=True, timeout=60)
        assert container in listed.stdout.split()

        as_candidate = student.shell_argv(tty=False)
        done = subprocess.run([*as_candidate, "-c", "id -un; pwd; kubectl get nodes -o name"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.stdout.split() == ["candidate", "/home/candidate", "node/controlplane"], \
            done.stderr
        denied = subprocess.run([*as_candidate, "-c", "ssh controlplane etcdctl "
                                 "--endpoints=https://127.0.0.1:2379 " + " ".join(TLS) +
                                 " endpoint health"], capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        assert denied.returncode != 0 and "permission denied" in denied.stderr

        walk_from_jump_host(student.shell_argv(tty=True),
                            "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 "
                            + " ".join(TLS) + " snapshot save /opt/etcd-snapshot.db",
                            "Snapshot saved at /opt/etcd-snapshot.db")
        assert cluster.node("controlplane").read_file("/opt/etcd-snapshot.db")

        again = driver.attach(cluster.name)
        assert [n.name for n in again.nodes] == ["controlplane", "student"]
        listed = {c.name: c for c in driver.list()}[cluster.name]
        assert listed.nodes == ("controlplane", "student") and listed.state == "running"
    finally:
        driver.delete(cluster)
    gone = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"],
                          capture_output=True, text=True, timeout=60)
    assert container not in gone.stdout.split()


def test_three_control_planes_and_a_worker_on_real_kind(engine):
    """The shape of etcd-multi-member-restore plus a worker: every node under its exam name,
    three etcd members named after their nodes, every node Ready, and the pod network routes
    between nodes (each node reaches CoreDNS's pod IPs, wherever the pods run)."""
    if engine == "fake":
        pytest.skip("the stand-in engine runs no kubelet or pod network; real kind only")
    driver = KindDriver()
    cluster = driver.create(ClusterSpec(f"cka-multi-{secrets.token_hex(3)}", control_planes=3,
                                        workers=1), lambda step: None)
    try:
        names = ["controlplane", "controlplane2", "controlplane3", "node01"]
        assert [n.name for n in cluster.nodes] == names
        first = cluster.node("controlplane")
        members = etcdctl(first, "member", "list")
        assert sorted(line.split(", ")[2] for line in members.out.splitlines()) == sorted(names[:3])
        kubectl = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
        # a readiness wait, not a speed target: under a full CI run the worker's kubelet
        # has been seen to need more than two minutes to register
        deadline = time.monotonic() + 300
        while True:
            ready = first.run([*kubectl, "get", "nodes", "-o", "jsonpath={range .items[*]}"
                               "{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} "
                               "{end}"], timeout=60).out.split()
            ips = first.run([*kubectl, "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns",
                             "--field-selector=status.phase=Running", "-o",
                             "jsonpath={.items[*].status.podIP}"], timeout=60).out.split()
            if sorted(ready) == sorted(f"{n}=True" for n in names) and len(ips) == 2:
                break
            if time.monotonic() > deadline:
                worker = cluster.node("node01")
                journal = worker.run(["journalctl", "-u", "kubelet", "-n", "40", "--no-pager"],
                                     timeout=60)
                active = worker.run(["systemctl", "is-active", "kubelet"], timeout=60).out.strip()
                pytest.fail(f"nodes {ready}, CoreDNS pod IPs {ips}; node01's kubelet is "
                            f"{active}, its journal ends:\n{journal.out}{journal.err}")
            time.sleep(3)
        for node in cluster.nodes:
            for ip in ips:
                health = node.run(["curl", "-sS", "--max-time", "5", f"http://{ip}:8080/health"],
                                  timeout=30)
                assert health.out.strip() == "OK", f"{node.name} -> {ip}: {health.err}"
    finally:
        driver.delete(cluster)


def test_etcd_as_a_systemd_service_on_real_kind(engine):
    """cluster.etcd: systemd on kind: the static pod becomes etcd.service (real systemd, the
    binary taken from the cluster's etcd image) on the same data, the API server keeps
    working, and an edited unit runs its old command line until daemon-reload, which the
    etcd.data_dir checker sees on the running process."""
    if engine == "fake":
        pytest.skip("the stand-in engine runs no systemd; real kind only")
    driver = KindDriver()
    cluster = driver.create(ClusterSpec(f"cka-sysd-{secrets.token_hex(3)}",
                                        components=("etcd", "kube-apiserver"), etcd="systemd"),
                            lambda step: None)
    try:
        node = cluster.node("controlplane")
        assert not node.run(["test", "-e", "/etc/kubernetes/manifests/etcd.yaml"]).ok
        assert node.run(["systemctl", "is-active", "etcd"]).out == "active\n"
        assert node.run(["systemctl", "is-enabled", "etcd"]).out == "enabled\n"
        running, why = etcdunit.running(node)
        assert running is not None, why
        assert running.argv[0] == etcdunit.BINARY and running.data_dir == "/var/lib/etcd"
        kubectl = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
        assert node.run([*kubectl, "create", "namespace", "via-service"], timeout=60).ok
        ctx = Context(cluster)
        copy = "/var/lib/etcd-copy"
        assert node.run(["bash", "-c", f"cp -a /var/lib/etcd {copy} && sed -i "
                         f"'s#--data-dir=/var/lib/etcd #--data-dir={copy} #' {etcdunit.UNIT_PATH}"]).ok
        restart = node.run(["systemctl", "restart", "etcd"], timeout=120)
        assert restart.ok and "changed on disk" in restart.err
        data_dir = get_checker("etcd.data_dir")
        assert not data_dir(ctx, expected=copy, service="etcd").passed
        assert node.run(["systemctl", "daemon-reload"]).ok
        assert node.run(["systemctl", "restart", "etcd"], timeout=120).ok
        result = data_dir(ctx, expected=copy, service="etcd")
        assert result.passed, result.detail
        assert "via-service" in node.run([*kubectl, "get", "namespaces"], timeout=60).out
    finally:
        driver.delete(cluster)


def test_attach_finds_the_nodes_and_list_shows_the_cluster(made):
    _, cluster, _ = made
    again = KindDriver().attach(cluster.name)
    assert [(n.name, n.container) for n in again.nodes] == [
        (n.name, n.container) for n in cluster.nodes]
    listed = {c.name: c for c in KindDriver().list()}
    assert listed[cluster.name].state == "running"
    assert listed[cluster.name].nodes == ("controlplane", "node01")
    with pytest.raises(ClusterError, match="no node named"):
        again.node("node02")


def test_a_session_runs_unchanged_on_kind_and_stop_removes_the_cluster(engine, tmp_path):
    from simulator.catalog import Catalog
    from simulator.session import Session

    pack = tmp_path / "pack"
    pack.mkdir()
    skeleton = subprocess.run([sys.executable, "-m", "simulator", "scenario", "new",
                               "demo-backup", "-o", "-"], capture_output=True, text=True,
                              check=True).stdout
    (pack / "demo-backup.yaml").write_text(skeleton)
    catalog = Catalog.load([pack], builtin=False)
    session = Session.start(catalog, "demo-backup", driver="kind", seed=3)
    name = session.cluster_name
    try:
        before = session.check(catalog)
        assert [r.passed for r in before.results if not r.guard] == [False]
        assert all(r.passed for r in before.results if r.guard)
        scenario = session.scenario_model(catalog)
        node = session.cluster().node("controlplane")
        node.run(["bash", "-c", scenario.solution], timeout=60).check()
        after = session.submit(catalog)
        assert after.score == after.max_score > 0
    finally:
        session.stop()
    assert name not in {c.name for c in KindDriver().list()}
    with pytest.raises(ClusterError):
        KindDriver().attach(name)
    ps = subprocess.run(["docker", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={name}",
                         "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    assert ps.stdout.strip() == ""


def test_an_image_that_cannot_be_pulled_is_a_clear_error(engine, tmp_path):
    """A node image the engine lacks and cannot pull: kind fails to pull it, and the user is
    told which image and how to build one offline; no cluster or record is left."""
    if engine == "fake":
        pytest.skip("the stand-in engine pulls nothing; real kind only")
    image = f"cka-sim.invalid/no-such-node:v0-{secrets.token_hex(3)}"
    driver = KindDriver(image=image)
    name = f"cka-nopull-{secrets.token_hex(3)}"
    with pytest.raises(ClusterError) as caught:
        driver.create(ClusterSpec(name), lambda step: None)
    assert caught.value.message == f"the kind node image {image} cannot be pulled"
    assert "CKA_SIM_KIND_IMAGE" in caught.value.hint and "node-image.sh" in caught.value.hint
    assert name not in {c.name for c in driver.list()}


def test_a_node_container_that_dies_under_load_costs_a_second_try_not_the_cluster(engine, tmp_path):
    """kind fails with "cannot exec in a stopped container" when a node container dies while
    it sets the node up (seen on loaded machines): the driver removes the half-made cluster,
    says so and runs kind once more, and the cluster it returns works."""
    from simulator.cluster.kind.nodes import which

    real = which("kind")
    assert real is not None
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    (wrap / "kind").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = create ] && [ ! -e "$KIND_FAILED_ONCE" ]; then\n'
        '  touch "$KIND_FAILED_ONCE"\n'
        "  echo 'Creating cluster ...'\n"
        "  echo 'ERROR: failed to create cluster: command \"docker exec --privileged x-control-plane"
        " cat /kind/version\" failed with error: exit status 1'\n"
        "  echo 'Error response from daemon: Container 1f2e is not running: cannot exec in a"
        " stopped container'\n"
        "  exit 1\n"
        "fi\n"
        f'exec "{real}" "$@"\n')
    (wrap / "kind").chmod(0o755)
    driver, steps = KindDriver(), []
    name = f"cka-retry-{secrets.token_hex(3)}"
    with Environ(PATH=f"{wrap}{os.pathsep}{os.environ['PATH']}",
                 KIND_FAILED_ONCE=str(tmp_path / "failed-once")):
        cluster = driver.create(ClusterSpec(name), steps.append)
        try:
            assert (tmp_path / "failed-once").exists()
            assert any("cannot exec in a stopped container" in s.detail and "once more" in s.detail
                       for s in steps)
            assert cluster.node("controlplane").run(["hostname"]).out.strip() == "controlplane"
        finally:
            driver.delete(cluster)
    assert name not in {c.name for c in driver.list()}


def test_doctor_names_the_engine_kind_and_the_image(engine):
    if engine == "fake":
        pytest.skip("the stand-in engine has no images; real kind only")
    lines = {check: (ok, detail) for check, ok, detail in KindDriver().doctor()}
    assert lines["docker"][0] and lines["docker"][1].startswith("engine ")
    assert lines["kind"][0] and "v0." in lines["kind"][1]
    image = os.environ.get("CKA_SIM_KIND_IMAGE") or KindDriver().image
    assert lines["kind image"] == (True, f"{image} ({'from CKA_SIM_KIND_IMAGE' if os.environ.get('CKA_SIM_KIND_IMAGE') else 'pinned official image'}, present)")


def test_doctor_says_when_inotify_limits_are_too_low_for_several_nodes(tmp_path):
    from simulator.cluster.kind.driver import _inotify_line

    (tmp_path / "max_user_instances").write_text("128\n")
    (tmp_path / "max_user_watches").write_text("524288\n")
    name, ok, detail = _inotify_line(tmp_path)
    assert (name, ok) == ("inotify", False)
    assert "sudo sysctl -w fs.inotify.max_user_instances=512" in detail
    assert "max_user_watches=" not in detail.split("sudo")[1]
    (tmp_path / "max_user_instances").write_text("512\n")
    assert _inotify_line(tmp_path) == ("inotify", True, "max_user_instances 512, max_user_watches 524288")


def test_delete_is_idempotent(made):
    driver, _, _ = made
    driver.delete("cka-never-created")
    assert "cka-never-created" not in {c.name for c in driver.list()}


# -- without an engine -------------------------------------------------------------------


def _bin_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding the basic commands and only the named stand-ins: the real docker and
    kind, where installed, are left out."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in tools:
        (directory / tool).symlink_to(FAKES / tool)
    basics = tmp_path / "basics"
    basics.mkdir()
    for source in ("/usr/bin", "/bin"):
        for entry in os.scandir(source):
            if entry.name not in ("docker", "dockerd", "kind") and not (basics / entry.name).exists():
                (basics / entry.name).symlink_to(entry.path)
    return f"{directory}{os.pathsep}{basics}"


def test_create_without_docker_says_to_install_it(tmp_path):
    with Environ(PATH=_bin_with(tmp_path, "kind"), CKA_SIM_HOME=str(tmp_path / "home"),
                 CKA_SIM_CACHE=str(tmp_path / "cache")):
        with pytest.raises(DockerUnavailable) as caught:
            KindDriver().create(ClusterSpec("cka-nodocker"), lambda step: None)
        assert KindDriver().list() == []
    assert "docker is not installed" in caught.value.message
    assert "Install Docker" in caught.value.hint


def test_create_without_kind_points_to_kind(tmp_path):
    with (Environ(PATH=_bin_with(tmp_path, "docker"), CKA_SIM_HOME=str(tmp_path / "home"),
                  CKA_SIM_CACHE=str(tmp_path / "cache")),
          pytest.raises(DockerUnavailable) as caught):
        KindDriver().create(ClusterSpec("cka-nokind"), lambda step: None)
    assert "kind is not installed" in caught.value.message
    assert "https://kind.sigs.k8s.io" in caught.value.hint


def test_create_with_the_engine_down_says_to_start_it(tmp_path):
    with (fake_environ(None), Environ(CKA_SIM_HOME=str(tmp_path / "home")),
          pytest.raises(DockerUnavailable) as caught):
        KindDriver().create(ClusterSpec("cka-down"), lambda step: None)
    assert "does not answer" in caught.value.message
    assert "Cannot connect to the Docker daemon" in caught.value.hint
    assert "Start the Docker daemon" in caught.value.hint


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the real docker client")
def test_real_docker_client_without_engine_is_docker_unavailable(tmp_path):
    docker_dir = os.path.dirname(shutil.which("docker"))
    # the real client, pointed at a socket where no engine listens
    with (Environ(PATH=f"{_bin_with(tmp_path, 'kind')}{os.pathsep}{docker_dir}",
                  CKA_SIM_HOME=str(tmp_path / "home"),
                  DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock"),
          pytest.raises(DockerUnavailable) as caught):
        KindDriver().create(ClusterSpec("cka-down"), lambda step: None)
    assert "does not answer" in caught.value.message
    assert "Cannot connect to the Docker daemon" in caught.value.hint


# -- pure functions ----------------------------------------------------------------------


def test_container_names_map_to_exam_names():
    assert exam_name("c1", "c1-control-plane") == "controlplane"
    assert exam_name("c1", "c1-control-plane3") == "controlplane3"
    assert exam_name("c1", "c1-worker") == "node01"
    assert exam_name("c1", "c1-worker12") == "node12"
    assert exam_name("c1", "c1-student") == "student"
    assert exam_name("c1", "c1-external-load-balancer") is None
    assert exam_name("c1", "c10-worker") is None


def test_etcd_version_comes_from_the_image_tag():
    pod = b"spec:\n  containers:\n  - name: etcd\n    image: registry.k8s.io/etcd:3.6.4-0\n"
    assert etcd_version_of(pod) == "3.6.4"
    digest = pod.replace(b"3.6.4-0", b"3.5.15-0@sha256:" + b"a" * 64)
    assert etcd_version_of(digest) == "3.5.15"
    assert etcd_version_of(b"spec: {containers: [{image: localhost:5000/etcd}]}") is None
    assert etcd_version_of(b"not: [valid") is None


def test_etcd_tools_prefer_the_cluster_version_and_say_when_they_differ(tmp_path):
    with Environ(CKA_SIM_CACHE=str(tmp_path / "cache")):
        found = binaries.find("etcdctl")
        have = binaries.etcd_version(found)
        tools, detail = etcd_tools("9.9.9")
        assert tools["etcdctl"] == found.resolve()
        assert "no 9.9.9 here" in detail and have in detail
        matching = tmp_path / "cache" / "bin" / f"etcd-v{have}"
        matching.mkdir(parents=True)
        for name in ("etcdctl", "etcdutl"):
            shutil.copy2(binaries.find(name), matching / name)
        tools, detail = etcd_tools(have)
    assert tools == {"etcdctl": matching / "etcdctl", "etcdutl": matching / "etcdutl"}
    assert detail == f"etcdctl/etcdutl {have}, as the cluster's etcd"
