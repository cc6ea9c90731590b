"""Grading rules that keep shortcuts from paying: the kubelet's view of the manifests
directory, flags as components parse them, checks that require others, guards worth no
points, and author errors that stop grading. Checks run on a real node filesystem."""

from __future__ import annotations

import pytest
import yaml
from hostnode import host_context

from simulator.cluster import staticpod
from simulator.errors import CheckError, ScenarioError
from simulator.grading import grade
from simulator.scenario import loads

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "etcd", "namespace": "kube-system"},
    "spec": {
        "containers": [{
            "name": "etcd", "image": "registry.k8s.io/etcd:3.6.6-0",
            "command": ["etcd", "--data-dir=/var/lib/etcd", "--listen-client-urls=https://127.0.0.1:2379"],
            "volumeMounts": [{"name": "etcd-data", "mountPath": "/var/lib/etcd"}],
        }],
        "volumes": [{"name": "etcd-data", "hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}}],
    },
}


def manifest(data_dir: str = "/var/lib/etcd", host: str = "/var/lib/etcd", name: str = "etcd") -> bytes:
    pod = yaml.safe_load(yaml.safe_dump(POD))
    pod["metadata"]["name"] = name
    pod["spec"]["containers"][0]["command"][1] = f"--data-dir={data_dir}"
    pod["spec"]["volumes"][0]["hostPath"]["path"] = host
    return yaml.safe_dump(pod).encode()


# --------------------------------------------------------------------------- flags


def test_flags_read_both_spellings_and_the_last_one_wins():
    argv = ["etcd", "--data-dir", "/var/lib/a", "--name=cp", "--data-dir=/var/lib/b"]
    assert staticpod.flag(argv, "data-dir") == "/var/lib/b"
    assert staticpod.flag(["etcd", "--data-dir", "/var/lib/a"], "--data-dir") == "/var/lib/a"
    assert staticpod.flag(argv, "data") is None  # a prefix of a flag is not the flag
    assert staticpod.flag(["kube-apiserver", "--etcd-servers=https://127.0.0.1:23790"], "etcd-servers") \
        == "https://127.0.0.1:23790"


def test_set_flag_replaces_every_spelling_once():
    argv = ["etcd", "--data-dir", "/var/lib/a", "--name=cp", "--data-dir=/var/lib/b"]
    assert staticpod.set_flag(argv, "data-dir", "/x") == ["etcd", "--data-dir=/x", "--name=cp"]
    assert staticpod.set_flag(argv, "data-dir", None) == ["etcd", "--name=cp"]
    assert staticpod.set_flag(["etcd"], "name", "cp") == ["etcd", "--name=cp"]


def test_data_dir_on_host_follows_the_deepest_mount():
    mounts = [staticpod.Mount("/var/lib/etcd-from-backup", "/var/lib/etcd"),
              staticpod.Mount("/srv/wal", "/var/lib/etcd/member/wal")]
    assert staticpod.data_dir_on_host("/var/lib/etcd", mounts)[0] == "/var/lib/etcd-from-backup"
    assert staticpod.data_dir_on_host("/var/lib/etcd/member/wal/", mounts)[0] == "/srv/wal"
    host, why = staticpod.data_dir_on_host("/var/lib/etcd-new", mounts)
    assert host is None and "inside the container" in why


# --------------------------------------------------------------------------- the kubelet's choice


def test_first_file_in_name_order_wins_and_dotfiles_and_broken_files_are_skipped():
    files = [
        ("etcd.yaml", manifest(host="/var/lib/etcd")),
        ("00-etcd.yaml", manifest(host="/var/lib/etcd-stray")),  # sorts first: this one runs
        (".etcd.yaml.swp", manifest(host="/var/lib/etcd-swap")),
        ("broken.yaml", b"apiVersion: v1\nkind: Pod\nmetadata: {name: x\n"),
        ("etcd.yaml.bak", manifest(name="etcd-old")),  # another pod name: a second pod
    ]
    chosen = staticpod.effective(files, "controlplane")
    assert [p.file for p in chosen.pods] == ["/etc/kubernetes/manifests/00-etcd.yaml",
                                             "/etc/kubernetes/manifests/etcd.yaml.bak"]
    assert chosen.pod("etcd").container().mounts[0].source == "/var/lib/etcd-stray"
    skipped = dict(chosen.skipped)
    assert "duplicate pod name" in skipped["/etc/kubernetes/manifests/etcd.yaml"]
    assert "couldn't parse as pod" in skipped["/etc/kubernetes/manifests/broken.yaml"]


@pytest.fixture
def node_ctx(tmp_path):
    return host_context(tmp_path / "node")


def test_manifest_checks_read_the_pod_the_kubelet_runs(node_ctx):
    from simulator import registry

    ctx, node = node_ctx
    node.write_file("/etc/kubernetes/manifests/etcd.yaml", manifest())
    check = registry.get_checker("etcd.manifest")
    assert check(ctx, field="spec.volumes[name=etcd-data].hostPath.path", equals="/var/lib/etcd").passed
    node.write_file("/etc/kubernetes/manifests/00-etcd.yaml", manifest(host="/var/lib/etcd-stray"))
    stray = check(ctx, field="spec.volumes[name=etcd-data].hostPath.path", equals="/var/lib/etcd")
    assert not stray.passed and "00-etcd.yaml" in stray.detail and "/var/lib/etcd-stray" in stray.detail


def test_manifest_flag_urls_are_parsed_not_substring_matched(node_ctx):
    from simulator import registry

    ctx, node = node_ctx
    pod = yaml.safe_load(manifest())
    pod["metadata"]["name"] = "kube-apiserver"
    pod["spec"]["containers"][0]["name"] = "kube-apiserver"
    pod["spec"]["containers"][0]["command"] = ["kube-apiserver", "--etcd-servers", "https://127.0.0.1:23790"]
    node.write_file("/etc/kubernetes/manifests/kube-apiserver.yaml", yaml.safe_dump(pod).encode())
    check = registry.get_checker("etcd.manifest")
    wrong = check(ctx, component="kube-apiserver", flag="etcd-servers", port=2379)
    assert not wrong.passed and "expected port 2379" in wrong.detail
    pod["spec"]["containers"][0]["command"][2] = "https://127.0.0.1:2379,https://10.0.0.2:2379"
    node.write_file("/etc/kubernetes/manifests/kube-apiserver.yaml", yaml.safe_dump(pod).encode())
    assert check(ctx, component="kube-apiserver", flag="etcd-servers", port=2379, scheme="https").passed
    assert check(ctx, component="kube-apiserver", flag="etcd-servers", includes="https://10.0.0.2:2379").passed
    assert not check(ctx, component="kube-apiserver", flag="etcd-servers", includes="https://10.0.0.2").passed


# --------------------------------------------------------------------------- scoring rules

SCENARIO = """\
id: rules
title: Rules
domain: troubleshooting
difficulty: easy
time_limit: 5m
task: Make the files.
checks:
  - name: the marker exists
    use: files.exists
    with: {path: /root/marker}
    points: 2
  - name: the second file exists
    use: files.exists
    with: {path: /root/second}
    requires: [the marker exists]
    points: 3
  - name: the node has a root home
    use: files.exists
    with: {path: /root, kind: dir}
    guard: true
solution: touch /root/marker /root/second
"""


def test_a_required_check_must_pass_first_and_guards_earn_nothing(node_ctx):
    ctx, node = node_ctx
    scenario = loads(SCENARIO, "rules.yaml")
    fresh = grade(scenario, ctx.cluster, {}, {})
    assert [(o.passed, o.points, o.max_points) for o in fresh] == [(False, 0, 2), (False, 0, 3), (True, 0, 0)]
    node.write_file("/root/second", b"")
    alone = grade(scenario, ctx.cluster, {}, {})[1]
    assert not alone.passed and "needs 'the marker exists' to pass first" in alone.detail
    node.write_file("/root/marker", b"")
    assert sum(o.points for o in grade(scenario, ctx.cluster, {}, {})) == 5


def test_guard_points_and_requires_are_validated_with_their_place():
    with pytest.raises(ScenarioError) as info:
        loads(SCENARIO.replace("    guard: true\n", "    guard: true\n    points: 1\n"), "rules.yaml")
    text = "\n".join([info.value.message, *info.value.problems])
    assert "a guard is a condition worth no points" in text and "rules.yaml:" in text
    with pytest.raises(ScenarioError) as info:
        loads(SCENARIO.replace("requires: [the marker exists]", "requires: [the node has a root home]"),
              "rules.yaml")
    text = "\n".join([info.value.message, *info.value.problems])
    assert "no earlier check is named 'the node has a root home'" in text and "rules.yaml:" in text


def test_a_checker_error_is_the_scenarios_and_stops_grading(node_ctx):
    ctx, _ = node_ctx
    broken = loads(SCENARIO.replace("with: {path: /root/marker}", "with: {path: /root/marker, kind: socket}"),
                   "rules.yaml")
    with pytest.raises(CheckError) as info:
        grade(broken, ctx.cluster, {}, {})
    assert "scenario 'rules', check 'the marker exists'" in info.value.message
    assert "kind 'socket'" in info.value.message
