"""The commented starting file written by ``cka-sim scenario new ID``."""

from __future__ import annotations

import re

from simulator.errors import ScenarioError
from simulator.scenario.models import SLUG

SKELETON = """\
# A cka-sim scenario (format version 1). Check it with: cka-sim scenario validate FILE
# Editors complete the fields from the JSON Schema: cka-sim scenario schema > scenario.schema.json
schema: 1
id: {id}
title: Back up etcd to a snapshot file
domain: troubleshooting      # cluster-architecture | workloads-scheduling | services-networking | storage | troubleshooting
difficulty: easy             # easy | medium | hard
time_limit: 8m               # 90s, 8m, 1h30m ...

cluster:
  control_planes: 1
  workers: 1                 # node01, as the exam's clusters have (0-3)
  # components: [etcd]       # default: etcd, kube-apiserver, kube-controller-manager and
                             # kube-scheduler, as kubeadm runs them; [etcd] alone: no API server
  jump_host: false           # true: the shell starts on node student as user candidate, who must
                             # `ssh controlplane` and `sudo -i`, as on the exam (solutions: `# on node student`)
  # etcd: systemd            # etcd as /etc/systemd/system/etcd.service instead of a static pod

# Drawn per attempt from a recorded seed. Write {{{{ name }}}} in the task, hints, setup,
# checks (name, with, requires), explanation, solution, alternatives and wrong_solutions.
# Scripts cka-sim runs itself (a setup `run`, a `script` check) get values through
# `env: {{NAME: "{{{{ name }}}}"}}` and read "$NAME"; they never hold {{{{ name }}}}.
vars:
  backup: {{choice: [etcd-backup, snapshot-daily, etcd-before-upgrade]}}
  # {{range: [lo, hi]}} draws a whole number, {{value: x}} is fixed, and
  # ip: {{node_ip: controlplane}} is that node's address, read once the cluster is up
  # (for an endpoint such as https://{{{{ ip }}}}:2379).

# Runs in order before the clock starts. Each step does one of:
# apply, snapshot, fault, run, file, record.
setup:
  - file:
      path: /opt/backup/README
      content: |
        Backups of this cluster's etcd go here.
      mode: "0644"
  - record: revision         # etcd's revision now -> state.setup_revision for checkers

task: |
  The etcd member on `controlplane` holds the only copy of this cluster's state.

  Save a snapshot of it to `/opt/backup/{{{{ backup }}}}.db`. Use the certificates in
  `/etc/kubernetes/pki/etcd/` and the endpoint `https://127.0.0.1:2379`.

hints:
  - "`etcdctl snapshot save` needs --cacert, --cert and --key to talk to etcd over TLS."

checks:
  - name: /opt/backup/{{{{ backup }}}}.db is a valid etcd snapshot
    use: snapshot.valid
    with: {{path: "/opt/backup/{{{{ backup }}}}.db"}}
    points: 3
  - name: etcd is still healthy
    use: etcd.healthy
    guard: true              # a condition: holds in a fresh cluster, worth no points
  # requires: [NAME, ...]    # count a check only when these earlier checks pass

explanation: |
  A snapshot is taken through the etcd API (`etcdctl snapshot save`); it ends with a
  checksum that `etcdutl snapshot status` and restore verify.

# The gate also runs the solution without its last paragraph (its last step), which must
# not score full marks: keep the step that completes the task in the last paragraph.
solution: |
  grep -E -- '--(trusted-ca|cert|key)-file' /etc/kubernetes/manifests/etcd.yaml

  ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \\
    --cacert=/etc/kubernetes/pki/etcd/ca.crt \\
    --cert=/etc/kubernetes/pki/etcd/server.crt \\
    --key=/etc/kubernetes/pki/etcd/server.key \\
    snapshot save /opt/backup/{{{{ backup }}}}.db

# Other correct ways; each must score full marks.
alternatives:
  - name: etcdctl configured through its environment variables
    script: |
      export ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT=/etc/kubernetes/pki/etcd/ca.crt \\
        ETCDCTL_CERT=/etc/kubernetes/pki/etcd/server.crt ETCDCTL_KEY=/etc/kubernetes/pki/etcd/server.key
      etcdctl snapshot save /opt/backup/{{{{ backup }}}}.db

wrong_solutions:
  - name: copied the live database file instead of taking a snapshot
    script: cp /var/lib/etcd/member/snap/db /opt/backup/{{{{ backup }}}}.db
    fails: ["/opt/backup/{{{{ backup }}}}.db is a valid etcd snapshot"]

tags: [etcd, backup]
"""


def skeleton(scenario_id: str) -> str:
    """A commented scenario file for ``cka-sim scenario new ID`` that validates as is.

    Raises ScenarioError when ``scenario_id`` is not a valid slug.
    """
    if not re.match(SLUG, scenario_id):
        raise ScenarioError(f"{scenario_id!r} is not a valid scenario id",
                            hint="use 2-63 lowercase letters, digits and dashes, e.g. etcd-backup")
    return SKELETON.format(id=scenario_id)
