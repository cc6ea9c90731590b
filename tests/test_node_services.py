"""systemctl and journalctl on a real embedded node: the kubelet, containerd and cron units,
the kubelet's files where kubeadm puts them, stopping and starting the node agent, and the
node's own unit files (etcd run by systemd, ``cluster.etcd: systemd``)."""

from __future__ import annotations

import os
import re
import time

import pytest
from clusterkit import control_plane_unusable

from checkers import etcd as checkers_etcd
from simulator import registry
from simulator.cluster import etcdunit, kubeadm
from simulator.cluster.local import kubelet as kubelet_mod
from simulator.cluster.local import services
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec, Completed

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


_usable = control_plane_unusable


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_usable() is not None, reason=str(_usable()))]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    old = os.environ.get("CKA_SIM_HOME")
    os.environ["CKA_SIM_HOME"] = str(tmp_path_factory.mktemp("cka-home"))
    driver = LocalDriver()
    cluster = driver.create(ClusterSpec("services", components=COMPONENTS), lambda step: None)
    try:
        yield cluster.node("controlplane")
    finally:
        driver.delete(cluster)
        if old is None:
            os.environ.pop("CKA_SIM_HOME", None)
        else:
            os.environ["CKA_SIM_HOME"] = old


def sh(node, script: str, timeout: float = 60) -> Completed:
    return node.run(["bash", "-c", script], timeout=timeout)


def kubelet_port_open(node) -> bool:
    return sh(node, "exec 3<>/dev/tcp/127.0.0.1/10250").ok


def lease_renew_time(node) -> str:
    done = node.run(["kubectl", "-n", "kube-node-lease", "get", "lease", "controlplane",
                     "-o", "jsonpath={.spec.renewTime}"])
    assert done.ok, done.err
    return done.out


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_systemctl_status_kubelet_shows_kubeadms_unit_and_the_agents_log(node):
    status = node.run(["systemctl", "status", "kubelet", "--no-pager"])
    assert status.returncode == 0, status.err
    lines = status.out.splitlines()
    assert lines[:4] == [
        "● kubelet.service - kubelet: The Kubernetes Node Agent",
        "     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled; preset: enabled)",
        "    Drop-In: /etc/systemd/system/kubelet.service.d",
        "             └─10-kubeadm.conf"]
    assert re.fullmatch(r"     Active: active \(running\) since \w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+; "
                        r"(\d+(ms|s|min \d+s|min)) ago", lines[4]), lines[4]
    assert lines[5] == "       Docs: https://kubernetes.io/docs/"
    assert lines[6].startswith("   Main PID: 1 (")  # the node's init plays the kubelet
    journal = node.run(["journalctl", "-u", "kubelet", "--no-pager"]).out.splitlines()
    assert any(re.match(r"\w{3} \d\d \d\d:\d\d:\d\d controlplane kubelet\[1\]: I\d{4} .* started container etcd ",
                        line) for line in journal), journal
    assert status.out.endswith("\n\n" + "\n".join(journal[-10:]) + "\n")

    # the files a candidate inspects, where kubeadm and its packages put them
    assert sh(node, "cat /lib/systemd/system/kubelet.service").out == services.KUBELET_SERVICE
    assert sh(node, "cat /etc/systemd/system/kubelet.service.d/10-kubeadm.conf").out == services.KUBEADM_DROPIN
    assert sh(node, "cat /var/lib/kubelet/kubeadm-flags.env").out == \
        'KUBELET_KUBEADM_ARGS="--node-ip=172.30.0.10"\n'
    # kubeadm wrote the cluster's kubelet configuration over the node's default one
    assert "kind: KubeletConfiguration\n" in sh(node, "cat /var/lib/kubelet/config.yaml").out
    cat = node.run(["systemctl", "cat", "kubelet"]).out
    assert cat == (f"# /lib/systemd/system/kubelet.service\n{services.KUBELET_SERVICE}\n"
                   f"# /etc/systemd/system/kubelet.service.d/10-kubeadm.conf\n{services.KUBEADM_DROPIN}")
    # the host's own unit directory still shows through
    assert sh(node, "test -d /lib/systemd/system && ls /lib/systemd/system | wc -l").out.strip() != "0"

    units = node.run(["systemctl", "list-units", "--type=service"]).out.splitlines()
    assert [line.split()[:4] for line in units[1:4]] == [
        ["containerd.service", "loaded", "active", "running"],
        ["cron.service", "loaded", "active", "running"],
        ["kubelet.service", "loaded", "active", "running"]]
    cron = node.run(["systemctl", "status", "cron"]).out
    pid = re.search(r"Main PID: (\d+) \((\S+)\)", cron)
    assert pid and pid.group(1) != "1"
    containerd = node.run(["systemctl", "status", "containerd"])
    assert containerd.returncode == 0 and "Active: active (running)" in containerd.out
    assert node.run(["journalctl", "-u", "containerd", "-o", "cat"]).out.startswith(
        "Started containerd.service - containerd container runtime.\n")


def test_systemctl_stop_kubelet_leaves_etcd_running_and_closes_the_kubelet_port(node):
    wait_for(lambda: kubelet_port_open(node), 20, "the kubelet port")
    etcd = node.run(["crictl", "ps", "-q", "--name", "^etcd$"]).out.split()
    assert len(etcd) == 1
    renewed = lease_renew_time(node)
    try:
        stop = node.run(["systemctl", "stop", "kubelet"])
        assert (stop.returncode, stop.out, stop.err) == (0, "", "")
        assert node.run(["systemctl", "is-active", "kubelet"]).out == "inactive\n"
        wait_for(lambda: not kubelet_port_open(node), 10, "the kubelet port to close")
        # the control plane keeps running: the API server answers
        assert node.run(["kubectl", "get", "--raw", "/readyz"]).out == "ok"
        assert node.run(["crictl", "ps", "-q", "--name", "^etcd$"]).out.split() == etcd
        # and nobody renews the node's Lease (renewed every 10 s while the kubelet runs),
        # so the node controller will mark the Node NotReady after its grace period
        renewed = lease_renew_time(node)
        time.sleep(kubelet_mod.LEASE_PERIOD + 1.5)
        assert lease_renew_time(node) == renewed
    finally:
        start = node.run(["systemctl", "start", "kubelet"])
    assert start.returncode == 0, start.err
    wait_for(lambda: kubelet_port_open(node), 20, "the kubelet port to open again")
    wait_for(lambda: lease_renew_time(node) != renewed, 20, "the Lease to be renewed again")
    assert node.run(["crictl", "ps", "-q", "--name", "^etcd$"]).out.split() == etcd
    assert node.run(["systemctl", "is-active", "kubelet"]).out == "active\n"


def test_systemctl_disable_and_enable_change_the_wants_link(node):
    disable = node.run(["systemctl", "disable", "kubelet"])
    assert disable.err == 'Removed "/etc/systemd/system/multi-user.target.wants/kubelet.service".\n'
    state = node.run(["systemctl", "is-enabled", "kubelet"])
    assert (state.returncode, state.out) == (1, "disabled\n")
    enable = node.run(["systemctl", "enable", "--now", "kubelet"])
    assert enable.returncode == 0
    assert enable.err == ("Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service"
                          " → /lib/systemd/system/kubelet.service.\n")
    assert node.run(["systemctl", "is-enabled", "kubelet"]).out == "enabled\n"


# etcd run by systemd: a unit file of the node's own ---------------------------------------


@pytest.fixture(scope="module")
def etcd_node(tmp_path_factory):
    old = os.environ.get("CKA_SIM_HOME")
    os.environ["CKA_SIM_HOME"] = str(tmp_path_factory.mktemp("cka-home-etcd"))
    driver = LocalDriver()
    cluster = driver.create(ClusterSpec("etcdunit", components=COMPONENTS, etcd="systemd"),
                            lambda step: None)
    try:
        yield cluster
    finally:
        driver.delete(cluster)
        if old is None:
            os.environ.pop("CKA_SIM_HOME", None)
        else:
            os.environ["CKA_SIM_HOME"] = old


def etcd_healthy(node) -> bool:
    return kubeadm.etcdctl(node, "endpoint", "health", "--command-timeout=2s", timeout=15).ok


def test_etcd_runs_as_a_systemd_service_and_the_api_server_uses_it(etcd_node):
    node = etcd_node.node("controlplane")
    assert not node.run(["test", "-e", kubeadm.ETCD_MANIFEST]).ok
    assert node.run(["crictl", "ps", "-q", "--name", "^etcd$"]).out == ""
    status = node.run(["systemctl", "status", "etcd", "--no-pager"])
    assert status.returncode == 0, status.err
    lines = status.out.splitlines()
    assert lines[:2] == [
        "● etcd.service - etcd key-value store",
        "     Loaded: loaded (/etc/systemd/system/etcd.service; enabled; preset: enabled)"]
    assert lines[2].startswith("     Active: active (running) since ")
    pid = re.search(r"   Main PID: (\d+) \(etcd\)", status.out)
    assert pid, status.out
    # its output is in the journal under the unit, as etcd's own identifier and PID
    journal = node.run(["journalctl", "-u", "etcd", "--no-pager", "-o", "short"]).out
    assert f"controlplane etcd[{pid.group(1)}]: " in journal
    assert "Started etcd.service - etcd key-value store." in journal
    # the process runs the unit's command line, as /proc shows it
    running, why = etcdunit.running(node)
    assert running is not None, why
    assert running.pid == int(pid.group(1))
    assert running.argv[0] == etcdunit.BINARY and running.data_dir == kubeadm.ETCD_DATA_DIR
    assert "--data-dir=/var/lib/etcd" in node.run(["systemctl", "cat", "etcd"]).out
    # the API server's --etcd-servers point at it
    assert node.run(["kubectl", "get", "--raw", "/readyz"]).out == "ok"
    assert node.run(["kubectl", "create", "namespace", "via-service"]).ok
    answered, value, _ = checkers_etcd.get_key(registry.Context(etcd_node), "/registry/namespaces/via-service")
    assert answered and value is not None


def test_an_edited_etcd_unit_runs_its_old_command_line_until_daemon_reload(etcd_node):
    node = etcd_node.node("controlplane")
    ctx = registry.Context(etcd_node)
    copy = "/var/lib/etcd-copy"
    assert sh(node, f"cp -a /var/lib/etcd {copy} && "
                    f"sed -i 's#--data-dir=/var/lib/etcd #--data-dir={copy} #' {etcdunit.UNIT_PATH}").ok
    try:
        show = node.run(["systemctl", "show", "etcd", "-p", "NeedDaemonReload"])
        assert show.out == "NeedDaemonReload=yes\n"
        restart = node.run(["systemctl", "restart", "etcd"])
        assert restart.returncode == 0
        assert restart.err == ("Warning: The unit file, source configuration file or drop-ins of "
                               "etcd.service changed on disk. Run 'systemctl daemon-reload' to reload units.\n")
        assert "changed on disk" in node.run(["systemctl", "status", "etcd"]).out
        wait_for(lambda: etcd_healthy(node), 30, "etcd after its restart")
        # still the directory systemd loaded, whatever the file says now
        assert etcdunit.running(node)[0].data_dir == kubeadm.ETCD_DATA_DIR
        result = checkers_etcd.data_dir(ctx, expected=copy, service="etcd")
        assert not result.passed and "expected /var/lib/etcd-copy" in result.detail
        # reloading alone leaves the running process alone; the restart takes the new line
        assert node.run(["systemctl", "daemon-reload"]).ok
        assert node.run(["systemctl", "show", "etcd", "-p", "NeedDaemonReload"]).out == "NeedDaemonReload=no\n"
        assert etcdunit.running(node)[0].data_dir == kubeadm.ETCD_DATA_DIR
        assert node.run(["systemctl", "restart", "etcd"]).err == ""
        wait_for(lambda: etcd_healthy(node), 30, "etcd on the copy")
        assert checkers_etcd.data_dir(ctx, expected=copy, service="etcd").passed
        assert not checkers_etcd.data_dir(ctx, expected=copy).passed  # no static pod runs it
    finally:
        sh(node, f"sed -i 's#--data-dir={copy} #--data-dir=/var/lib/etcd #' {etcdunit.UNIT_PATH} && "
                 "systemctl daemon-reload && systemctl restart etcd")
    wait_for(lambda: etcd_healthy(node), 30, "etcd back on /var/lib/etcd")


UNIT = """[Unit]
Description=Says hello

[Service]
EnvironmentFile=/etc/default/hello
Environment="WHO=the world" SPLIT="one two"
ExecStart=/bin/sh -c 'echo "hello ${WHO} from $$PPID"; printf "%%s|" $SPLIT "$GREETING"; echo; exit "$CODE"'
Restart=no
"""


def test_a_unit_of_the_nodes_own_starts_fails_and_reads_its_environment_file_at_each_start(etcd_node):
    node = etcd_node.node("controlplane")
    node.write_file("/etc/systemd/system/hello.service", UNIT.encode())
    node.write_file("/etc/default/hello", b"# the greeting\nGREETING='hi there'\nCODE=3\n")
    # a new unit file loads on first use, without daemon-reload; as for systemd's
    # Type=simple, the start succeeds once the process runs, and its exit fails the unit
    assert node.run(["systemctl", "start", "hello"]).returncode == 0
    wait_for(lambda: node.run(["systemctl", "is-failed", "hello"]).out == "failed\n", 10, "hello to fail")
    status = node.run(["systemctl", "status", "hello"])
    assert status.returncode == 3
    assert "     Active: failed (Result: exit-code) since " in status.out
    assert "(code=exited, status=3/FAILURE)" in status.out
    journal = node.run(["journalctl", "-u", "hello", "-o", "cat"]).out.splitlines()
    assert "hello the world from 1" in journal  # ${WHO} replaced, $$ a literal $ for sh
    assert "one|two|hi there|" in journal
    assert "hello.service: Main process exited, code=exited, status=3/FAILURE" in journal
    # the EnvironmentFile is read again at each start: no daemon-reload needed for it
    node.write_file("/etc/default/hello", b"GREETING=bye\nCODE=0\n")
    assert node.run(["systemctl", "start", "hello"]).returncode == 0
    wait_for(lambda: node.run(["systemctl", "is-active", "hello"]).out == "inactive\n", 10,
             "hello to finish")
    assert "one|two|bye|" in node.run(["journalctl", "-u", "hello", "-o", "cat"]).out
    # a unit whose program does not exist fails to start with systemd's 203/EXEC
    node.write_file("/etc/systemd/system/missing.service",
                    b"[Service]\nExecStart=/usr/local/bin/not-here --flag\n")
    start = node.run(["systemctl", "start", "missing"])
    assert start.returncode == 1
    assert 'See "systemctl status missing.service"' in start.err
    assert node.run(["systemctl", "is-failed", "missing"]).out == "failed\n"
    assert "status=203/EXEC" in node.run(["journalctl", "-u", "missing", "-o", "cat"]).out
