"""The embedded driver on real namespaces and real etcd."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from clusterkit import control_plane_unusable, walk_from_jump_host

from simulator.cluster import shell as learner_shell
from simulator.cluster.local import idmap
from simulator.cluster.local import sshd as sshd_mod
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec, Completed, kube_nodes, login_node
from simulator.errors import ClusterError

REPO = Path(__file__).resolve().parents[1]
PKI = "/etc/kubernetes/pki/etcd"
TLS = [f"--cacert={PKI}/ca.crt", f"--cert={PKI}/server.crt", f"--key={PKI}/server.key"]
SAVE = ("ETCDCTL_API=3 etcdctl snapshot save /opt/backup/etcd-snapshot.db "
        "--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
        "--cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key")


USER_CACHE = os.environ.get("CKA_SIM_CACHE")
"""The user's cache, where .ci/build-binaries.sh put the Kubernetes binaries (the module's
clusters use a cache of their own)."""
NO_CONTROL_PLANE = control_plane_unusable()


def _usable() -> str | None:
    probe = LocalDriver()._probe_namespaces()
    return None if probe[1] else probe[2]


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_usable() is not None, reason=f"no namespaces: {_usable()}")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("cka-home")
    old = {k: os.environ.get(k) for k in ("CKA_SIM_HOME", "CKA_SIM_CACHE")}
    os.environ["CKA_SIM_HOME"] = str(path / "home")
    os.environ["CKA_SIM_CACHE"] = str(path / "cache")
    yield path
    LocalDriver().clean(keep=())
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def driver(home):
    return LocalDriver()


@pytest.fixture(scope="module")
def cluster(driver):
    steps = []
    made = driver.create(ClusterSpec("solo"), steps.append)
    assert [s.name for s in steps[:3]] == ["nodes", "certificates", "etcd"]
    yield made
    driver.delete(made)


@pytest.fixture
def node(cluster):
    return cluster.node("controlplane")


def sh(node, script: str, timeout: float = 60, **env) -> Completed:
    return node.run(["bash", "-c", script], env=env or None, timeout=timeout)


def etcdctl(node, *args: str, timeout: float = 30) -> Completed:
    return node.run(["etcdctl", "--endpoints=https://127.0.0.1:2379", *TLS, *args],
                    env={"ETCDCTL_API": "3"}, timeout=timeout)


def wait_healthy(node, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if etcdctl(node, "endpoint", "health", "--command-timeout=1s").ok:
            return
        time.sleep(0.2)
    raise AssertionError(f"etcd on {node.name} not healthy after {timeout} s")


def port_open(node, port: int = 2379) -> bool:
    return sh(node, 'exec 3<>"/dev/tcp/127.0.0.1/$PORT"', PORT=str(port)).ok


def host_processes_of(directory: Path) -> list[int]:
    """Host pids whose root, cwd, command line or environment mention ``directory``."""
    needle = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blobs = [(entry / "cmdline").read_bytes(), (entry / "environ").read_bytes(),
                     os.readlink(entry / "root").encode(), os.readlink(entry / "cwd").encode()]
        except OSError:
            continue
        if any(needle in blob for blob in blobs):
            found.append(int(entry.name))
    return found


def mounts_of(directory: Path) -> list[str]:
    needle = str(directory)
    lines = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "mountinfo").read_text()
        except OSError:
            continue
        lines.update(line for line in text.splitlines() if needle in line)
    return sorted(lines)


# -- the node as a learner sees it ------------------------------------------------------


def test_node_identity_network_and_root(node):
    done = sh(node, "hostname; id -u; pwd; ip -4 -o addr show eth0; echo $HOME $USER").check()
    lines = done.out.splitlines()
    assert lines[0] == "controlplane"
    assert lines[1] == "0"
    assert lines[2] == "/root"
    assert "172.30.0.10/24" in lines[3]
    assert lines[4] == "/root root"
    assert sh(node, "ps -eo pid= | wc -l").out.strip() != ""
    assert sh(node, "ps -o pid= -p 1 && ps -o comm= -p 1").ok


def test_etcd_tools_on_path_and_usr_read_only(node):
    assert sh(node, "command -v etcd etcdctl etcdutl crictl").check().out.split() == [
        "/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl",
        "/usr/local/bin/crictl"]
    denied = sh(node, "touch /usr/cka-sim-probe")
    assert not denied.ok and "Read-only file system" in denied.err
    assert not Path("/usr/cka-sim-probe").exists()


def test_snapshot_save_with_certificates_succeeds(node):
    sh(node, "mkdir -p /opt/backup").check()
    done = sh(node, SAVE)
    assert done.ok, done.err
    data = node.read_file("/opt/backup/etcd-snapshot.db")
    assert len(data) % 512 == 32


def test_snapshot_save_without_certificates_fails(node):
    # etcdctl 3.5.1 retries the TLS handshake forever here (as on a kubeadm node with
    # that version); later versions give up with "context deadline exceeded".
    done = sh(node, "ETCDCTL_API=3 timeout 6 etcdctl snapshot save /opt/backup/nocert.db "
                    "--endpoints=https://127.0.0.1:2379", timeout=60)
    assert not done.ok
    assert not sh(node, "test -s /opt/backup/nocert.db").ok


def test_moving_the_manifest_out_stops_etcd_and_back_restarts_it(node):
    wait_healthy(node)
    sh(node, "mv /etc/kubernetes/manifests/etcd.yaml /tmp/").check()
    moved = time.monotonic()
    while port_open(node):
        assert time.monotonic() - moved < 2.0, "etcd still listens 2 s after its manifest left"
        time.sleep(0.05)
    time.sleep(0.5)
    assert not port_open(node)
    sh(node, "mv /tmp/etcd.yaml /etc/kubernetes/manifests/").check()
    wait_healthy(node)


MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
TASKS = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"


def test_changing_only_the_data_dir_starts_etcd_on_an_empty_dir(node):
    # The exam trap: the restored data sits in the node's /var/lib/etcd-from-backup, but
    # the container sees only its volumes, so etcd starts a new, empty member.
    wait_healthy(node)
    etcdctl(node, "put", "/registry/probe/data-dir", "restored").check()
    sh(node, "mkdir -p /opt/backup && " + SAVE.replace("etcd-snapshot.db", "data-dir.db")).check()
    sh(node, "ETCDCTL_API=3 etcdutl snapshot restore /opt/backup/data-dir.db "
             "--data-dir /var/lib/etcd-from-backup").check()
    original = node.read_file(MANIFEST)
    manifest = yaml.safe_load(original)
    command = manifest["spec"]["containers"][0]["command"]
    command[command.index("--data-dir=/var/lib/etcd")] = "--data-dir=/var/lib/etcd-from-backup"
    try:
        node.write_file(MANIFEST, yaml.safe_dump(manifest).encode(), 0o600)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = etcdctl(node, "get", "/registry/probe/data-dir", "--print-value-only",
                          "--command-timeout=1s")
            if got.ok and got.out.strip() == "":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("etcd still serves the restored key: it reads the node's directory")
        cid = node.run(["crictl", "ps", "-q", "--name", "^etcd$", "--no-trunc"]).check().out.split()[0]
        assert sh(node, f"test -d {TASKS}/{cid}/rootfs/var/lib/etcd-from-backup/member/wal").ok, \
            "the new member lives in the container's own root"
        assert sh(node, "test -d /var/lib/etcd-from-backup/member/snap").ok, "the restore stays untouched"
        assert b"containerd" not in node.read_file("/proc/self/mountinfo"), \
            "a container's mounts stay in its own namespace"
    finally:
        node.write_file(MANIFEST, original, 0o600)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = etcdctl(node, "get", "/registry/probe/data-dir", "--print-value-only",
                      "--command-timeout=1s")
        if got.ok and got.out.strip() == "restored":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("etcd did not come back on its own data")
    sh(node, "rm -rf /var/lib/etcd-from-backup /opt/backup/data-dir.db").check()


def test_restore_into_new_dir_and_switch_only_the_hostpath(node):
    wait_healthy(node)
    etcdctl(node, "put", "/registry/probe/kept", "before").check()
    sh(node, "mkdir -p /opt/backup && " + SAVE.replace("etcd-snapshot.db", "restore.db")).check()
    etcdctl(node, "put", "/registry/probe/later", "after").check()
    etcdctl(node, "del", "/registry/probe/kept").check()
    sh(node, "ETCDCTL_API=3 etcdutl snapshot restore /opt/backup/restore.db "
             "--data-dir /var/lib/etcd-from-backup").check()
    manifest = yaml.safe_load(node.read_file("/etc/kubernetes/manifests/etcd.yaml"))
    for volume in manifest["spec"]["volumes"]:
        if volume["name"] == "etcd-data":
            volume["hostPath"]["path"] = "/var/lib/etcd-from-backup"
    command = manifest["spec"]["containers"][0]["command"]
    assert "--data-dir=/var/lib/etcd" in command
    node.write_file("/etc/kubernetes/manifests/etcd.yaml", yaml.safe_dump(manifest).encode(),
                    0o600)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = etcdctl(node, "get", "/registry/probe/kept", "--print-value-only",
                      "--command-timeout=1s")
        if got.ok and got.out.strip() == "before":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("etcd does not serve the restored data")
    assert etcdctl(node, "get", "/registry/probe/later", "--print-value-only").out.strip() == ""


def test_writes_inside_the_node_leave_the_host_unchanged(node, cluster):
    paths = ["/etc/cka-sim-probe", "/var/lib/cka-sim-probe", "/opt/cka-sim-probe",
             "/root/cka-sim-probe", "/cka-sim-newdir/probe", "/tmp/cka-sim-probe"]
    before = {p: os.path.exists(p) for p in paths}
    sh(node, "echo changed >> /etc/hosts").check()
    done = node.run(["bash", "-c", 'for p; do mkdir -p "$(dirname "$p")"; echo node > "$p"; done',
                     "bash", *paths])
    assert done.ok, done.err
    assert all(node.read_file(p) == b"node\n" for p in paths)
    assert {p: os.path.exists(p) for p in paths} == before
    assert b"changed" not in Path("/etc/hosts").read_bytes()
    assert (cluster.directory / "nodes/controlplane/rootfs/cka-sim-newdir/probe").exists()


needs_users = pytest.mark.skipif(
    not idmap.choose().full, reason="this machine maps only uid 0 into the nodes (not root, no "
                                    "/etc/subuid range with newuidmap): no other users there")


@needs_users
def test_sudo_and_sudo_i_work_as_on_a_debian_node(node):
    if not Path("/usr/bin/sudo").exists():
        assert sh(node, "sudo true").returncode == 127, "no sudo on the machine, none in the node"
        pytest.skip("sudo is not installed on this machine")
    assert node.run(["sudo", "true"]).ok
    assert node.run(["sudo", "-i", "sh", "-c", "id -un; pwd"]).check().out == "root\n/root\n"
    login = node.run(["sudo", "-i"], input=b"pwd; id -u; echo $HOME\n").check()
    assert login.out == "/root\n0\n/root\n"
    assert node.run(["sudo", "-u", "nobody", "id", "-un"]).check().out == "nobody\n"
    mode = sh(node, "stat -c '%a %u' /etc/sudoers && test -d /etc/sudoers.d && "
                    "test -f /etc/pam.d/sudo-i && test -f /etc/login.defs").check()
    assert mode.out == "440 0\n"


@needs_users
def test_useradd_chown_and_su_to_the_new_user(node, cluster):
    done = sh(node, "useradd -m alice && touch /tmp/alices && chown alice:alice /tmp/alices && "
                    "stat -c %U:%G /tmp/alices && su - alice -c 'id -un; pwd; touch mine' && "
                    "stat -c %U /home/alice/mine && chown 4242:4243 /tmp/alices && "
                    "stat -c %u:%g /tmp/alices")
    try:
        assert done.ok, done.err
        assert done.out.splitlines() == ["alice:alice", "alice", "/home/alice", "alice",
                                         "4242:4243"]
        # the nodes' ids are the host's (as root) or the user's subordinate ids: either
        # way not the host user's own
        host = cluster.directory / "nodes/controlplane/rootfs/home/alice/mine"
        assert host.stat().st_uid != os.geteuid()
        assert (cluster.directory / "nodes/controlplane/rootfs/tmp/alices").stat().st_uid \
            != os.geteuid()
    finally:
        sh(node, "userdel -r alice; rm -f /tmp/alices")


def test_file_api_resolves_symlinks_inside_the_node(node, tmp_path):
    target = tmp_path / "host-only"
    sh(node, 'ln -sfn / /root/escape && ln -sfn "$T" /root/abs', T=str(tmp_path)).check()
    node.write_file("/root/escape/tmp/through-link", b"inside")
    assert node.read_file("/tmp/through-link") == b"inside"
    assert not Path("/tmp/through-link").exists()
    node.write_file("/root/abs/host-only", b"inside")
    assert not target.exists()
    assert sh(node, 'cat "$T/host-only"', T=str(tmp_path)).out == "inside"
    assert node.read_file("/etc/hostname") == b"controlplane\n"
    assert node.read_file("/usr/local/bin/crictl").startswith(b"#!")
    with pytest.raises(FileNotFoundError):
        node.read_file("/nowhere/at/all")
    node.write_file("/opt/deep/new/dir/file.sh", b"#!/bin/sh\necho hi\n", 0o755)
    assert sh(node, "/opt/deep/new/dir/file.sh").out == "hi\n"


def test_crontab_installs_lists_and_removes_roots_table(node):
    assert sh(node, "command -v crontab").out.strip() == "/usr/local/bin/crontab"
    empty = node.run(["crontab", "-l"])
    assert (empty.returncode, empty.err) == (1, "no crontab for root\n")
    sh(node, "echo '0 2 * * * /usr/local/bin/etcd-backup.sh' | crontab -").check()
    assert node.run(["crontab", "-u", "root", "-l"]).check().out == "0 2 * * * /usr/local/bin/etcd-backup.sh\n"
    assert sh(node, "stat -c %a /var/spool/cron/crontabs/root").check().out.strip() == "600"
    assert b"etcd-backup.sh" in node.read_file("/var/spool/cron/crontabs/root")
    bad = sh(node, "echo '0 25 * * * /bin/true' | crontab -")
    assert bad.returncode == 1 and '"-":1: bad hour' in bad.err
    assert "etcd-backup.sh" in node.run(["crontab", "-l"]).out, "a refused table keeps the old one"
    edited = node.run(["crontab", "-e"], env={"EDITOR": "sed -i 's/0 2/30 3/'"})
    assert edited.ok and "installing new crontab" in edited.err
    assert node.run(["crontab", "-l"]).out == "30 3 * * * /usr/local/bin/etcd-backup.sh\n"
    node.run(["crontab", "-r"]).check()
    assert node.run(["crontab", "-l"]).returncode == 1
    assert not sh(node, "test -e /var/spool/cron/crontabs/root").ok


def test_cron_daemon_runs_the_lines_of_cron_d_and_roots_crontab(node):
    assert sh(node, "pgrep -x cron && test -s /run/crond.pid").ok, "a cron daemon runs in the node"
    # as Debian's cron package leaves them: a learner's `echo ... > /etc/cron.d/backup` works
    assert sh(node, "stat -c %a /etc/cron.d").out == "755\n"
    assert "run-parts --report /etc/cron.hourly" in node.read_file("/etc/crontab").decode()
    node.write_file("/etc/cron.d/probe", b"""SHELL=/bin/bash
* * * * * root echo "$PATH|$SHELL|$HOME|$(pwd)" > /tmp/cron-env
* * * * * nobody { id -un; id -G; } > /tmp/cron-nobody
""")
    node.write_file("/etc/cron.d/nouser", b"* * * * * /tmp/no-user-field.sh now\n")
    node.write_file("/etc/cron.d/nocommand", b"* * * * * root touch /tmp/dropped\n* * * * * /tmp/no-user-field.sh\n")
    node.write_file("/tmp/no-user-field.sh", b"#!/bin/sh\ntouch /tmp/no-user-field-ran\n", mode=0o755)
    sh(node, "echo '* * * * * cat > /tmp/cron-stdin%first%second' | crontab -").check()
    try:
        deadline = time.monotonic() + 70
        while time.monotonic() < deadline and not (sh(node, "test -s /tmp/cron-env && test -s /tmp/cron-stdin").ok):
            time.sleep(1)
        assert node.read_file("/tmp/cron-env") == b"/usr/bin:/bin|/bin/bash|/root|/root\n"
        assert node.read_file("/tmp/cron-stdin") == b"first\nsecond\n"
        if idmap.choose().full:  # a job of another user runs as that user, with its groups
            assert sh(node, "for i in $(seq 50); do test -s /tmp/cron-nobody && exit; sleep 0.1; "
                            "done; exit 1").ok, node.read_file("/var/log/syslog").decode()
            assert node.read_file("/tmp/cron-nobody") == b"nobody\n65534\n"
        time.sleep(1)
        assert not sh(node, "test -e /tmp/no-user-field-ran").ok, "a cron.d line without a user does not run"
        assert not sh(node, "test -e /tmp/dropped").ok, "cron ignores a file with a line that has no command"
        syslog = node.read_file("/var/log/syslog").decode()
        assert re.search(r"controlplane CRON\[\d+\]: \(root\) CMD \(cat > /tmp/cron-stdin\)", syslog), syslog
        assert "(/tmp/no-user-field.sh) ERROR (getpwnam() failed)" in syslog
        assert "(*system*nocommand) ERROR (Syntax error, this crontab file will be ignored)" in syslog
    finally:
        sh(node, "rm -f /etc/cron.d/probe /etc/cron.d/nouser /etc/cron.d/nocommand /tmp/no-user-field.sh; crontab -r")


def test_crontab_e_opens_vi_on_the_terminal(node):
    pexpect = pytest.importorskip("pexpect")
    node.run(["crontab", "-r"])
    shell = pexpect.spawn(node.shell_argv()[0], node.shell_argv()[1:], timeout=10,
                          encoding="utf-8", dimensions=(40, 120))
    try:
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline("crontab -e")
        shell.expect_exact("# m h  dom mon dow   command")
        shell.send("Go0 3 * * * /usr/local/bin/etcd-backup.sh\x1b")
        shell.sendline(":wq")
        shell.expect_exact("crontab: installing new crontab")
        shell.expect_exact("root@controlplane:~# ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    listed = node.run(["crontab", "-l"]).check().out
    assert listed.splitlines()[-1] == "0 3 * * * /usr/local/bin/etcd-backup.sh"
    node.run(["crontab", "-r"]).check()


def test_run_passes_env_and_input_and_times_out(node):
    done = node.run(["sh", "-c", 'printf %s "$VALUE"; cat'], input=b"-in", env={"VALUE": "a b;c"})
    assert done.out == "a b;c-in"
    started = time.monotonic()
    with pytest.raises(ClusterError, match="timed out"):
        node.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert "sleep 30" not in sh(node, "ps -eo args=").out


def test_login_shell_prompt_shows_task_and_time_left(node):
    pexpect = pytest.importorskip("pexpect")
    shell = pexpect.spawn(node.shell_argv()[0], node.shell_argv()[1:], timeout=10,
                          encoding="utf-8", dimensions=(40, 200))
    try:
        shell.expect_exact("root@controlplane:~# ")
        node.write_file(learner_shell.SESSION_ENV_PATH,
                        learner_shell.session_env("etcd-backup", time.time() + 7 * 60 + 42))
        shell.sendline("tty")
        shell.expect(r"/dev/pts/\d+")
        shell.expect(r"\[etcd-backup 7:4[012]\] root@controlplane:~# ")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
        node.run(["rm", "-f", learner_shell.SESSION_ENV_PATH])


# -- lifecycle ---------------------------------------------------------------------------


def test_attach_from_another_process_and_list(driver, cluster, home):
    code = ("from simulator.cluster.local.driver import LocalDriver; "
            "c = LocalDriver().attach('solo'); "
            "print(c.node('controlplane').run(['hostname']).out.strip())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env=dict(os.environ))
    assert done.stdout.strip() == "controlplane", done.stderr
    listed = {c.name: c for c in driver.list()}
    assert listed["solo"].state == "running"
    assert listed["solo"].nodes == ("controlplane",)
    with pytest.raises(ClusterError, match="no node named"):
        cluster.node("node01")
    with pytest.raises(ClusterError, match="no local cluster"):
        driver.attach("absent")


def test_ssh_and_scp_between_nodes_as_root(driver):
    """`ssh node01`, `ssh controlplane2` and `scp` as a candidate types them on the exam: the
    node's own OpenSSH server, the cluster's root key, every node's host key known under its
    exam name and address, so there is no password or host-key question (without a
    terminal either would fail the command); an interactive `ssh` gets a terminal."""
    pexpect = pytest.importorskip("pexpect")
    if not sshd_mod.installed():
        pytest.skip(f"no OpenSSH server on this machine ({sshd_mod.INSTALL_HINT})")
    if os.geteuid() != 0:
        pytest.skip("sshd's privilege separation user is mapped into nodes only as root")
    made = driver.create(ClusterSpec("ssh", control_planes=2, workers=1), lambda step: None)
    try:
        first, worker = made.node("controlplane"), made.node("node01")
        done = first.run(["ssh", "node01", "hostname"])
        assert done.ok and done.out == "node01\n", done.err
        done = worker.run(["ssh", "controlplane2", "hostname"])
        assert done.ok and done.out == "controlplane2\n", done.err
        done = worker.run(["ssh", "172.30.0.10", "hostname"])
        assert done.ok and done.out == "controlplane\n", done.err

        first.write_file("/opt/snap.db", b"etcd snapshot\n")
        first.run(["scp", "/opt/snap.db", "node01:/tmp/"]).check()
        assert worker.read_file("/tmp/snap.db") == b"etcd snapshot\n"
        first.run(["scp", "controlplane2:/etc/hostname", "/tmp/from-cp2"]).check()
        assert first.read_file("/tmp/from-cp2") == b"controlplane2\n"

        shell = pexpect.spawn(first.shell_argv()[0], first.shell_argv()[1:], timeout=15,
                              encoding="utf-8", dimensions=(40, 200))
        try:
            shell.expect_exact("root@controlplane:~# ")
            shell.sendline("ssh node01")
            shell.expect_exact("root@node01:~# ")
            shell.sendline("tty; hostname")
            shell.expect(r"/dev/pts/\d+\s+node01")
            shell.sendline("exit")
            shell.expect_exact("root@controlplane:~# ")
            shell.sendline("exit")
            shell.expect(pexpect.EOF)
        finally:
            shell.close(force=True)
        assert "Accepted publickey for root" in worker.read_file("/var/log/auth.log").decode()
    finally:
        driver.delete(made)


@pytest.mark.skipif(NO_CONTROL_PLANE is not None, reason=str(NO_CONTROL_PLANE))
def test_jump_host_student_logs_in_as_candidate_who_ssh_and_sudo_to_controlplane(driver,
                                                                                  monkeypatch):
    """The exam's base node: `student` is in the cluster's network under its name but no
    Kubernetes node (no kubelet, no /etc/kubernetes, no etcdctl); the learner's shell opens
    there as `candidate`, whose kubectl works, `ssh controlplane` needs no password or
    host-key question, and `sudo -i` there gives root, while etcdctl without it is denied."""
    pytest.importorskip("pexpect")
    if not sshd_mod.installed():
        pytest.skip(f"no OpenSSH server on this machine ({sshd_mod.INSTALL_HINT})")
    if not idmap.choose().full:
        pytest.skip("nodes map only root here, so there is no candidate user")
    if USER_CACHE is None:  # kube-apiserver and kubectl from where the build put them
        monkeypatch.delenv("CKA_SIM_CACHE")
    else:
        monkeypatch.setenv("CKA_SIM_CACHE", USER_CACHE)
    made = driver.create(ClusterSpec("jump", components=("etcd", "kube-apiserver"),
                                     jump_host=True), lambda step: None)
    try:
        assert [n.name for n in made.nodes] == ["controlplane", "student"]
        student = made.node("student")
        assert login_node(made) is student and kube_nodes(made) == [made.node("controlplane")]
        assert student.ip == "172.30.0.5"
        bare = student.run(["bash", "-c", "ls /usr/local/bin; ls /etc/kubernetes; "
                                          "cat /proc/1/cmdline | tr '\\0' ' '"])
        assert bare.out.split()[:2] == ["crontab", "kubectl"], bare.out  # no etcdctl, systemctl
        assert "--jump-host" in bare.out and "No such file" in bare.err
        assert "controlplane" in student.read_file("/etc/hosts").decode()

        as_candidate = student.shell_argv()
        done = subprocess.run([*as_candidate, "-c", "id -un; pwd; kubectl get nodes -o name; "
                                                    "sudo -n true"],
                              capture_output=True, text=True, timeout=60)
        assert done.stdout.split() == ["candidate", "/home/candidate", "node/controlplane"], \
            done.stderr
        assert done.returncode != 0 and "password is required" in done.stderr
        denied = subprocess.run([*as_candidate, "-c", "ssh controlplane ETCDCTL_API=3 etcdctl "
                                 "--endpoints=https://127.0.0.1:2379 " + " ".join(TLS) +
                                 " endpoint health"], capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0 and "permission denied" in denied.stderr

        walk_from_jump_host(as_candidate, SAVE.replace("/opt/backup/", "/opt/"),
                            "Snapshot saved at /opt/etcd-snapshot.db", timeout=20)
        assert made.node("controlplane").read_file("/opt/etcd-snapshot.db")
        auth = made.node("controlplane").read_file("/var/log/auth.log").decode()
        assert "Accepted publickey for candidate" in auth

        again = driver.attach("jump")
        assert login_node(again).name == "student"
        assert login_node(again).shell_argv() == as_candidate
        assert {c.name: c.nodes for c in driver.list()}["jump"] == ("controlplane", "student")
    finally:
        driver.delete(made)


def test_three_control_planes_form_one_etcd_cluster(driver, cluster):
    trio = driver.create(ClusterSpec("trio", control_planes=3), lambda step: None)
    try:
        first = trio.node("controlplane")
        members = etcdctl(first, "member", "list", "-w", "json").check()
        assert len(json.loads(members.out)["members"]) == 3
        health = etcdctl(first, "endpoint", "health", "--cluster").check()
        assert health.out.count("is healthy") == 3
        joined = yaml.safe_load(trio.node("controlplane3").read_file(
            "/etc/kubernetes/manifests/etcd.yaml"))["spec"]["containers"][0]["command"]
        assert "--initial-cluster-state=existing" in joined
        assert sh(trio.node("controlplane3"),
                  'exec 3<>/dev/tcp/controlplane2/2380 && getent hosts controlplane').ok
        etcdctl(first, "put", "shared", "yes").check()
        assert etcdctl(trio.node("controlplane2"), "get", "shared",
                       "--print-value-only").out.strip() == "yes"
        wait_healthy(cluster.node("controlplane"))
    finally:
        driver.delete(trio)
    assert not trio.directory.exists()


def test_delete_leaves_no_process_mount_or_directory(driver, home):
    made = driver.create(ClusterSpec("gone"), lambda step: None)
    directory = made.directory
    assert mounts_of(directory)
    driver.delete(made)
    assert not directory.exists()
    assert host_processes_of(directory) == []
    assert mounts_of(directory) == []
    driver.delete("gone")
    with pytest.raises(ClusterError):
        made.node("controlplane").run(["true"])


def test_delete_removes_files_of_other_users_and_cluster_files_stay_roots(driver, home):
    made = driver.create(ClusterSpec("owners"), lambda step: None)
    directory = made.directory
    rootfs = directory / "nodes/controlplane/rootfs"
    try:
        for path in ("etc/kubernetes/manifests/etcd.yaml", "etc/kubernetes/pki/etcd/server.key",
                     "var/lib/etcd/member"):
            assert (rootfs / path).stat().st_uid == os.geteuid(), path
        if idmap.choose().full:
            node = made.node("controlplane")
            sh(node, "useradd -m bob && su - bob -c 'mkdir -p deep/er && touch deep/er/f && "
                     "chmod 000 deep/er/f deep/er && chmod 500 deep' && "
                     "mkdir -p /srv/x && touch /srv/x/y && chown -R 4242:4242 /srv/x && "
                     "chmod 700 /srv/x").check()
            assert (rootfs / "home/bob/deep").stat().st_uid != os.geteuid()
    finally:
        driver.delete(made)
    assert not directory.exists()


KILLED_CLI = textwrap.dedent("""
    import os, signal, sys
    from simulator.cluster.local.driver import LocalDriver
    from simulator.cluster.node import ClusterSpec
    def progress(step):
        if sys.argv[2] == "mid" and step.name == "etcd":
            os.kill(os.getpid(), signal.SIGKILL)
    LocalDriver().create(ClusterSpec(sys.argv[1]), progress)
    print("created", flush=True)
    signal.pause()
""")


@pytest.mark.parametrize("when", ["mid", "after"])
def test_sigkilled_cli_then_clean_leaves_nothing(driver, home, when):
    name = f"killed-{when}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLI, name, when], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    if when == "after":
        assert proc.stdout.readline().strip() == "created"
        # while its creator runs, the cluster is that process's (a TUI's spare, a gate's
        # attempt): cleaning from another process leaves it alone
        assert not any(name in line for line in driver.clean(dry_run=True, keep=()))
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    from simulator.paths import clusters_dir

    directory = clusters_dir() / name
    assert host_processes_of(directory), "the cluster should outlive its CLI"
    found = driver.clean(dry_run=True, keep=() if when == "after" else None)
    assert any(name in line for line in found)
    assert directory.exists()
    driver.clean(keep=() if when == "after" else None)
    assert not directory.exists()
    assert host_processes_of(directory) == []
    assert mounts_of(directory) == []


def test_clean_keeps_healthy_clusters_by_default(driver, cluster):
    assert not any("solo" in line for line in driver.clean(dry_run=True))
    assert not any("solo" in line for line in driver.clean(dry_run=True, keep={"solo"}))


def test_doctor_reports_namespaces_and_binaries(driver):
    checks = {name: (ok, detail) for name, ok, detail in driver.doctor()}
    assert checks["user namespaces"][0]
    assert checks["etcd"][0] and checks["nsenter"][0]
    mapping = checks["uid/gid mapping"]
    assert mapping[0] == idmap.choose().full
    if os.geteuid() == 0:
        assert "0-65535" in mapping[1] and "runs as root" in mapping[1]
    sudo_ok, sudo_detail = checks["sudo"]
    assert sudo_ok == bool(shutil.which("sudo", path="/usr/bin:/bin:/usr/sbin:/sbin"))
    assert sudo_ok or "apt-get install sudo" in sudo_detail
    jump_ok, jump_detail = checks["jump host"]
    assert jump_ok == (mapping[0] and sshd_mod.installed() and sudo_ok)
    assert ("ssh controlplane" in jump_detail) if jump_ok else jump_detail


def test_doctor_says_what_a_single_mapping_breaks_and_how_to_fix_it():
    """As an unprivileged user of this machine (nobody, which has no /etc/subuid range)."""
    if os.geteuid() != 0:
        line = idmap.doctor_line()
        if line[1]:
            pytest.skip("this user has subordinate ids: nodes map more than root")
    else:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-c", "import json; from simulator.cluster.local import idmap; "
             "print(json.dumps(idmap.doctor_line()))"],
            capture_output=True, text=True, cwd=REPO, timeout=30, check=False,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)})
        if done.returncode != 0 and "Permission denied" in done.stderr:
            pytest.skip(f"nobody may not run {sys.executable} here")
        assert done.returncode == 0, done.stderr
        line = tuple(json.loads(done.stdout))
        if line[1]:
            pytest.skip("nobody has subordinate ids here: nodes map more than root")
    name, ok, detail = line
    assert (name, ok) == ("uid/gid mapping", False)
    assert detail.startswith("nodes map only uid 0 (you): chown to another user, sudo and "
                             "useradd fail in the nodes; to fix it, ")
    assert "uidmap" in detail or "/etc/subuid" in detail
    assert detail.endswith("or run cka-sim as root")


def test_a_cluster_of_several_nodes_without_sshd_is_a_caveat_before_it_starts(monkeypatch):
    """`cka-sim start` and the TUI say before a multi-node task starts that `ssh` between
    its nodes will be refused on a machine without OpenSSH's server, and what to install;
    a one-node task, or a machine with the server, hears nothing."""
    driver = LocalDriver()
    several, one = ClusterSpec("c", control_planes=3), ClusterSpec("c")
    monkeypatch.setattr(sshd_mod, "SSHD", "/nonexistent/sbin/sshd")
    (caveat,) = driver.caveats(several)
    assert "`ssh` between this task's nodes will be refused" in caveat
    assert "sudo apt-get install openssh-server" in caveat
    assert driver.caveats(one) == []
    monkeypatch.undo()
    if sshd_mod.installed() and idmap.choose().full:
        assert driver.caveats(several) == []
