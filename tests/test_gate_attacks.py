"""The quality gate's built-in attacks, played on real nodes against a scenario whose checks
can be fooled: the gate must name each attack that pays. Also how solutions split into
steps for the solution-prefix attack."""

from __future__ import annotations

import pytest
from conftest import needs_namespaces

from simulator import paths
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
cluster: {components: [etcd]}
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
cluster: {components: [etcd]}
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


# A task whose setup leaves a file and, with HAND_STARTED, a process started by hand.
KEPT = """\
id: kept-setup
title: The setup's file survives the reset
domain: cluster-architecture
difficulty: easy
time_limit: 5m
cluster: {components: [etcd]}
setup:
  - file: {path: /opt/notes/setup.txt, content: "made by the setup\\n"}
  - run: "echo $$ > /opt/notes/setup-shell.pid"
task: Copy /opt/notes/setup.txt to /opt/notes/copy.txt.
checks:
  - name: the copy holds the setup's words
    use: script
    with: {run: "grep -qx 'made by the setup' /opt/notes/copy.txt"}
    points: 2
  - name: etcd is healthy
    use: etcd.healthy
    guard: true
solution: |
  cp /opt/notes/setup.txt /opt/notes/copy.txt
wrong_solutions:
  - name: wrote the words by hand into another file
    script: echo 'made by the setup' > /opt/notes/other.txt
    fails: ["the copy holds the setup's words"]
exempt_attacks:
  empty-data-dir: the task is about a file, not etcd's data
"""
HAND_STARTED = '  - run: "setsid sleep 600 </dev/null >/dev/null 2>&1 &"\n'


@pytest.mark.slow
@needs_namespaces
@pytest.mark.timeout(300)
def test_attempts_boot_copies_of_one_set_up_cluster_that_show_what_it_showed(monkeypatch):
    lines: list[str] = []
    result = gate_scenario(loads(KEPT, "kept.yaml"), driver="local", progress=lines.append)
    assert result.passed, result.problems
    text = "\n".join(lines)
    assert "set up once and saved" in text and "differs" not in text
    assert not (paths.data_dir() / "checkpoints").exists() or not any((paths.data_dir() / "checkpoints").iterdir())

    # a process the setup started by hand does not come back when a copy boots: the gate
    # sees it and makes fresh clusters instead, and the scenario still passes
    lines.clear()
    hand = KEPT.replace("  - run: \"echo", HAND_STARTED + "  - run: \"echo", 1)
    result = gate_scenario(loads(hand, "hand.yaml"), driver="local", progress=lines.append, jobs=1)
    assert result.passed, result.problems
    text = "\n".join(lines)
    assert "a booted copy differs from the set-up cluster" in text and "sleep" in text
    assert "fresh clusters from now on" in text

    lines.clear()
    monkeypatch.setenv("CKA_SIM_GATE_FRESH", "1")
    result = gate_scenario(loads(KEPT, "kept.yaml"), driver="local", progress=lines.append)
    assert result.passed and "set up once" not in "\n".join(lines)
