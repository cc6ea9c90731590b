"""Pod status as a kubelet posts it, from the node supervisor's summary of a pod.

The one writer of ``status`` for both kinds of pods the node agent reports: mirror pods of
static pods (:func:`mirror_status`, the node's IP as pod IP) and workload pods
(:func:`workload_status`, the pod's own IP). Times are RFC 3339 in UTC, as the API stores
them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any


def iso(seconds: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(seconds: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_ns(ns: int | None) -> str | None:
    return iso(ns / 1e9) if ns else None


def container_status(c: dict[str, Any], started_ns: int | None) -> dict[str, Any]:
    image = str(c.get("image", ""))
    out: dict[str, Any] = {
        "name": c["name"],
        "image": image,
        "imageID": f"{image.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
        "ready": bool(c.get("ready")),
        "restartCount": int(c.get("restartCount", 0)),
        "started": c.get("state") == "running",
    }
    if c.get("containerID"):
        out["containerID"] = f"containerd://{c['containerID']}"
    state = c.get("state")
    if state == "running":
        out["state"] = {"running": {"startedAt": from_ns(c.get("startedAt")) or iso()}}
    elif state == "waiting":
        waiting = {"reason": c.get("reason") or "ContainerCreating"}
        if c.get("message"):
            waiting["message"] = c["message"]
        out["state"] = {"waiting": waiting}
        if "exitCode" in c:
            out["lastState"] = {"terminated": {
                "exitCode": int(c["exitCode"]), "reason": "Error" if c["exitCode"] else "Completed",
                "finishedAt": from_ns(c.get("finishedAt")) or iso(),
                "startedAt": from_ns(started_ns) or iso(),
                **({"containerID": out["containerID"]} if "containerID" in out else {})}}
    else:
        out["state"] = {"terminated": {
            "exitCode": int(c.get("exitCode", 0)), "reason": c.get("reason") or "Error",
            "finishedAt": from_ns(c.get("finishedAt")) or iso(),
            "startedAt": from_ns(started_ns) or iso(),
            **({"containerID": out["containerID"]} if "containerID" in out else {})}}
    return out


def _status(pod: dict[str, Any], host_ip: str, pod_ip: str, ready_since: str, started: str,
            sandbox: bool) -> dict[str, Any]:
    ready = "True" if pod.get("ready") else "False"

    def condition(type_: str, status: str, since: str) -> dict[str, Any]:
        return {"type": type_, "status": status, "lastProbeTime": None,
                "lastTransitionTime": since}

    out: dict[str, Any] = {
        "phase": pod.get("phase", "Pending"),
        "conditions": [
            condition("PodReadyToStartContainers", "True" if sandbox else "False", started),
            condition("Initialized", "True", started),
            condition("Ready", ready, ready_since),
            condition("ContainersReady", ready, ready_since),
            condition("PodScheduled", "True", started),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
    }
    if pod_ip:
        out["podIP"] = pod_ip
        out["podIPs"] = [{"ip": pod_ip}]
    out["startTime"] = started
    out["containerStatuses"] = [container_status(c, pod.get("createdAt"))
                                for c in pod.get("containers", [])]
    return out


def mirror_status(pod: dict[str, Any], ip: str, ready_since: str) -> dict[str, Any]:
    """The status of a mirror pod from the supervisor's summary of its static pod: the
    node's network, so the node's IP is the pod's."""
    return _status(pod, ip, ip, ready_since, from_ns(pod.get("createdAt")) or iso(), True)


def workload_status(pod: dict[str, Any], node_ip: str, ready_since: str,
                    start_time: str) -> dict[str, Any]:
    """The status of a workload pod from the supervisor's summary (or a not yet started
    stand-in): phase, conditions, container statuses and the pod's own IP."""
    return _status(pod, node_ip, str(pod.get("ip") or ""), ready_since, start_time or iso(),
                   bool(pod.get("ip")))
