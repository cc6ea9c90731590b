"""kube.* checkers against a real kube-apiserver, controller manager and etcd on an embedded
node, through kubectl in the node with admin.conf as a grader would run them.

One cluster serves the whole module; tests that break it put it back and wait until the
API server is ready again.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from clusterkit import check, fault, needs_kubernetes, wait_until
from conftest import needs_namespaces

from simulator import registry
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
KUBECTL = ["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"]


pytestmark = [pytest.mark.slow, needs_namespaces, needs_kubernetes]


@pytest.fixture(scope="module")
def cluster():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("kubechk", components=COMPONENTS), lambda step: None)
    yield made
    driver.delete(made)


@pytest.fixture
def ctx(cluster):
    context = registry.Context(cluster)
    wait_until("the API server is ready", lambda: check(context, "kube.ready").passed, timeout=90.0)
    return context


@pytest.fixture(scope="module")
def app(cluster):
    """A namespace with a ConfigMap and a Deployment, made through the kube.apply fault."""
    context = registry.Context(cluster)
    wait_until("the API server is ready", lambda: check(context, "kube.ready").passed, timeout=90.0)
    fault(context, "kube.apply", objects=[
        {"kind": "Namespace", "name": "shop"},
        {"kind": "ConfigMap", "name": "app-config", "namespace": "shop",
         "data": {"LOG_LEVEL": "info", "FEATURE_X": "on"}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                       {"name": "log", "image": "busybox:1.36"}]}}}},
    ])
    return "shop"


# ---------------------------------------------------------------- kube.ready


def test_ready_names_the_api_server(ctx):
    result = check(ctx, "kube.ready")
    assert result.passed and result.detail == "the API server at https://172.30.0.10:6443 is ready"


def test_stopped_api_server_is_a_quick_clear_verdict(ctx):
    fault(ctx, "manifest.move_out", component="kube-apiserver")
    try:
        def refused():
            result = check(ctx, "kube.ready")
            return result if "refuses connections" in result.detail else None
        result = wait_until("kubectl sees the port closed", refused, timeout=30)
        assert not result.passed
        assert result.detail == ("the API server at https://172.30.0.10:6443 refuses connections: is "
                                 "kube-apiserver running? (`crictl ps -a` and `crictl logs <id>` on the "
                                 "node show why)")
        started = time.monotonic()
        missing = check(ctx, "kube.exists", kind="Namespace", name="default")
        assert time.monotonic() - started < 3
        assert not missing.passed and "could not look up Namespace default" in missing.detail
        assert "refuses connections" in missing.detail
        absent = check(ctx, "kube.absent", kind="Namespace", name="gone")
        assert not absent.passed and "refuses connections" in absent.detail
    finally:
        ctx.run(["mv", "/root/kube-apiserver.yaml", "/etc/kubernetes/manifests/"]).check()


def test_one_grading_asks_an_api_server_that_does_not_answer_once(ctx):
    """Checks of one grading share a context's ``seen``: once kubectl could not reach the
    API server, the later kube checks of that grading give the same verdict without
    waiting out kubectl's retries again; the next grading asks afresh."""
    fault(ctx, "manifest.move_out", component="kube-apiserver")
    grading = dataclasses.replace(ctx, seen={})
    try:
        wait_until("kubectl sees the port closed",
                   lambda: "refuses connections" in check(ctx, "kube.ready").detail, timeout=30)
        assert "refuses connections" in check(grading, "kube.ready").detail
    finally:
        ctx.run(["mv", "/root/kube-apiserver.yaml", "/etc/kubernetes/manifests/"]).check()
    wait_until("the API server is ready again", lambda: check(ctx, "kube.ready").passed, timeout=90)
    same = check(grading, "kube.exists", kind="Namespace", name="default")
    assert not same.passed and "refuses connections" in same.detail
    assert check(dataclasses.replace(ctx, seen={}), "kube.exists", kind="Namespace", name="default").passed


def test_api_server_without_etcd_is_not_ready_and_says_etcd(ctx):
    fault(ctx, "etcd.stop")
    try:
        def etcd_named():
            result = check(ctx, "kube.ready")
            return result if "etcd" in result.detail else None
        result = wait_until("readyz reports etcd", etcd_named, timeout=30)
        assert not result.passed
        assert "the API server answers but is not ready: etcd" in result.detail
        assert "--etcd-servers" in result.detail
        started = time.monotonic()
        lookup = check(ctx, "kube.exists", kind="Namespace", name="default")
        assert time.monotonic() - started < 12
        assert not lookup.passed and "could not look up Namespace default" in lookup.detail
    finally:
        ctx.run(["mv", "/root/etcd.yaml.stopped", "/etc/kubernetes/manifests/etcd.yaml"]).check()


# ---------------------------------------------------------------- kube.nodes_ready


def test_nodes_ready(ctx):
    result = check(ctx, "kube.nodes_ready")
    assert result.passed and result.detail == "1 node(s) Ready: controlplane"
    assert check(ctx, "kube.nodes_ready", count=1).passed
    more = check(ctx, "kube.nodes_ready", count=2)
    assert not more.passed and more.detail == "1 of 1 node(s) Ready, expected at least 2"


def test_node_not_ready_quotes_the_kubelet_reason(ctx):
    patch = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                        "message": "container runtime network not ready"}]}}
    seen = None
    for _ in range(5):
        ctx.run([*KUBECTL, "patch", "node", "controlplane", "--subresource=status", "--type=strategic",
                 "-p", json.dumps(patch)]).check()
        result = check(ctx, "kube.nodes_ready")
        if not result.passed:
            seen = result
            break
    assert seen is not None, "the kubelet set Ready back before the check could run, five times"
    assert seen.detail == ("0 of 1 node(s) Ready, expected all: controlplane is NotReady "
                           "(container runtime network not ready)")
    wait_until("the kubelet reports Ready again", lambda: check(ctx, "kube.nodes_ready").passed, timeout=60)


@dataclasses.dataclass
class _ClusterWithAnUnjoinedNode:
    real: object

    @property
    def name(self):
        return self.real.name

    @property
    def nodes(self):
        return [*self.real.nodes, dataclasses.make_dataclass("N", ["name"])("node01")]

    def node(self, name):
        return self.real.node(name)


def test_node_that_never_registered(ctx):
    wider = registry.Context(_ClusterWithAnUnjoinedNode(ctx.cluster))
    result = check(wider, "kube.nodes_ready")
    assert not result.passed
    assert result.detail == ("1 of 2 node(s) Ready, expected all: node01 is not registered "
                             "(is its kubelet running?)")
    assert check(wider, "kube.nodes_ready", count=1).passed


# ---------------------------------------------------------------- kube.exists / kube.absent


def test_exists_and_absent(ctx, app):
    found = check(ctx, "kube.exists", kind="ConfigMap", name="app-config", namespace=app)
    assert found.passed and found.detail.startswith("ConfigMap shop/app-config exists (created ")
    assert check(ctx, "kube.exists", kind="ns", name=app).passed
    still = check(ctx, "kube.absent", kind="ConfigMap", name="app-config", namespace=app)
    assert not still.passed and still.detail == "ConfigMap shop/app-config still exists (expected it gone)"
    missing = check(ctx, "kube.exists", kind="ConfigMap", name="other", namespace=app)
    assert not missing.passed and missing.detail == "ConfigMap shop/other does not exist"
    gone = check(ctx, "kube.absent", kind="Secret", name="other", namespace=app)
    assert gone.passed and gone.detail == "Secret shop/other does not exist, as expected"
    unknown = check(ctx, "kube.exists", kind="Widget", name="x")
    assert not unknown.passed and "has no resource type 'Widget'" in unknown.detail


def test_terminating_object_is_neither_there_nor_gone(ctx, app):
    fault(ctx, "kube.apply", objects={"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "held", "namespace": app,
                                                   "finalizers": ["example.com/hold"]}})
    fault(ctx, "kube.delete", kind="ConfigMap", name="held", namespace=app, wait=False)
    exists = check(ctx, "kube.exists", kind="ConfigMap", name="held", namespace=app)
    assert not exists.passed
    assert "exists but is being deleted (Terminating since" in exists.detail
    assert "waiting on finalizers example.com/hold" in exists.detail
    absent = check(ctx, "kube.absent", kind="ConfigMap", name="held", namespace=app)
    assert not absent.passed and "still exists: it is being deleted" in absent.detail
    ctx.run([*KUBECTL, "-n", app, "patch", "configmap", "held", "--type=merge",
             "-p", '{"metadata":{"finalizers":null}}']).check()
    assert check(ctx, "kube.absent", kind="ConfigMap", name="held", namespace=app).passed


# ---------------------------------------------------------------- kube.field


def test_field_equals_contains_and_selectors(ctx, app):
    def field(**params):
        return check(ctx, "kube.field", **params)

    cm = {"kind": "ConfigMap", "name": "app-config", "namespace": app}
    dep = {"kind": "deployment", "name": "web", "namespace": app}
    assert field(**cm, path="data.LOG_LEVEL", equals="info").passed
    assert field(**cm, path=".data.FEATURE_X", equals="on").passed
    assert field(**cm, path="{.data}", contains="FEATURE_X").passed
    assert field(**cm, path="data", equals={"LOG_LEVEL": "info", "FEATURE_X": "on"}).passed
    assert field(**dep, path="spec.replicas", equals=3).passed
    assert field(**dep, path="spec.replicas", equals="3").passed
    assert field(**dep, path="spec.template.spec.containers[name=log].image", equals="busybox:1.36").passed
    assert field(**dep, path="spec.template.spec.containers[0].image", contains="nginx").passed
    assert field(**dep, path="metadata.labels.app").passed

    wrong = field(**cm, path="data.LOG_LEVEL", equals="debug")
    assert not wrong.passed and wrong.detail == "data.LOG_LEVEL of ConfigMap shop/app-config is 'info', expected 'debug'"
    lacks = field(**dep, path="spec.template.spec.containers[1].image", contains="nginx")
    assert not lacks.passed and "is 'busybox:1.36', expected it to contain 'nginx'" in lacks.detail
    no_field = field(**cm, path="data.MISSING", equals="x")
    assert not no_field.passed and no_field.detail == "ConfigMap shop/app-config has no data.MISSING"
    no_object = field(kind="ConfigMap", name="other", namespace=app, path="data.x", equals="1")
    assert not no_object.passed and no_object.detail == "ConfigMap shop/other does not exist, so it has no data.x"


# ---------------------------------------------------------------- kube.delete through the API


def test_deleted_namespace_is_absent_and_gets_by_name(ctx):
    fault(ctx, "kube.apply", objects=[{"kind": "Namespace", "name": "scratch"},
                                      {"kind": "ConfigMap", "name": "c", "namespace": "scratch"}])
    assert check(ctx, "kube.exists", kind="Namespace", name="scratch").passed
    fault(ctx, "kube.delete", kind="Namespace", name="scratch")
    result = check(ctx, "kube.absent", kind="Namespace", name="scratch")
    assert result.passed and result.detail == "Namespace scratch does not exist, as expected"
    assert not check(ctx, "kube.exists", kind="ConfigMap", name="c", namespace="scratch").passed


def test_missing_admin_conf_is_named(ctx):
    ctx.run(["mv", "/etc/kubernetes/admin.conf", "/root/admin.conf.away"]).check()
    try:
        result = check(ctx, "kube.ready")
    finally:
        ctx.run(["mv", "/root/admin.conf.away", "/etc/kubernetes/admin.conf"]).check()
    assert not result.passed
    assert result.detail == "/etc/kubernetes/admin.conf is missing, so kubectl cannot reach the cluster"
