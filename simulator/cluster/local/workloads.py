"""Workload pods on an embedded node: what the kubelet makes of a pod the scheduler bound here.

:func:`pod_spec` turns the API's pod into the supervisor's :class:`PodSpec`, doing what the
kubelet does before containers start:

- volumes under ``/var/lib/kubelet/pods/<uid>/volumes/<plugin>/<name>`` as the kubelet lays
  them: ``emptyDir``, ``configMap`` and ``secret`` (files per key, ``items`` and ``mode``
  honoured), ``downwardAPI`` and ``projected`` (the service account token through the
  TokenRequest API, ``ca.crt`` from ``kube-root-ca.crt``, the namespace), and ``hostPath``;
- environment: ``value`` with ``$(VAR)`` expansion, ``valueFrom`` (``fieldRef``,
  ``configMapKeyRef``, ``secretKeyRef``), ``envFrom``, and the ``KUBERNETES_SERVICE_*``
  variables of the ``kubernetes`` Service;
- ``/etc/hosts`` (written by the supervisor once the sandbox has its IP), ``/etc/resolv.conf``
  for ``dnsPolicy`` (``ClusterFirst``: the cluster DNS at ``10.96.0.10``).

A volume or variable whose source is missing raises :class:`NotReady` with the kubelet's
message (``configmap "x" not found``); the pod then waits in ``ContainerCreating``, as on a
kubeadm node, and is tried again at the next sync. :func:`pod_status` is the status the
kubelet posts from the supervisor's summary.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from pathlib import Path
from typing import Any

from simulator.cluster import staticpod
from simulator.cluster.local.apiclient import ApiClient, ApiError
from simulator.cluster.staticpod import ContainerSpec, Mount, PodSpec

PODS_DIR = "var/lib/kubelet/pods"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
TOKEN_SECONDS = 3607
ROOT_CA = "kube-root-ca.crt"


class NotReady(Exception):
    """The pod cannot start yet; the message is the kubelet's (a FailedMount event)."""


def pod_dir(uid: str) -> str:
    """The pod's directory inside the node."""
    return f"/{PODS_DIR}/{uid}"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class _Sources:
    """ConfigMaps and Secrets of one namespace, each read at most once per pod."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self._cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def data(self, kind: str, name: str) -> dict[str, bytes] | None:
        key = (kind, name)
        if key not in self._cache:
            plural = "configmaps" if kind == "configmap" else "secrets"
            try:
                obj = self.api.get(f"/api/v1/namespaces/{_quote(self.namespace)}/{plural}/{_quote(name)}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self._cache[key] = None
            else:
                if kind == "configmap":
                    found = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
                    found.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
                else:
                    found = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                self._cache[key] = found
        return self._cache[key]

    def need(self, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        found = self.data(kind, name)
        if found is None:
            if optional:
                return {}
            raise NotReady(f'{kind} "{name}" not found')
        return found


def _field(pod: dict[str, Any], path: str, node_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if path.startswith(("metadata.labels['", "metadata.annotations['")):
        which, _, rest = path[len("metadata."):].partition("['")
        return str((meta.get(which) or {}).get(rest.rstrip("']"), ""))
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": node_ip, "status.hostIPs": node_ip,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    return ""


def _write_files(target: Path, files: dict[str, bytes], mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def _pick(data: dict[str, bytes], items: list[dict[str, Any]] | None, what: str) -> dict[str, bytes]:
    if not items:
        return dict(data)
    out = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            raise NotReady(f'couldn\'t find key {key} in {what}')
        out[str(item.get("path") or key)] = data[key]
    return out


class _Builder:
    def __init__(self, api: ApiClient, rootfs: Path, pod: dict[str, Any], node_ip: str) -> None:
        self.api, self.rootfs, self.pod, self.node_ip = api, rootfs, pod, node_ip
        meta = pod.get("metadata") or {}
        self.name, self.namespace = str(meta.get("name", "")), str(meta.get("namespace", "default"))
        self.uid = str(meta.get("uid", ""))
        self.sources = _Sources(api, self.namespace)

    def volume_dir(self, plugin: str, name: str) -> str:
        return f"{pod_dir(self.uid)}/volumes/kubernetes.io~{plugin}/{name}"

    def token(self, audience: list[str] | None, seconds: int) -> bytes:
        sa = (self.pod.get("spec") or {}).get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": audience or None, "expirationSeconds": seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                            "name": self.name, "uid": self.uid}}}
        try:
            answer = self.api.post(f"/api/v1/namespaces/{_quote(self.namespace)}/serviceaccounts/"
                                   f"{_quote(sa)}/token", body)
        except ApiError as exc:
            raise NotReady(f'failed to fetch token: serviceaccounts "{sa}" {exc.text}') from None
        return str((answer.get("status") or {}).get("token", "")).encode()

    def projected(self, sources: list[dict[str, Any]]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for src in sources:
            if "serviceAccountToken" in src:
                t = src["serviceAccountToken"] or {}
                aud = [t["audience"]] if t.get("audience") else None
                files[str(t.get("path", "token"))] = self.token(aud, int(t.get("expirationSeconds") or TOKEN_SECONDS))
            elif "configMap" in src:
                c = src["configMap"] or {}
                data = self.sources.need("configmap", str(c.get("name", "")), bool(c.get("optional")))
                files.update(_pick(data, c.get("items"), f"configmap {c.get('name')}"))
            elif "secret" in src:
                c = src["secret"] or {}
                data = self.sources.need("secret", str(c.get("name", "")), bool(c.get("optional")))
                files.update(_pick(data, c.get("items"), f"secret {c.get('name')}"))
            elif "downwardAPI" in src:
                files.update(self.downward((src["downwardAPI"] or {}).get("items") or []))
        return files

    def downward(self, items: list[dict[str, Any]]) -> dict[str, bytes]:
        return {str(i.get("path")): _field(self.pod, str((i.get("fieldRef") or {}).get("fieldPath", "")),
                                           self.node_ip).encode()
                for i in items if i.get("path")}

    def volumes(self) -> dict[str, tuple[str, str, bool]]:
        """Materialize every volume; name -> (path inside the node, hostPath type, read-only)."""
        out: dict[str, tuple[str, str, bool]] = {}
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            name = str(vol.get("name", ""))
            if isinstance(vol.get("hostPath"), dict):
                out[name] = (str(vol["hostPath"].get("path", "")), str(vol["hostPath"].get("type") or ""), False)
                continue
            if "emptyDir" in vol:
                path = self.volume_dir("empty-dir", name)
                (self.rootfs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
                os.chmod(self.rootfs / path.lstrip("/"), 0o777)
                out[name] = (path, "Directory", False)
                continue
            if "configMap" in vol:
                c, plugin, kind = vol["configMap"] or {}, "configmap", "configmap"
            elif "secret" in vol:
                c, plugin, kind = vol["secret"] or {}, "secret", "secret"
                c = {**c, "name": c.get("secretName", "")}
            elif "projected" in vol:
                c, plugin, kind = vol["projected"] or {}, "projected", ""
            elif "downwardAPI" in vol:
                c, plugin, kind = vol["downwardAPI"] or {}, "downward-api", ""
            else:
                raise NotReady(f"volume {name}: this practice node mounts hostPath, emptyDir, "
                               "configMap, secret, downwardAPI and projected volumes only")
            if kind:
                data = self.sources.need(kind, str(c.get("name", "")), bool(c.get("optional")))
                files = _pick(data, c.get("items"), f"{kind} {c.get('name')}")
            elif plugin == "projected":
                files = self.projected(c.get("sources") or [])
            else:
                files = self.downward(c.get("items") or [])
            path = self.volume_dir(plugin, name)
            _write_files(self.rootfs / path.lstrip("/"), files, int(c.get("defaultMode") or 0o644))
            out[name] = (path, "Directory", True)
        return out

    def env(self, c: dict[str, Any], service_env: dict[str, str]) -> dict[str, str]:
        env: dict[str, str] = dict(service_env)
        for src in c.get("envFrom") or []:
            ref = src.get("configMapRef") or src.get("secretRef")
            kind = "configmap" if "configMapRef" in src else "secret"
            data = self.sources.need(kind, str((ref or {}).get("name", "")), bool((ref or {}).get("optional")))
            for k, v in data.items():
                env[str(src.get("prefix") or "") + k] = v.decode(errors="replace")
        for e in c.get("env") or []:
            name = str(e.get("name", ""))
            frm = e.get("valueFrom")
            if not frm:
                env[name] = staticpod.expand(str(e.get("value", "")), env)
            elif "fieldRef" in frm:
                env[name] = _field(self.pod, str(frm["fieldRef"].get("fieldPath", "")), self.node_ip)
            elif "configMapKeyRef" in frm or "secretKeyRef" in frm:
                ref = frm.get("configMapKeyRef") or frm.get("secretKeyRef")
                kind = "configmap" if "configMapKeyRef" in frm else "secret"
                data = self.sources.need(kind, str(ref.get("name", "")), bool(ref.get("optional")))
                if str(ref.get("key")) in data:
                    env[name] = data[str(ref["key"])].decode(errors="replace")
                elif not ref.get("optional"):
                    raise NotReady(f'couldn\'t find key {ref.get("key")} in {kind} '
                                   f'{self.namespace}/{ref.get("name")}')
        return env

    def resolv_conf(self) -> str:
        spec = self.pod.get("spec") or {}
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
            try:  # the kubelet's --resolv-conf: the node's own
                return (self.rootfs / "etc/resolv.conf").read_text()
            except OSError:
                return ""
        lines = []
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
            search = [f"{self.namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
            lines = [f"search {' '.join(search)}", f"nameserver {CLUSTER_DNS}", "options ndots:5"]
        config = spec.get("dnsConfig") or {}
        lines += [f"nameserver {n}" for n in config.get("nameservers") or []]
        if config.get("searches"):
            lines.append("search " + " ".join(config["searches"]))
        return "\n".join(lines) + "\n"


def service_env(api: ApiClient) -> dict[str, str]:
    """The variables of the ``kubernetes`` Service every container gets."""
    try:
        svc = api.get("/api/v1/namespaces/default/services/kubernetes")
    except ApiError:
        return {}
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    port = next((p.get("port") for p in (svc.get("spec") or {}).get("ports") or [] if p.get("name") == "https"), 443)
    if not ip:
        return {}
    url = f"tcp://{ip}:{port}"
    return {"KUBERNETES_SERVICE_HOST": ip, "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": url,
            f"KUBERNETES_PORT_{port}_TCP": url, f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": str(port), f"KUBERNETES_PORT_{port}_TCP_ADDR": ip}


def pod_spec(api: ApiClient, rootfs: Path, pod: dict[str, Any], node_ip: str,
             services: dict[str, str]) -> PodSpec:
    """The supervisor's spec of an API pod; volumes are written now. Raises NotReady."""
    b = _Builder(api, rootfs, pod, node_ip)
    spec = pod.get("spec") or {}
    volumes = b.volumes()
    base = rootfs / pod_dir(b.uid).lstrip("/")
    base.mkdir(parents=True, exist_ok=True)
    extra: list[Mount] = [Mount(f"{pod_dir(b.uid)}/etc-hosts", "/etc/hosts", False, "FileOrCreate")]
    (base / "resolv.conf").write_text(b.resolv_conf())
    extra.append(Mount(f"{pod_dir(b.uid)}/resolv.conf", "/etc/resolv.conf", False, "File"))
    containers = []
    for c in spec.get("containers") or []:
        env = b.env(c, services if spec.get("enableServiceLinks", True) is not False else {})
        mounts = list(extra)
        for m in c.get("volumeMounts") or []:
            path, type_, read_only = volumes.get(str(m.get("name")), ("", "", False))
            if not path:
                continue
            if m.get("subPath"):
                path, type_ = os.path.join(path, str(m["subPath"])), ""
            mounts.append(Mount(path, str(m.get("mountPath", "")), read_only or bool(m.get("readOnly")), type_))
        command = [staticpod.expand(str(a), env) for a in c.get("command") or []]
        args = [staticpod.expand(str(a), env) for a in c.get("args") or []]
        containers.append(ContainerSpec(
            str(c.get("name", "")), str(c.get("image", "")), tuple(command), tuple(env.items()),
            str(c.get("workingDir") or ""), tuple(mounts), pulled=True, args=tuple(args)))
    grace = spec.get("terminationGracePeriodSeconds")
    return PodSpec(file="", name=b.name, namespace=b.namespace, full_name=b.name, uid=b.uid,
                   containers=tuple(containers),
                   grace=float(grace) if isinstance(grace, (int, float)) and grace >= 0 else 30.0,
                   restart_policy=str(spec.get("restartPolicy") or "Always"),
                   doc={"spec": {"hostname": spec.get("hostname") or b.name}},
                   host_network=bool(spec.get("hostNetwork")))

