"""The catalog: built-in pack, user directories, duplicates, broken files, lookups."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from simulator import paths
from simulator.catalog import ENV_VAR, Catalog, builtin_dir
from simulator.errors import CatalogError, ScenarioError

PACK = Path(__file__).parent / "data" / "scenario_format" / "pack"
BROKEN = Path(__file__).parent / "data" / "scenario_format" / "wrong-type-line7.yaml"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CKA_SIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_loads_scenarios_and_exams_recursively(tmp_path):
    catalog = Catalog.load([PACK], builtin=False)
    assert sorted(catalog.scenarios) == ["check-etcd-health", "restore-namespace"]
    assert list(catalog.exams) == ["mock-exam"]
    assert catalog.get("check-etcd-health").source == PACK / "nested" / "check-etcd-health.yml"
    assert catalog.problems == []
    assert [s.id for s in catalog.by_domain("troubleshooting")] == ["restore-namespace"]


def test_duplicate_ids_name_both_files(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    shutil.copy(PACK / "restore-namespace.yaml", other / "my-copy.yaml")
    with pytest.raises(CatalogError) as err:
        Catalog.load([PACK, other], builtin=False)
    assert str(PACK / "restore-namespace.yaml") in err.value.message
    assert str(other / "my-copy.yaml") in err.value.message
    assert "restore-namespace" in err.value.message and err.value.hint


def test_the_same_directory_given_twice_is_not_a_duplicate(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(PACK))
    assert len(Catalog.load([PACK], builtin=False).scenarios) == 2


def test_user_directories_from_the_environment_and_the_data_dir(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    shutil.copy(PACK / "restore-namespace.yaml", first / "one.yaml")
    shutil.copy(PACK / "nested" / "check-etcd-health.yml", second / "two.yml")
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(first), str(second)]))
    assert sorted(Catalog.load(builtin=False).scenarios) == ["check-etcd-health", "restore-namespace"]

    monkeypatch.delenv(ENV_VAR)
    assert Catalog.load(builtin=False).scenarios == {}
    paths.user_scenarios_dir().mkdir(parents=True)
    shutil.copy(PACK / "restore-namespace.yaml", paths.user_scenarios_dir() / "mine.yaml")
    catalog = Catalog.load(builtin=False)
    assert list(catalog.scenarios) == ["restore-namespace"]
    assert catalog.dirs == [paths.user_scenarios_dir()]


def test_missing_explicit_directories_are_errors(tmp_path, monkeypatch):
    with pytest.raises(CatalogError, match="--scenarios"):
        Catalog.load([tmp_path / "nope"], builtin=False)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(CatalogError, match=ENV_VAR):
        Catalog.load(builtin=False)


def test_a_broken_file_does_not_hide_the_rest(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(BROKEN, mine / "broken.yaml")
    (mine / ".hidden").mkdir()
    (mine / ".hidden" / "ignored.yaml").write_text("not: [valid")
    (mine / "notes.txt").write_text("not a scenario")
    catalog = Catalog.load([PACK, mine], builtin=False)
    assert len(catalog.scenarios) == 2
    assert [str(p) for p in catalog.problems] == [
        f"{mine / 'broken.yaml'}:7:19: cluster.control_planes: expected a whole number, got 'three'"]
    with pytest.raises(ScenarioError) as err:
        Catalog.load([PACK, mine], builtin=False, strict=True)
    assert err.value.problems == [str(catalog.problems[0])]


def test_unknown_ids_get_a_did_you_mean_hint():
    catalog = Catalog.load([PACK], builtin=False)
    with pytest.raises(CatalogError) as err:
        catalog.get("restore-namespaces")
    assert "restore-namespaces" in err.value.message
    assert err.value.hint == "did you mean restore-namespace?"
    with pytest.raises(CatalogError, match="no exam"):
        catalog.get_exam("mock")


def test_exam_naming_an_unknown_scenario_is_a_located_problem(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "exam.yaml").write_text(
        "kind: exam\nid: bad-exam\ntitle: Bad\nduration: 1h\ntasks:\n  - restore-namespace\n  - restore-namespcae\n")
    catalog = Catalog.load([PACK, mine], builtin=False)
    assert "bad-exam" not in catalog.exams and "mock-exam" in catalog.exams
    assert [str(p) for p in catalog.problems] == [
        (f"{mine / 'exam.yaml'}:7:5: tasks[1]: no scenario has the id 'restore-namespcae' "
         "(did you mean 'restore-namespace'?)")]


def test_builtin_pack_is_found_and_every_file_in_it_is_valid():
    shipped = builtin_dir()
    assert shipped is not None and shipped.is_dir()
    catalog = Catalog.load(strict=True)
    assert catalog.dirs[0] == shipped


def test_exam_sampling_more_scenarios_than_exist_is_a_problem(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "exam.yaml").write_text(
        "kind: exam\nid: big-exam\ntitle: Big\nduration: 2h\nsample:\n  count: 3\n  domains: [troubleshooting]\n")
    catalog = Catalog.load([PACK, mine], builtin=False)
    assert "big-exam" not in catalog.exams
    assert [str(p) for p in catalog.problems] == [
        f"{mine / 'exam.yaml'}:6:10: sample.count: samples 3 scenarios but only 1 are available in troubleshooting"]


# -- the difficulty path ------------------------------------------------------------------------

def _task(directory: Path, sc_id: str, difficulty: str, prerequisites: str = "[]") -> Path:
    text = (PACK / "restore-namespace.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("id:", "difficulty:"))]
    path = directory / f"{sc_id}.yaml"
    path.write_text(f"id: {sc_id}\ndifficulty: {difficulty}\nprerequisites: {prerequisites}\n"
                    + "\n".join(lines) + "\n")
    return path


def test_the_path_goes_easy_to_hard_each_task_after_its_prerequisites(tmp_path):
    for sc_id, level, before in [("c-hard", "hard", "[]"), ("a-easy", "easy", "[]"),
                                 ("b-medium", "medium", "[a-easy]"),
                                 ("d-easy-after-hard", "easy", "[c-hard]")]:
        _task(tmp_path, sc_id, level, before)
    catalog = Catalog.load([tmp_path], builtin=False, strict=True)
    assert [s.id for s in catalog.path()] == ["a-easy", "b-medium", "c-hard", "d-easy-after-hard"]


def test_an_unknown_or_circular_prerequisite_is_a_located_problem(tmp_path):
    from conftest import run_cli

    typo = _task(tmp_path, "typo", "easy", "[restore-namespcae]")
    loop_a = _task(tmp_path, "loop-a", "easy", "[loop-b]")
    _task(tmp_path, "loop-b", "easy", "[restore-namespace, loop-a]")
    _task(tmp_path, "fine", "easy", "[restore-namespace]")
    catalog = Catalog.load([tmp_path, PACK], builtin=False)
    assert sorted(catalog.scenarios) == ["check-etcd-health", "fine", "restore-namespace"]
    problems = sorted(str(p) for p in catalog.problems)
    assert problems == [
        f"{loop_a}:3:17: prerequisites[0]: prerequisites go round in a circle: loop-a -> loop-b -> loop-a",
        f"{typo}:3:17: prerequisites[0]: no scenario has the id 'restore-namespcae' "
        "(did you mean 'restore-namespace'?)",
    ]
    with pytest.raises(ScenarioError):
        Catalog.load([tmp_path, PACK], builtin=False, strict=True)

    done = run_cli("--scenarios", str(PACK), "scenario", "validate", str(typo))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{typo}:3:17: prerequisites[0]: no scenario has the id 'restore-namespcae'" in done.stderr
    self_named = _task(tmp_path, "selfish", "easy", "[selfish]")
    done = run_cli("scenario", "validate", str(self_named))
    assert "prerequisites[0]: a scenario cannot be its own prerequisite" in done.stderr


def test_list_shows_the_path_and_each_tasks_prerequisites(tmp_path):
    import json

    from conftest import run_cli

    _task(tmp_path, "b-next", "medium", "[a-first]")
    _task(tmp_path, "a-first", "easy")
    env = {"CKA_SIM_HOME": str(tmp_path / "home")}
    rows = json.loads(run_cli("--scenarios", str(tmp_path), "list", "--json", env=env).stdout)
    mine = [(r["step"], r["id"], r["prerequisites"]) for r in rows if r["id"] in ("a-first", "b-next")]
    assert mine[1][1:] == ("b-next", ["a-first"]) and mine[0][0] < mine[1][0]
    steps = [r["step"] for r in rows if r["kind"] == "scenario"]
    assert steps == list(range(1, len(steps) + 1))
    text = run_cli("--scenarios", str(tmp_path), "list", env=env).stdout.splitlines()
    at = next(i for i, line in enumerate(text) if " b-next " in line)
    assert text[at].split()[0] == str(mine[1][0])
    assert text[at + 1].split() == ["after:", "a-first"]


def test_the_builtin_path_starts_easy_and_every_prerequisite_comes_first():
    catalog = Catalog.load(strict=True)
    path = catalog.path()
    assert path[0].difficulty == "easy" and path[-1].difficulty == "hard"
    placed = {s.id: i for i, s in enumerate(path)}
    for sc in path:
        assert all(placed[p] < placed[sc.id] for p in sc.prerequisites), sc.id
    assert any(sc.prerequisites for sc in path)
