"""etcd run by systemd (an "external" etcd): the unit, turning a cluster's static-pod etcd
into it, and the process that really runs, on every driver.

Some exam clusters run etcd as a systemd service, ``/etc/systemd/system/etcd.service``,
not as a static pod; the API server's ``--etcd-servers`` still points at it. A scenario
asks for such a cluster with ``cluster: {etcd: systemd}``; both drivers build the cluster
as usual and then call :func:`convert`, through the Node API only: the etcd binary is put
at ``/usr/local/bin/etcd`` (copied from the running static pod's process when the node
lacks it, as on kind), the unit is written with the static pod's own command line (same
data directory, certificates and URLs), the manifest is removed, and the unit is enabled
and started. The API server reconnects by itself.

:func:`running` reads the service's process the way an administrator would (``systemctl
show -p MainPID``, then ``/proc/<pid>/cmdline``, ``environ`` and ``cwd``), so checkers
judge the etcd that runs, not the unit file text (which may not have been reloaded).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping, Sequence

import yaml

from simulator.cluster import kubeadm, staticpod
from simulator.errors import ClusterError

SERVICE = "etcd.service"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}"
BINARY = "/usr/local/bin/etcd"
WANTS = "/etc/systemd/system/multi-user.target.wants"
MODES = ("static-pod", "systemd")
"""How a cluster runs etcd: ``cluster.etcd`` of a scenario."""

_CONVERT = r"""
set -e
if ! [ -x "$BINARY" ]; then
    pid=
    for proc in /proc/[0-9]*; do
        if [ "$(cat "$proc/comm" 2>/dev/null)" = etcd ]; then pid=${proc#/proc/}; break; fi
    done
    if [ -z "$pid" ]; then echo "no running etcd to take the etcd binary from" >&2; exit 1; fi
    cp "/proc/$pid/exe" "$BINARY.new"
    chmod 755 "$BINARY.new"
    mv "$BINARY.new" "$BINARY"
fi
rm -f "$MANIFEST"
end=$((SECONDS + 60))
while [ -n "$(crictl ps --name '^etcd$' -q 2>/dev/null)" ]; do
    if (( SECONDS >= end )); then echo "the etcd static pod did not stop" >&2; exit 1; fi
    sleep 0.2
done
systemctl daemon-reload
systemctl enable --now "$SERVICE" 2>/dev/null
"""


def unit_text(argv: Sequence[str]) -> str:
    """``etcd.service`` running ``argv`` (etcd's command line, ``argv[0]`` the program),
    in the layout of etcd's own example unit: one flag a line."""
    args = [BINARY, *argv[1:]]
    exec_start = " \\\n  ".join(args)
    return ("[Unit]\n"
            "Description=etcd key-value store\n"
            "Documentation=https://github.com/etcd-io/etcd\n"
            "After=network-online.target\n"
            "Wants=network-online.target\n"
            "\n"
            "[Service]\n"
            "Type=notify\n"
            f"ExecStart={exec_start}\n"
            "Restart=on-failure\n"
            "RestartSec=5\n"
            "LimitNOFILE=40000\n"
            "\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


def convert(node) -> None:
    """Make ``node``'s static-pod etcd a systemd service on the same data directory and
    certificates (see the module's docstring). ClusterError when a step fails."""
    try:
        manifest = node.read_file(kubeadm.ETCD_MANIFEST)
    except FileNotFoundError:
        raise ClusterError(f"{node.name} has no {kubeadm.ETCD_MANIFEST} to turn into {SERVICE}",
                           hint="cluster.etcd: systemd needs etcd in cluster.components") from None
    pod = staticpod.parse(manifest, kubeadm.ETCD_MANIFEST, node.name)
    node.write_file(UNIT_PATH, unit_text(pod.containers[0].argv).encode(), 0o644)
    done = node.run(["bash", "-c", _CONVERT], timeout=120, env={
        "BINARY": BINARY, "MANIFEST": kubeadm.ETCD_MANIFEST, "SERVICE": SERVICE})
    if not done.ok:
        status = node.run(["systemctl", "status", "--no-pager", "-n", "15", SERVICE])
        raise ClusterError(f"could not run etcd as {SERVICE} on {node.name}",
                           hint="\n".join([(done.err or done.out).strip()[-600:],
                                           status.out.strip()[-1200:]]))


@dataclasses.dataclass(frozen=True)
class Running:
    """The process a service runs: what etcd was started with."""

    pid: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    config: Mapping[str, object]  # --config-file's settings, if any

    def setting(self, name: str) -> str | None:
        """An etcd setting as etcd reads it: the config file (which then wins over
        everything), else the last ``--name``, else ``ETCD_NAME``-style environment."""
        if self.config:
            value = self.config.get(name)
            return None if value is None else str(value)
        value = staticpod.flag(self.argv[1:], name)
        if value is not None:
            return value
        return self.env.get("ETCD_" + name.upper().replace("-", "_"))

    @property
    def data_dir(self) -> str:
        """The directory etcd serves: ``--data-dir`` (``ETCD_DATA_DIR``, the config file's
        ``data-dir``), by default ``<name>.etcd`` in the working directory."""
        value = self.setting("data-dir") or f"{self.setting('name') or 'default'}.etcd"
        return posixpath.normpath(posixpath.join(self.cwd or "/", value))


def _kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def running(node, service: str = SERVICE) -> tuple[Running | None, str]:
    """(the process ``service`` runs on ``node``, or None with the reason in words a
    learner can act on)."""
    if "." not in service:
        service += ".service"
    shown = node.run(["systemctl", "show", service, "-p", "ActiveState", "-p", "SubState",
                      "-p", "MainPID", "-p", "LoadState"], timeout=20)
    props = _kv(shown.out)
    if not shown.ok or props.get("LoadState") == "not-found":
        return None, f"there is no {service} on {node.name} (systemctl show: {shown.err.strip() or 'not found'})"
    pid = int(props.get("MainPID") or 0)
    if props.get("ActiveState") != "active" or pid == 0:
        return None, (f"{service} is not running on {node.name} (ActiveState="
                      f"{props.get('ActiveState', '?')}, SubState={props.get('SubState', '?')}); "
                      f"look at `systemctl status {service}` and `journalctl -u {service}`")
    cmdline = node.run(["cat", f"/proc/{pid}/cmdline"], timeout=20)
    environ = node.run(["cat", f"/proc/{pid}/environ"], timeout=20)
    cwd = node.run(["readlink", f"/proc/{pid}/cwd"], timeout=20)
    if not cmdline.ok or not cmdline.stdout:
        return None, f"{service}'s process {pid} is gone (it may be restarting); look at `systemctl status {service}`"
    argv = tuple(a.decode(errors="replace") for a in cmdline.stdout.split(b"\0")[:-1] or [cmdline.stdout])
    env = {}
    for item in environ.stdout.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            env[key] = value
    found = Running(pid, argv, env, cwd.out.strip() if cwd.ok else "/", {})
    config_file = staticpod.flag(argv[1:], "config-file") or env.get("ETCD_CONFIG_FILE")
    if config_file:
        try:
            data = yaml.safe_load(node.read_file(posixpath.join(found.cwd, config_file)))
        except (OSError, yaml.YAMLError) as exc:
            return None, f"{service} runs etcd with --config-file={config_file}, which cannot be read: {exc}"
        found = dataclasses.replace(found, config=data if isinstance(data, dict) else {})
    return found, ""
