"""The quality gate's built-in attacks, played on real nodes against a scenario whose checks
can be fooled: the gate must name each attack that pays. Also how solutions split into
steps for the solution-prefix attack."""

from __future__ import annotations

import pytest
from conftest import needs_namespaces

from simulator.attacks import solution_prefix, steps
from simulator.gate import gate_scenario
from simulator.scenario import loads

# Graded the way this project once graded a restore: by what files say. Every attack pays.
GULLIBLE = """\
id: gullible-restore
title: A restore graded by looking at files
domain: cluster-architecture
difficulty: easy
time_limit: 5m
setup:
  - snapshot: {path: /opt/backup/etcd-snapshot.db}
task: Restore /opt/backup/etcd-snapshot.db into /var/lib/etcd-from-backup and serve it.
checks:
  - name: the new data directory has a member directory
    use: script
    with: {run: "test -d /var/lib/etcd-from-backup/member"}
    points: 3
  - name: the manifest names the new directory
    use: script
    with: {run: "grep -q /var/lib/etcd-from-backup /etc/kubernetes/manifests/etcd.yaml"}
    points: 3
  - name: a backup file exists
    use: files.exists
    with: {path: /opt/backup/db-copy.db, min_size: 1000}
    points: 1
solution: |
  mkdir -p /opt/backup
  etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt \\
    --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key \\
    snapshot save /opt/backup/db-copy.db
  etcdutl snapshot restore /opt/backup/etcd-snapshot.db --data-dir /var/lib/etcd-from-backup

  sed -i 's#^\\( *\\)path: /var/lib/etcd$#\\1path: /var/lib/etcd-from-backup#' /etc/kubernetes/manifests/etcd.yaml
"""


def test_steps_are_paragraphs_kept_whole_where_bash_needs_them():
    script = "echo one\n\ncat > /tmp/x <<'EOF'\na\n\nb\nEOF\n\nfor i in 1 2; do\n\n  echo $i\ndone\n"
    assert steps(script) == ["echo one", "cat > /tmp/x <<'EOF'\na\n\nb\nEOF", "for i in 1 2; do\n\n  echo $i\ndone"]
    scenario = loads(GULLIBLE, "gullible.yaml")
    prefix = solution_prefix(scenario)
    assert prefix is not None and "snapshot restore" in prefix and "sed -i" not in prefix
    assert solution_prefix(loads(GULLIBLE.replace("\n\n  sed -i", "\n  sed -i"), "g.yaml")) is None


@pytest.mark.slow
@needs_namespaces
@pytest.mark.timeout(300)
def test_the_gate_names_every_attack_that_fools_a_gullible_scenario():
    scenario = loads(GULLIBLE, "gullible.yaml")
    result = gate_scenario(scenario, driver="local")
    text = "\n".join(result.problems)
    assert "attack 'empty-data-dir'" in text and "scores 6/7" in text
    assert "attack 'db-copy'" not in text  # no snapshot.* check names a path: nothing to copy over
    assert "attack 'solution-prefix'" not in text  # the restore without the manifest edit: 4/7
    assert "fresh environment" not in text and "solution misses" not in text


BACKUP = """\
id: gullible-backup
title: A backup graded mostly by its size
domain: cluster-architecture
difficulty: easy
time_limit: 5m
task: Save a snapshot of etcd to /opt/backup/etcd.db.
checks:
  - name: /opt/backup/etcd.db is a sound snapshot
    use: snapshot.valid
    with: {path: /opt/backup/etcd.db}
    points: 1
  - name: /opt/backup/etcd.db is larger than 1 KB
    use: script
    with: {run: "test $(stat -c %s /opt/backup/etcd.db) -gt 1024"}
    points: 3
solution: |
  mkdir -p /opt/backup

  etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt \\
    --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key \\
    snapshot save /opt/backup/etcd.db
exempt_attacks:
  empty-data-dir: the backup is taken from the running etcd, wherever its data lives
"""


@pytest.mark.slow
@needs_namespaces
@pytest.mark.timeout(300)
def test_a_raw_database_copy_where_a_snapshot_is_expected_is_caught():
    result = gate_scenario(loads(BACKUP, "backup.yaml"), driver="local")
    text = "\n".join(result.problems)
    assert "attack 'db-copy'" in text and "scores 3/4" in text
    assert "attack 'empty-data-dir'" not in text  # exempt, with a reason
    assert "attack 'solution-prefix'" not in text  # mkdir alone earns nothing
