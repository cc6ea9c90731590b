"""Workload pods on an embedded cluster of a control plane and node01: the node agent runs
what the scheduler binds, from the node's image store, in a network namespace of the pod's
own, and reports it as a kubelet does. One real cluster for the module."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest
from clusterkit import control_plane_unusable, wait_until

from simulator.cluster.local import images
from simulator.cluster.local.driver import LocalDriver, image_store
from simulator.cluster.node import ClusterSpec, Completed

_usable = control_plane_unusable()
needs_cluster = pytest.mark.skipif(_usable is not None, reason=str(_usable))
needs_busybox = pytest.mark.skipif(images.find_busybox() is None,
                                   reason=f"no busybox image can be made: {images.BUSYBOX_HINT}")
pytestmark = [needs_cluster, needs_busybox]


def kubectl(node, *args: str, stdin: str | None = None, timeout: float = 30) -> Completed:
    return node.run(["kubectl", *args], input=stdin.encode() if stdin else None, timeout=timeout)


def pods(node, selector: str, namespace: str = "default") -> list[dict]:
    done = kubectl(node, "-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    return json.loads(done.out)["items"] if done.ok else []


def pod(node, name: str, namespace: str = "default") -> dict:
    done = kubectl(node, "-n", namespace, "get", "pod", name, "-o", "json")
    return json.loads(done.out) if done.ok else {}


def running(items: list[dict], count: int) -> list[dict] | None:
    ok = [p for p in items if p["status"].get("phase") == "Running"
          and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])]
    return ok if len(ok) == count else None


@pytest.fixture(scope="module")
def cluster():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("wl", workers=1, components=(
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")), lambda step: None)
    try:
        yield made
    finally:
        driver.delete(made)


@pytest.fixture
def cp(cluster):
    return cluster.node("controlplane")


def test_a_deployment_of_busybox_gets_running_pods_on_node01_with_ips_of_its_pod_cidr(cp, cluster):
    kubectl(cp, "create", "deployment", "web", "--image=busybox", "--replicas=2", "--",
            "sleep", "3600").check()
    ready = wait_until("two Running pods of web", lambda: running(pods(cp, "app=web"), 2), 60)
    cidr = ipaddress.ip_network(json.loads(kubectl(cp, "get", "node", "node01", "-o", "json").out)
                                ["spec"]["podCIDR"])
    for item in ready:
        status = item["status"]
        assert item["spec"]["nodeName"] == "node01"  # the control plane's taint keeps it off
        assert ipaddress.ip_address(status["podIP"]) in cidr
        assert status["hostIP"] == cluster.node("node01").ip
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Ready"] == conditions["ContainersReady"] == "True"
        (container,) = status["containerStatuses"]
        assert "running" in container["state"] and container["restartCount"] == 0
        assert container["containerID"].startswith("containerd://")
    assert len({p["status"]["podIP"] for p in ready}) == 2
    listed = cluster.node("node01").run(["crictl", "ps", "-o", "json"]).check()
    names = {c["labels"]["io.kubernetes.pod.name"] for c in json.loads(listed.out)["containers"]}
    assert {p["metadata"]["name"] for p in ready} <= names


def test_a_pod_has_its_own_hostname_address_and_reaches_another_pod(cp):
    ready = wait_until("web pods", lambda: running(pods(cp, "app=web"), 2), 60)
    first, second = ready
    name, ip = first["metadata"]["name"], first["status"]["podIP"]
    done = kubectl(cp, "exec", name, "--", "sh", "-c",
                   f"hostname; ip -4 -o addr show eth0; ping -c 1 -W 2 {second['status']['podIP']}")
    assert done.ok, done.err
    lines = done.out.splitlines()
    assert lines[0] == name
    assert f"inet {ip}/24" in lines[1]
    assert "1 packets received" in done.out
    hosts = kubectl(cp, "exec", name, "--", "cat", "/etc/hosts").check().out
    assert f"{ip}\t{name}" in hosts


def test_the_control_plane_node_reaches_a_pod_on_node01(cp):
    kubectl(cp, "run", "listener", "--image=busybox", "--", "nc", "-ll", "-p", "8080",
            "-e", "echo", "pong").check()
    item = wait_until("listener Running", lambda: running([pod(cp, "listener")], 1), 60)[0]
    ip = item["status"]["podIP"]

    def answer():
        done = cp.run(["bash", "-c", 'exec 3<>"/dev/tcp/$IP/8080" && timeout 2 head -n1 <&3'],
                      env={"IP": ip}, timeout=10)
        return done.out.strip() if done.ok else None

    assert wait_until("an answer from the pod on node01", answer, 20) == "pong"


def test_logs_config_volumes_and_service_account_of_a_pod_that_completes(cp):
    kubectl(cp, "create", "configmap", "app-config", "--from-literal=LEVEL=debug").check()
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox:latest",
            "command": ["sh", "-c", 'echo "level=$LEVEL file=$(cat /config/LEVEL) '
                        'ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace) '
                        'api=$KUBERNETES_SERVICE_HOST"; grep -c . /etc/resolv.conf'],
            "env": [{"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "LEVEL"}}}],
            "volumeMounts": [{"name": "config", "mountPath": "/config"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}]}}
    kubectl(cp, "apply", "-f", "-", stdin=json.dumps(manifest)).check()
    done = wait_until("once Succeeded", lambda: pod(cp, "once").get("status", {}).get("phase") == "Succeeded", 60)
    assert done
    state = pod(cp, "once")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0 and state["reason"] == "Completed"
    logs = kubectl(cp, "logs", "once").check().out.splitlines()
    assert logs == ["level=debug file=debug ns=default api=10.96.0.1", "3"]


def test_a_pod_waits_in_container_creating_until_its_config_map_exists(cp):
    kubectl(cp, "run", "patient", "--image=busybox", "--overrides", json.dumps({
        "spec": {"containers": [{"name": "patient", "image": "busybox", "command": ["sleep", "3600"],
                                 "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
                 "volumes": [{"name": "c", "configMap": {"name": "later"}}]}})).check()
    time.sleep(3)
    status = pod(cp, "patient")["status"]
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    kubectl(cp, "create", "configmap", "later", "--from-literal=a=b").check()
    wait_until("patient Running once its config map exists", lambda: running([pod(cp, "patient")], 1), 30)


def test_an_image_the_store_lacks_is_err_image_pull_then_image_pull_back_off(cp):
    kubectl(cp, "run", "absent", "--image=nginx:1.27").check()

    def reasons():
        waiting = ((pod(cp, "absent").get("status", {}).get("containerStatuses") or [{}])[0]
                   .get("state", {}).get("waiting", {}))
        return waiting if waiting.get("reason") == "ImagePullBackOff" else None

    waiting = wait_until("ImagePullBackOff", reasons, 30)
    assert "docker.io/library/nginx:1.27" in waiting["message"]
    assert "busybox" in waiting["message"]  # says what the store holds
    assert pod(cp, "absent")["status"]["phase"] == "Pending"


def test_deleting_a_deployment_stops_its_containers_and_removes_its_pods(cp, cluster):
    kubectl(cp, "create", "deployment", "gone", "--image=busybox", "--", "sleep", "3600").check()
    wait_until("gone Running", lambda: running(pods(cp, "app=gone"), 1), 60)
    kubectl(cp, "delete", "deployment", "gone").check()
    wait_until("gone's pods removed", lambda: not pods(cp, "app=gone") or None, 30)
    worker = cluster.node("node01")

    def stopped():
        listed = json.loads(worker.run(["crictl", "ps", "-o", "json"]).check().out)["containers"]
        return not any(c["labels"]["io.kubernetes.pod.name"].startswith("gone-") for c in listed) or None

    wait_until("gone's containers stopped on node01", stopped, 10)


def test_the_busybox_image_is_the_static_binary_with_a_link_per_applet(tmp_path):
    store = images.Store(tmp_path)
    assert images.prepare_builtin(store) == []
    image = store.get("docker.io/library/busybox")
    assert image is not None and image.cmd == ("sh",)
    assert (image.rootfs / "bin/sh").resolve() == (image.rootfs / "bin/busybox").resolve()
    assert image.argv(None, ["echo", "hi"]) == ["echo", "hi"]  # no entrypoint: args run
    assert image.argv(["ls"], ["-l"]) == ["ls", "-l"]
    assert images.normalize("busybox") == "docker.io/library/busybox:latest"
    assert images.normalize("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
    assert image_store().get("busybox") is not None


def test_pods_running_judges_the_runtime_not_a_status_that_says_running(cp, cluster):
    from clusterkit import check

    from simulator import registry

    ctx = registry.Context(cluster)
    ready = wait_until("web pods", lambda: running(pods(cp, "app=web"), 2), 60)
    result = check(ctx, "kube.pods_running", kind="deployment", name="web")
    assert result.passed, result.detail
    assert all(p["metadata"]["name"] in result.detail for p in ready)
    kubectl(cp, "create", "deployment", "fake", "--image=nginx:1.27").check()
    victim = wait_until("fake's pod", lambda: pods(cp, "app=fake"), 30)[0]["metadata"]["name"]
    status = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}}
    worker = cluster.node("node01")
    worker.run(["systemctl", "stop", "kubelet"]).check()  # nothing posts the real status now
    try:
        kubectl(cp, "patch", "pod", victim, "--subresource=status", "--type=merge", "-p",
                json.dumps(status)).check()
        result = check(ctx, "kube.pods_running", kind="deployment", name="fake")
    finally:
        worker.run(["systemctl", "start", "kubelet"]).check()
    assert not result.passed
    assert "0 of 1 pod(s) of deployment default/fake run" in result.detail
    assert "have no running container on their node" in result.detail
    missing = check(ctx, "kube.pods_running", kind="deployment", name="nothing")
    assert not missing.passed and "does not exist" in missing.detail


def test_the_kubeadm_add_ons_run_on_every_node(cp):
    def system_pods():
        done = kubectl(cp, "-n", "kube-system", "get", "pods", "-o", "json")
        items = json.loads(done.out)["items"] if done.ok else []
        ok = running(items, len(items)) or []
        return ok if len(ok) == 8 else None

    ready = wait_until("eight Running kube-system pods", system_pods, 90)
    by_app: dict[str, list[str]] = {}
    for item in ready:
        app = (item["metadata"].get("labels") or {}).get("k8s-app") or item["metadata"]["name"]
        by_app.setdefault(app, []).append(item["spec"]["nodeName"])
    assert sorted(by_app["kube-proxy"]) == ["controlplane", "node01"]  # a DaemonSet: every node
    assert len(by_app["kube-dns"]) == 2
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert by_app[f"{name}-controlplane"] == ["controlplane"]
    proxy = kubectl(cp, "-n", "kube-system", "get", "configmap", "kube-proxy", "-o",
                    "jsonpath={.data.config\\.conf}").check().out
    assert "mode: iptables" in proxy
    dns = json.loads(kubectl(cp, "-n", "kube-system", "get", "service", "kube-dns", "-o", "json").out)
    assert dns["spec"]["clusterIP"] == "10.96.0.10"


def test_a_service_answers_on_its_cluster_ip_and_its_name_from_pods_and_nodes(cp):
    kubectl(cp, "create", "deployment", "hello", "--image=busybox:stable", "--replicas=2", "--",
            "sh", "-c", 'echo "hello from $(hostname)" > /index.html; exec httpd -f -p 8080 -h /').check()
    kubectl(cp, "expose", "deployment", "hello", "--port=80", "--target-port=8080").check()
    kubectl(cp, "run", "asker", "--image=busybox:stable", "--", "sleep", "3600").check()
    backends = wait_until("hello's pods", lambda: running(pods(cp, "app=hello"), 2), 60)
    names = {p["metadata"]["name"] for p in backends}
    wait_until("asker Running", lambda: running([pod(cp, "asker")], 1), 60)
    ip = json.loads(kubectl(cp, "get", "service", "hello", "-o", "json").out)["spec"]["clusterIP"]

    def ask(url):
        done = kubectl(cp, "exec", "asker", "--", "wget", "-qO-", url)
        return done.out.strip() if done.ok else None

    answers = set()
    deadline = time.monotonic() + 30
    while len(answers) < 2 and time.monotonic() < deadline:  # kube-proxy spreads the load
        got = ask("http://hello/") or ""  # the search list of the pod's resolv.conf
        answers.add(got.removeprefix("hello from "))
    assert names <= answers, answers
    assert (ask(f"http://{ip}/") or "").startswith("hello from hello-")
    lookup = kubectl(cp, "exec", "asker", "--", "nslookup", "hello.default.svc.cluster.local").check().out
    assert "10.96.0.10" in lookup and ip in lookup
    from_node = cp.run(["bash", "-c", 'exec 3<>"/dev/tcp/$IP/80" && printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 '
                        '&& timeout 5 cat <&3'], env={"IP": ip}, timeout=15)
    assert "hello from hello-" in from_node.out


def test_a_job_completes_and_a_stateful_set_runs_its_pods_in_order(cp):
    kubectl(cp, "create", "job", "count", "--image=busybox:stable", "--", "sh", "-c", "echo 1 2 3").check()
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 8080}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                        {"name": "db", "image": "busybox:stable", "command": ["sleep", "3600"]}]}}}}
    kubectl(cp, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": [headless, sts]})).check()

    def complete():
        done = kubectl(cp, "get", "job", "count", "-o", "jsonpath={.status.succeeded}")
        return done.ok and done.out.strip() == "1"

    wait_until("job count succeeded", complete, 60)
    assert kubectl(cp, "logs", "job/count").check().out.strip() == "1 2 3"
    ready = wait_until("db-0 and db-1 Running", lambda: running(pods(cp, "app=db"), 2), 90)
    assert sorted(p["metadata"]["name"] for p in ready) == ["db-0", "db-1"]
    assert kubectl(cp, "exec", "db-1", "--", "hostname").check().out.strip() == "db-1"
