"""The built-in scenario pack: every file loads, names real checkers and faults, is listed,
and passes its quality gate on real nodes with real etcd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, needs_namespaces, real_kind_missing, run_cli

from simulator.catalog import Catalog
from simulator.gate import gate_scenario, script_parts
from simulator.scenario import Exam, Scenario, load_file, validate_file
from simulator.session import ensure_checker_names

PACK = REPO / "scenarios"
SCENARIO_IDS = {
    "etcd-backup", "etcd-backup-status", "etcd-restore", "etcd-corrupted",
    "etcd-wrong-data-dir", "etcd-pre-restore-backup", "etcd-automated-backup",
    "etcd-restore-deleted-namespace", "apiserver-stopped", "apiserver-wrong-etcd-port",
    "etcd-multi-member-restore", "etcd-expired-certs", "etcd-restore-dir-not-empty",
    "etcd-restore-newest-valid-backup", "etcd-broken-cert-paths",
    "etcd-backup-kubectl-exec", "etcd-corrupted-wal", "apiserver-etcd-two-faults",
    "etcd-backup-restore-roundtrip", "etcd-facts-report", "etcd-backup-jump-host",
    "etcd-systemd-restore",
}
EXAM_IDS = {"etcd-dr-sprint", "cka-mock-etcd"}
FILES = sorted(PACK.rglob("*.yaml"))


def _builtin() -> Catalog:
    return Catalog.load(strict=True)


def test_the_pack_holds_exactly_the_published_ids_at_their_paths() -> None:
    assert len(SCENARIO_IDS) == 22
    assert {p.stem for p in PACK.glob("*.yaml")} == SCENARIO_IDS
    assert {p.stem for p in (PACK / "exams").glob("*.yaml")} == EXAM_IDS
    for path in FILES:
        assert load_file(path).id == path.stem, f"{path} must hold the id of its file name"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACK)))
def test_every_file_validates_and_names_registered_checkers_and_faults(path: Path) -> None:
    assert validate_file(path) == []
    item = load_file(path)
    if isinstance(item, Scenario):
        for seed in range(8):
            rendered, _ = item.instantiate(seed)
            assert ensure_checker_names(rendered) == [], f"seed {seed}"


@pytest.mark.parametrize("scenario_id", sorted(SCENARIO_IDS))
def test_every_task_is_written_for_the_learner(scenario_id: str) -> None:
    sc = _builtin().get(scenario_id)
    assert "controlplane" in sc.task, "the task names the node to work on"
    assert 2 <= len(sc.hints) <= 3
    assert sc.explanation.strip()
    assert sc.wrong_solutions, "at least one realistic mistake is gated"
    assert any(not c.guard for c in sc.checks)
    for wrong in sc.wrong_solutions:
        assert set(wrong.fails) < {c.name for c in sc.checks}, \
            f"{wrong.name!r} must lose some checks, not all of them"


@pytest.mark.parametrize("scenario_id", sorted(SCENARIO_IDS))
def test_scripts_name_only_nodes_of_the_scenarios_cluster(scenario_id: str) -> None:
    sc = _builtin().get(scenario_id)
    nodes = sc.cluster.node_names()
    for script in [sc.solution, *(a.script for a in sc.alternatives), *(w.script for w in sc.wrong_solutions)]:
        assert {node for node, _ in script_parts(script, nodes[0])} <= set(nodes)


def test_the_multi_member_restore_runs_each_members_restore_on_its_node() -> None:
    rendered, _ = _builtin().get("etcd-multi-member-restore").instantiate(0)
    parts = script_parts(rendered.solution, "controlplane")
    assert [node for node, _ in parts] == ["controlplane", "controlplane", "controlplane2", "controlplane3"]
    for node, text in parts[1:]:
        assert f"--name {node}\n" in text.replace(" \\\n", "\n")


def test_exams_name_only_pack_scenarios_with_the_published_clock() -> None:
    catalog = _builtin()
    sprint, mock = catalog.get_exam("etcd-dr-sprint"), catalog.get_exam("cka-mock-etcd")
    assert isinstance(sprint, Exam) and isinstance(mock, Exam)
    assert (sprint.duration, len(sprint.task_ids)) == (30 * 60, 3)
    assert (mock.duration, mock.pass_mark) == (2 * 3600, 66)
    assert set(mock.task_ids) <= SCENARIO_IDS
    assert set(sprint.task_ids) <= SCENARIO_IDS


def test_list_json_shows_every_scenario_and_both_exams(tmp_path: Path) -> None:
    done = run_cli("list", "--json", env={"CKA_SIM_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    scenarios = {item["id"] for item in listed if item["kind"] == "scenario"}
    exams = {item["id"]: item for item in listed if item["kind"] == "exam"}
    assert SCENARIO_IDS <= scenarios
    assert set(exams) >= EXAM_IDS
    assert exams["cka-mock-etcd"]["time_limit"] == 7200 and exams["cka-mock-etcd"]["pass_mark"] == 66
    assert exams["etcd-dr-sprint"]["time_limit"] == 1800


@pytest.mark.slow
@pytest.mark.gate
@needs_namespaces
@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario_id", sorted(SCENARIO_IDS))
def test_quality_gate(scenario_id: str) -> None:
    result = gate_scenario(_builtin().get(scenario_id), driver="local")
    print(f"{scenario_id}: gate took {result.seconds:.1f}s")
    assert result.problems == [], "\n".join(result.problems)


# The kind lane: the gate again on real kind clusters, for the scenarios its time budget
# allows (each gate run makes a fresh cluster for every attempt it grades).
KIND_LANE = ["etcd-backup", "etcd-restore-deleted-namespace", "etcd-expired-certs",
             "apiserver-wrong-etcd-port"]


@pytest.mark.slow
@pytest.mark.kind
@pytest.mark.gate
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("scenario_id", KIND_LANE)
def test_quality_gate_on_real_kind(scenario_id: str) -> None:
    reason = real_kind_missing()
    if reason:
        pytest.skip(f"real kind cluster not tested: {reason}")
    result = gate_scenario(_builtin().get(scenario_id), driver="kind")
    print(f"{scenario_id}: gate on kind took {result.seconds:.1f}s")
    assert result.problems == [], "\n".join(result.problems)
