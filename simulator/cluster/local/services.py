"""The node's services as systemd shows them: the kubelet, containerd and cron units.

A kubeadm node runs the kubelet, containerd and cron as systemd services; a practice
node's PID 1 (:mod:`nodeinit`) plays all three. This module is its service manager, the
side of ``systemctl`` and ``journalctl`` (:mod:`systemctl`, copied into every node) that
runs in PID 1:

- **kubelet.service** is the node agent: the static-pod supervisor's kubelet half
  (manifest watching, restarts, garbage collection; :meth:`Supervisor.pause_agent`) and
  the kubelet's API threads (:class:`Kubelet`: Node status, Lease, mirror pods, port
  10250). Stopping it stops that work and leaves the running containers alone, as
  stopping a real kubelet does; starting it re-reads the manifests and adopts the
  containers that still run. Its Main PID is PID 1, the process that does the work.
- **containerd.service** is the container launcher, also PID 1; it cannot be stopped.
- **cron.service** is the cron daemon (:mod:`crond`), a child of PID 1.

How ``systemctl`` talks to PID 1, all under ``/run/cka-sim/systemd`` (the node's
``STATE_DIR``):

- ``units.json``: each unit's state (``ActiveState``, ``SubState``, ``MainPID``, the
  times it entered its state), written by PID 1 on every change (write + rename);
- ``jobs/<id>.json``: a job ``{"verb": "stop"|"start"|"restart", "unit": ...}`` written
  by ``systemctl``; PID 1's manager thread looks for jobs every ``POLL`` seconds, runs
  them in name order, deletes the file and lists ``<id>`` with its result under
  ``"done"`` in ``units.json``, which ``systemctl`` waits for.

The journal is ``/run/cka-sim/journal/journal.jsonl``, one JSON object a line: ``t``
(microseconds since the epoch), ``u`` (unit), ``id`` (syslog identifier), ``pid``, ``p``
(priority) and ``m`` (message). :class:`JournalHandler` writes the agent's log records
there in the kubelet's klog format (``I1203 13:20:01.123456       1 supervisor.py:561]
...``), records of the ``cka_sim.containerd`` logger in containerd's format, and the
manager writes systemd's own lines (``Started kubelet.service - ...``).

The unit files a candidate reads are written where kubeadm's packages put them
(:func:`write_unit_files`, :data:`USR_FILES`); editing them does not change what the
practice node's agent does.

Other ``.service`` files under ``/etc/systemd/system`` (an ``etcd.service``) are real
units (:mod:`units`): the manager loads one on its first job, starts the enabled ones at
boot, reads them all again on a ``{"verb": "daemon-reload"}`` job, and runs their
processes, which it publishes in ``units.json`` like the others (with the files and
stamps it loaded, so ``systemctl`` can tell that a file changed on disk).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.cluster import kubeadm
from simulator.cluster.local import units as units_mod

POLL = 0.1
JOURNAL_MAX = 4 * 1024 * 1024
DONE_KEPT = 64
UNIT_DIR = "/lib/systemd/system"
WANTS = "/etc/systemd/system/multi-user.target.wants"

KUBELET_SERVICE = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
"""``kubelet.service`` of the pkgs.k8s.io kubelet package."""

KUBEADM_DROPIN = """# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
"""``/etc/systemd/system/kubelet.service.d/10-kubeadm.conf`` of the kubeadm package."""

CONTAINERD_SERVICE = """# Copyright The containerd Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""

CRON_SERVICE = """[Unit]
Description=Regular background program processing daemon
Documentation=man:cron(8)
After=remote-fs.target nss-user-lookup.target

[Service]
EnvironmentFile=-/etc/default/cron
ExecStart=/usr/sbin/cron -f -P $EXTRA_OPTS
IgnoreSIGPIPE=false
KillMode=process
Restart=on-failure
SyslogFacility=cron

[Install]
WantedBy=multi-user.target
"""

USR_FILES = {f"/usr{UNIT_DIR}/kubelet.service": KUBELET_SERVICE,
             f"/usr{UNIT_DIR}/containerd.service": CONTAINERD_SERVICE,
             f"/usr{UNIT_DIR}/cron.service": CRON_SERVICE}
"""Unit files under ``/usr`` (``/lib`` is ``/usr/lib``), which the node shares read-only with
the host: :func:`nodeinit.provide_usr_files` lays the missing ones over it."""


def _cluster_dns() -> str:
    return str(ipaddress.ip_network(kubeadm.SERVICE_SUBNET)[10])


KUBELET_CONFIG = f"""apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: {kubeadm.PKI}/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- {_cluster_dns()}
clusterDomain: {kubeadm.DNS_DOMAIN}
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {{}}
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {{}}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: {kubeadm.MANIFESTS}
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"""
"""``/var/lib/kubelet/config.yaml`` as kubeadm writes it from the ``kubelet-config``
ConfigMap; a control plane's is replaced by the cluster's own once kubeadm has uploaded it."""


def kubeadm_flags(node_ip: str) -> str:
    """``/var/lib/kubelet/kubeadm-flags.env`` as ``kubeadm init``/``join`` write it."""
    flags = f"--node-ip={node_ip}" if node_ip else ""
    return f'KUBELET_KUBEADM_ARGS="{flags}"\n'


def write_unit_files(rootfs: Path, node_ip: str = "") -> None:
    """The kubelet's files outside ``/usr`` that kubeadm and its packages leave on a node,
    each only where it is missing, and the kubelet, containerd and cron enabled."""
    rootfs = Path(rootfs)
    files = {"etc/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
             "var/lib/kubelet/kubeadm-flags.env": kubeadm_flags(node_ip),
             "var/lib/kubelet/config.yaml": KUBELET_CONFIG}
    for rel, text in files.items():
        path = rootfs / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    wants = rootfs / WANTS.lstrip("/")
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("kubelet.service", "containerd.service", "cron.service"):
        if not os.path.lexists(wants / unit):
            os.symlink(f"{UNIT_DIR}/{unit}", wants / unit)


# the journal ---------------------------------------------------------------------------


class Journal:
    """The node's journal: appends entries to ``<state_dir>/journal/journal.jsonl``; past
    ``JOURNAL_MAX`` bytes the file moves to ``journal.jsonl.1`` (which ``journalctl`` reads
    first) and a new one starts."""

    def __init__(self, state_dir: Path, hostname: str = "") -> None:
        self.path = Path(state_dir) / "journal" / "journal.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, unit: str, ident: str, pid: int, message: str, priority: int = 6,
              when: float | None = None) -> None:
        entry = {"t": int((time.time() if when is None else when) * 1e6), "u": unit, "id": ident,
                 "pid": pid, "p": priority, "m": message}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                if self.path.stat().st_size > JOURNAL_MAX:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except OSError:
                pass
            try:
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write(line)
            except OSError:
                pass


_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def klog_line(record: logging.LogRecord, pid: int) -> str:
    """A log record as the kubelet's klog writes it: ``I1203 13:20:01.123456    1234 file.py:12] msg``."""
    level = "IWEF"[min(3, max(0, (record.levelno - logging.INFO) // 10))] if record.levelno >= logging.INFO else "I"
    moment = time.localtime(record.created)
    micros = int((record.created % 1) * 1e6)
    return (f"{level}{time.strftime('%m%d %H:%M:%S', moment)}.{micros:06d} {pid:>7} "
            f"{record.filename}:{record.lineno}] {record.getMessage()}")


def containerd_line(record: logging.LogRecord) -> str:
    """A log record as containerd writes it: ``time="..." level=info msg="..."``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    nanos = int((record.created % 1) * 1e9)
    level = {logging.WARNING: "warning", logging.ERROR: "error"}.get(record.levelno, "info")
    return f'time="{stamp}.{nanos:09d}Z" level={level} msg={json.dumps(record.getMessage())}'


class JournalHandler(logging.Handler):
    """Writes the node agent's log records to the journal: ``cka_sim.containerd`` as
    containerd.service, every other ``cka_sim.*`` logger as kubelet.service."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(logging.INFO)
        self.journal = journal
        self.pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("cka_sim."):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.msg, record.args = message, None
            priority = _PRIORITY.get(record.levelno, 6)
            if record.name == "cka_sim.containerd":
                self.journal.write("containerd.service", "containerd", self.pid,
                                   containerd_line(record), priority, record.created)
            else:
                self.journal.write("kubelet.service", "kubelet", self.pid,
                                   klog_line(record, self.pid), priority, record.created)
        except Exception:  # logging must never take the node down
            self.handleError(record)


# the units -----------------------------------------------------------------------------


@dataclass
class Unit:
    """A service as ``systemctl`` reports it, with what starting and stopping it does."""

    name: str
    description: str
    main_pid: int
    start: Callable[[], None] | None = None  # None: the practice node cannot stop it
    stop: Callable[[], None] | None = None
    active: bool = True
    since: float = field(default_factory=time.time)  # when it entered its state
    active_since: float = field(default_factory=time.time)

    def state(self) -> dict[str, Any]:
        return {"Description": self.description, "FragmentPath": f"{UNIT_DIR}/{self.name}",
                "ActiveState": "active" if self.active else "inactive",
                "SubState": "running" if self.active else "dead",
                "MainPID": self.main_pid if self.active else 0, "ExecMainPID": self.main_pid,
                "StateChangeTimestamp": self.since, "ActiveEnterTimestamp": self.active_since,
                "CanStop": self.stop is not None}


class ServiceManager:
    """Runs ``systemctl``'s jobs in a thread of PID 1 and publishes the units' states."""

    def __init__(self, state_dir: Path, journal: Journal, units: list[Unit],
                 rootfs: Path | None = None) -> None:
        self.dir = Path(state_dir) / "systemd"
        self.jobs = self.dir / "jobs"
        self.journal = journal
        self.units = {u.name: u for u in units}
        self.rootfs = Path(rootfs) if rootfs is not None else None
        self.services: dict[str, units_mod.ServiceProcess] = {}
        self._done: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_lock = threading.Lock()

    def start(self) -> None:
        """Publish the units, write their "Started" lines, start the enabled units of the
        node's own unit files and watch for jobs in a thread."""
        self.jobs.mkdir(parents=True, exist_ok=True)
        for unit in self.units.values():
            self.journal.write(unit.name, "systemd", 1, f"Started {unit.name} - {unit.description}.",
                               when=unit.since)
        self._publish()
        self._thread = threading.Thread(target=self._boot_and_run, name="systemd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching for jobs and stop the services of the node's own unit files."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for service in list(self.services.values()):
            service.stop()

    def _boot_and_run(self) -> None:
        if self.rootfs is not None:
            wants = self.rootfs / WANTS.lstrip("/")
            for name in self._own_unit_names():
                if os.path.lexists(wants / name) and self._service(name) is not None:
                    self.services[name].start()
            self._publish()
        self._run()

    def _own_unit_names(self) -> list[str]:
        """Service files under the node's unit directories that are not built in."""
        names: set[str] = set()
        if self.rootfs is None:
            return []
        for directory in units_mod.UNIT_DIRS:
            try:
                entries = list((self.rootfs / directory.lstrip("/")).iterdir())
            except OSError:
                continue
            names.update(p.name for p in entries if p.name.endswith(".service") and p.is_file())
        return sorted(names - set(self.units))

    def _service(self, name: str) -> units_mod.ServiceProcess | None:
        """The service ``name`` of the node's own unit files, loaded on first use as
        systemd loads a unit it has not seen (no daemon-reload needed for a new file)."""
        if name in self.services:
            return self.services[name]
        if self.rootfs is None or name in self.units:
            return None
        config = units_mod.load_unit(self.rootfs, name)
        if config is None:
            return None
        self.services[name] = units_mod.ServiceProcess(self.rootfs, config, self.journal,
                                                       self._publish)
        return self.services[name]

    def daemon_reload(self) -> str:
        """Read every unit file again (``systemctl daemon-reload``): running services keep
        their processes and use the new configuration at their next start."""
        if self.rootfs is None:
            return "done"
        self.journal.write("", "systemd", 1, "Reloading.")
        for name in self._own_unit_names():
            config = units_mod.load_unit(self.rootfs, name)
            if config is None:
                continue
            if name in self.services:
                self.services[name].reload(config)
            else:
                self._service(name)
        for name in [n for n, s in self.services.items()
                     if n not in self._own_unit_names() and s.state in ("inactive", "failed")]:
            del self.services[name]
        return "done"

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                names = sorted(p.name for p in self.jobs.iterdir() if p.suffix == ".json")
            except OSError:
                continue
            for name in names:
                path = self.jobs / name
                try:
                    job = json.loads(path.read_text())
                    verb, unit = str(job["verb"]), str(job["unit"])
                except (OSError, ValueError, KeyError, TypeError):
                    path.unlink(missing_ok=True)
                    continue
                try:
                    result = self.run_job(verb, unit)
                except Exception as exc:  # a failed job is reported, never fatal to PID 1
                    logging.getLogger("cka_sim.services").exception("job %s %s failed", verb, unit)
                    result = f"failed: {exc}"
                path.unlink(missing_ok=True)
                self._done = [*self._done[-(DONE_KEPT - 1):], {"id": path.stem, "result": result}]
                self._publish()

    def run_job(self, verb: str, name: str) -> str:
        """Start, stop or restart a unit; ``"done"`` or why not."""
        if verb == "daemon-reload":
            return self.daemon_reload()
        service = self._service(name)
        if service is not None:
            if verb in ("stop", "restart"):
                service.stop()
            if verb in ("start", "restart"):
                return service.start()
            return "done"
        unit = self.units.get(name)
        if unit is None:
            return "not-found"
        if unit.stop is None or unit.start is None:
            return "unsupported"
        desc = f"{unit.name} - {unit.description}"
        if verb in ("stop", "restart") and unit.active:
            self.journal.write(name, "systemd", 1, f"Stopping {desc}...")
            unit.stop()
            unit.active, unit.since = False, time.time()
            self.journal.write(name, "systemd", 1, f"{name}: Deactivated successfully.")
            self.journal.write(name, "systemd", 1, f"Stopped {desc}.")
            self._publish()
        if verb in ("start", "restart") and not unit.active:
            self.journal.write(name, "systemd", 1, f"Starting {desc}...")
            unit.start()
            unit.active, unit.since = True, time.time()
            unit.active_since = unit.since
            self.journal.write(name, "systemd", 1, f"Started {desc}.")
            self._publish()
        return "done"

    def _publish(self) -> None:
        with self._publish_lock:
            states = {n: u.state() for n, u in self.units.items()}
            states.update({n: s.published() for n, s in list(self.services.items())})
            data = {"units": states, "done": self._done}
            tmp = self.dir / ".units.json.tmp"
            try:
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
                os.replace(tmp, self.dir / "units.json")
            except OSError:
                pass


def node_services(state_dir: Path, journal: Journal, supervisor: Any, kubelet: Any = None,
                  cron_pid: int = 0, rootfs: Path | None = None) -> ServiceManager:
    """Start the service manager of a node whose PID 1 is this process: containerd, cron
    (when ``cron_pid``) and the kubelet, whose stop pauses ``supervisor``'s agent work
    (:meth:`Supervisor.pause_agent`) and stops ``kubelet``'s API threads, if any; with
    ``rootfs``, also the services of the node's own unit files (:mod:`units`), such as an
    ``etcd.service`` that runs etcd outside the kubelet."""

    def stop_agent() -> None:
        supervisor.pause_agent()
        if kubelet is not None:
            kubelet.stop()

    def start_agent() -> None:
        supervisor.resume_agent()
        if kubelet is not None:
            kubelet.start()

    units = [Unit("containerd.service", "containerd container runtime", os.getpid())]
    if cron_pid:
        units.append(Unit("cron.service", "Regular background program processing daemon", cron_pid))
    units.append(Unit("kubelet.service", "kubelet: The Kubernetes Node Agent", os.getpid(),
                      start=start_agent, stop=stop_agent))
    manager = ServiceManager(state_dir, journal, units, rootfs)
    manager.start()
    return manager
