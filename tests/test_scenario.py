"""The scenario format: durations, located validation errors, templating, schema, skeleton."""

from __future__ import annotations

import random
import textwrap
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

from simulator import scenario as sc
from simulator.catalog import Catalog
from simulator.cluster.node import COMPONENTS
from simulator.errors import CatalogError, ScenarioError

DATA = Path(__file__).parent / "data" / "scenario_format"
PACK = DATA / "pack"

MINIMAL = """\
id: minimal
title: Minimal
domain: storage
difficulty: easy
time_limit: 5m
task: Do it.
checks:
  - name: done
    use: files.exists
    with: {path: /tmp/done}
solution: touch /tmp/done
"""


def problems_of(tmp_path: Path, text: str) -> list[sc.Problem]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return sc.validate_file(path)


def only(problems: list[sc.Problem]) -> sc.Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --------------------------------------------------------------------------- durations

@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("8m", 480), ("1h30m", 5400), ("1h", 3600), ("2m30s", 150), (90, 90), ("45", 45),
])
def test_durations_are_read_as_seconds(text, seconds):
    assert sc.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "8 m", "1.5h", "", "0s", 0, -5, True, None, "m"])
def test_bad_durations_say_what_is_expected(bad):
    with pytest.raises(ValueError, match=r"expected a duration like 90s, 8m or 1h30m"):
        sc.parse_duration(bad)


@pytest.mark.parametrize("seconds, text", [(480, "8m"), (5400, "1h30m"), (3600, "1h"), (90, "1m30s")])
def test_durations_print_compactly(seconds, text):
    assert sc.format_duration(seconds) == text
    assert sc.parse_duration(text) == seconds


def test_bad_duration_in_a_file_quotes_the_value(tmp_path):
    p = only(problems_of(tmp_path, MINIMAL.replace("time_limit: 5m", "time_limit: ten minutes")))
    assert str(p).endswith(
        ":5:13: time_limit: expected a duration like 90s, 8m or 1h30m, got 'ten minutes'")


# --------------------------------------------------------------------------- located errors

def test_wrong_type_at_line_7_names_file_line_and_field():
    path = DATA / "wrong-type-line7.yaml"
    p = only(sc.validate_file(path))
    assert (p.file, p.line, p.field_path) == (str(path), 7, "cluster.control_planes")
    assert str(p) == f"{path}:7:19: cluster.control_planes: expected a whole number, got 'three'"
    with pytest.raises(ScenarioError) as err:
        sc.load_file(path)
    assert err.value.problems == [str(p)]
    assert "wrong-type-line7.yaml" in err.value.message and err.value.hint


def test_every_problem_is_reported_in_one_pass_in_line_order(tmp_path):
    problems = problems_of(tmp_path, """\
        id: Bad_Id
        title: t
        domain: storage
        difficulty: simple
        time_limit: 5m
        task: Do it.
        checks:
          - name: done
            use: files.exists
            points: 0
        solution: touch /tmp/done
        """)
    assert [(p.line, p.field_path) for p in problems] == [
        (1, "id"), (4, "difficulty"), (10, "checks[0].points")]
    assert "expected 'easy', 'medium' or 'hard', got 'simple'" in problems[1].message
    assert "expected a number >= 1, got 0" in problems[2].message


def test_yaml_syntax_errors_are_located(tmp_path):
    p = only(problems_of(tmp_path, "id: x\ntitle: [unclosed\ndomain: storage\n"))
    assert p.line is not None and p.line >= 3 and "YAML syntax error" in p.message
    p = only(problems_of(tmp_path, "id: x\n\ttitle: tab\n"))
    assert (p.line, p.column) == (2, 1) and "'\\t'" in p.message


BROKEN_YAML = [
    "id: x\ntitle: [unclosed\ndomain: storage\n", "id: x\n\ttitle: tab\n", "a: !!python/name:os.system\n",
    "a: &x 1\nb: *y\n", "- a\n- b\n", "id: x\x07\n", "", "a: b: c\n", "base: &b {id: x}\nother:\n  <<: *b\n",
]


@pytest.mark.parametrize("text", BROKEN_YAML + [MINIMAL, (DATA / "wrong-type-line7.yaml").read_text()]
                         + [p.read_text() for p in sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))])
def test_libyaml_reads_files_exactly_as_the_pure_python_parser(tmp_path, monkeypatch, text):
    """libyaml makes loading fast; it must not change a result or a message."""
    from simulator.scenario import loading

    path = tmp_path / "s.yaml"
    path.write_text(text)

    def outcome():
        try:
            return sc.load_file(path).model_dump(), []
        except ScenarioError:
            return None, [str(p) for p in sc.validate_file(path)]

    fast = outcome()
    monkeypatch.setattr(loading, "_FAST_LOADER", None)
    assert outcome() == fast


def test_duplicate_keys_are_reported_instead_of_silently_dropped(tmp_path):
    text = MINIMAL + "checks:\n  - name: other\n    use: files.exists\n"
    p = only(problems_of(tmp_path, text))
    assert (p.line, p.column, p.field_path) == (12, 1, "checks")
    assert "duplicate key 'checks' (first at line 7)" in p.message
    nested = MINIMAL.replace("with: {path: /tmp/done}", "with: {path: /tmp/done, path: /tmp/x}")
    p = only(problems_of(tmp_path, nested))
    assert (p.line, p.field_path) == (10, "checks[0].with.path")


def test_unknown_fields_suggest_the_closest_name(tmp_path):
    problems = problems_of(tmp_path, MINIMAL.replace("title:", "titel:").replace("    with:", "    wth:"))
    by_path = {p.field_path: p for p in problems}
    assert by_path["titel"].line == 2 and "did you mean 'title'?" in by_path["titel"].message
    assert by_path["title"].message == "this field is required"
    assert by_path["checks[0].wth"].line == 10
    assert "unknown field 'wth' (did you mean 'with'?)" in by_path["checks[0].wth"].message
    p = only(problems_of(tmp_path, MINIMAL.replace("    with:", "    with_:")))
    assert p.field_path == "checks[0].with_" and "did you mean 'with'?" in p.message


def test_setup_steps_need_exactly_one_action(tmp_path):
    text = MINIMAL + textwrap.dedent("""\
        setup:
          - aply: {kind: Namespace, name: x}
          - run: echo hi
            fault: kill-etcd
          - file: {path: /etc/x, mode: 644}
        """)
    problems = problems_of(tmp_path, text)
    assert [(p.line, p.field_path) for p in problems] == [
        (13, "setup[0]"), (14, "setup[1]"), (16, "setup[2].file.mode")]
    assert "did you mean 'apply'?" in problems[0].message
    assert "fault, run" in problems[1].message
    assert "0644" in problems[2].message


def test_empty_and_non_mapping_files_are_problems(tmp_path):
    assert "empty" in only(problems_of(tmp_path, "")).message
    assert "empty" in only(problems_of(tmp_path, "# only a comment\n")).message
    assert "got a list" in only(problems_of(tmp_path, "- a\n- b\n")).message
    missing = only(sc.validate_file(tmp_path / "nope.yaml"))
    assert str(missing) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_unknown_format_version_is_explained(tmp_path):
    p = only(problems_of(tmp_path, "schema: 2\n" + MINIMAL))
    assert (p.line, p.field_path) == (1, "schema")
    assert "unsupported format version 2; this cka-sim reads version 1" in p.message


def test_cross_field_rules_point_at_the_offending_entry(tmp_path):
    text = MINIMAL.replace("solution:", textwrap.dedent("""\
          - name: done
            use: files.exists
            node: worker1
        solution:""")) + textwrap.dedent("""\
        wrong_solutions:
          - name: nothing
            script: "true"
            fails: [dnoe]
        """)
    problems = problems_of(tmp_path, text)
    assert [(p.line, p.field_path) for p in problems] == [
        (11, "checks[1].name"), (13, "checks[1].node"), (18, "wrong_solutions[0].fails[0]")]
    assert "already used by checks[0]" in problems[0].message
    assert "nodes: controlplane" in problems[1].message
    assert "did you mean 'done'?" in problems[2].message


def test_cluster_requirements(tmp_path):
    p = only(problems_of(tmp_path, MINIMAL + "cluster: {components: [kube-apiserver]}\n"))
    assert p.field_path == "cluster.components" and "must include etcd" in p.message
    p = only(problems_of(tmp_path, MINIMAL + "cluster: {components: [etcd, kube-scheduler]}\n"))
    assert "need kube-apiserver" in p.message
    p = only(problems_of(tmp_path, MINIMAL + "cluster: {components: [etcd]}\n"
                         "setup:\n  - apply: {kind: Namespace}\n"))
    assert p.field_path == "setup[0].apply" and "needs kube-apiserver" in p.message
    # by default a scenario gets what kubeadm init runs
    assert sc.ClusterReq().to_spec("c1").components == (
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

    req = sc.ClusterReq(control_planes=2, workers=1, components=["kube-apiserver", "etcd"])
    spec = req.to_spec("c1")
    assert spec.components == ("etcd", "kube-apiserver")
    assert [n.name for n in spec.node_specs()] == ["controlplane", "controlplane2", "node01"]
    assert set(typing.get_args(sc.Component)) == set(COMPONENTS)
    assert spec.etcd == "static-pod"


def test_cluster_etcd_as_a_systemd_service(tmp_path):
    req = sc.ClusterReq(components=["etcd", "kube-apiserver"], etcd="systemd")
    assert req.to_spec("c1").etcd == "systemd"
    p = only(problems_of(tmp_path, MINIMAL + "cluster: {control_planes: 2, etcd: systemd}\n"))
    assert p.field_path == "cluster" and "set control_planes: 1" in p.message
    p = only(problems_of(tmp_path, MINIMAL + "cluster: {etcd: external}\n"))
    assert p.field_path == "cluster.etcd" and "static-pod" in p.message


# --------------------------------------------------------------------------- templating

def test_undefined_template_var_is_a_located_error(tmp_path):
    text = MINIMAL.replace("task: Do it.", "vars:\n  ns: {choice: [a, b]}\ntask: Restore {{ nz }}.")
    p = only(problems_of(tmp_path, text))
    assert (p.line, p.field_path) == (8, "task")
    assert "{{ nz }} is not defined in vars (did you mean 'ns'?)" in p.message


def test_templates_hold_names_only(tmp_path):
    text = MINIMAL.replace("task: Do it.", "vars:\n  ns: {value: a}\ntask: Restore {{ ns | upper }}.")
    assert "no filters" in only(problems_of(tmp_path, text)).message
    text = MINIMAL.replace("title: Minimal", "title: Minimal {{ ns }}").replace(
        "task: Do it.", "vars:\n  ns: {value: a}\ntask: Do {{ ns }}.")
    p = only(problems_of(tmp_path, text))
    assert p.field_path == "title" and "not substituted in this field" in p.message


def test_values_inserted_into_scripts_must_be_plain_words(tmp_path):
    text = MINIMAL.replace("task: Do it.", "vars:\n  ns: {choice: [ok, 'a; rm -rf /']}\ntask: Do it.") \
                  .replace("touch /tmp/done", "touch /tmp/{{ ns }}")
    p = only(problems_of(tmp_path, text))
    assert p.field_path == "vars.ns" and "'a; rm -rf /' is not" in p.message


def test_vars_are_drawn_deterministically_from_the_seed():
    scenario = sc.load_file(PACK / "restore-namespace.yaml")
    assert sc.draw_vars(scenario, 7) == sc.draw_vars(scenario, 7)
    draws = [sc.draw_vars(scenario, seed) for seed in range(40)]
    assert {d["ns"] for d in draws} == {"billing", "payments", "inventory"}
    assert {d["replicas"] for d in draws} == {2, 3, 4, 5}
    rng = random.Random(11)
    expected_ns = rng.choice(["billing", "payments", "inventory"])  # "ns" sorts before "replicas"
    assert sc.draw_vars(scenario, 11) == {"ns": expected_ns, "replicas": rng.randint(2, 5)}


def test_values_are_substituted_everywhere_a_learner_or_checker_sees_them():
    scenario = sc.load_file(PACK / "restore-namespace.yaml")
    rendered, values = scenario.instantiate(3)
    ns, replicas = values["ns"], values["replicas"]
    assert rendered.source == scenario.source
    assert "{{" not in rendered.model_dump_json()
    assert f"namespace `{ns}`" in rendered.task and f"scale it to {replicas} replicas" in rendered.task
    assert rendered.hints == [f"Restore into a new data directory, e.g. /var/lib/etcd-restore-{ns}."]
    assert rendered.setup[0].apply["metadata"]["name"] == ns
    assert rendered.setup[3].with_ == {"name": ns}
    check = rendered.checks[0]
    assert check.name == f"Namespace {ns} is back"
    assert check.with_ == {"kind": "Namespace", "name": ns, "replicas": replicas}
    assert isinstance(check.with_["replicas"], int)
    assert rendered.explanation.endswith(f"deletion of {ns}.")
    assert f"--data-dir /var/lib/etcd-restore-{ns}" in rendered.solution
    assert rendered.wrong_solutions[0].fails == [check.name]
    assert scenario.checks[0].name == "Namespace {{ ns }} is back"


def test_render_leaves_go_templates_alone_and_rejects_unknown_names():
    text = "kubectl get ns -o go-template='{{range .items}}{{.metadata.name}} {{end}}' {{ ns }}"
    assert sc.render(text, {"ns": "x"}) == \
        "kubectl get ns -o go-template='{{range .items}}{{.metadata.name}} {{end}}' x"
    assert sc.render({"a": ["{{n}}", "n={{ n }}"]}, {"n": 3}) == {"a": [3, "n=3"]}
    with pytest.raises(ScenarioError, match=r"\{\{ ns \}\}"):
        sc.render("{{ ns }}", {})


# --------------------------------------------------------------------------- paths drawn per attempt

BUILTIN = Path(__file__).parent.parent / "scenarios"
DEFAULT_PATHS = {"snapshot": "/opt/backup/etcd-snapshot.db", "restore_dir": "/var/lib/etcd-from-backup"}


def test_two_seeds_give_a_backup_task_other_paths_and_one_seed_the_same_ones():
    backup = sc.load_file(BUILTIN / "etcd-backup.yaml")
    first, values = backup.instantiate(0)
    other, other_values = backup.instantiate(1)
    assert backup.instantiate(0) == (first, values)
    path = f"{values['backup_dir']}/{values['snapshot_name']}"
    other_path = f"{other_values['backup_dir']}/{other_values['snapshot_name']}"
    assert path != other_path and values["certs"] != other_values["certs"]
    for rendered, want, not_want, certs in ((first, path, other_path, values["certs"]),
                                            (other, other_path, path, other_values["certs"])):
        assert f"save it to\n`{want}`" in rendered.task and not_want not in rendered.task
        assert f"CA certificate: `{certs}/ca.crt`" in rendered.task
        assert [c.with_["path"] for c in rendered.checks if "path" in c.with_] == [want] * 3
        assert rendered.checks[0].name == f"{want} is a valid etcd snapshot"
        assert f"--key={certs}/etcd-client.key" in rendered.solution
        assert rendered.solution.rstrip().endswith(f"snapshot save {want}")
        assert rendered.setup[0].with_["to"] == f"{certs}/ca.crt"
        assert all(want in w.script for w in rendered.wrong_solutions)


def test_two_seeds_give_a_restore_task_another_snapshot_and_data_directory():
    restore = sc.load_file(BUILTIN / "etcd-restore-deleted-namespace.yaml")
    (first, a), (other, b) = restore.instantiate(3), restore.instantiate(4)
    assert restore.instantiate(4)[1] == b
    assert a["snapshot"] != b["snapshot"] and a["restore_dir"] != b["restore_dir"]
    for rendered, values in ((first, a), (other, b)):
        check = rendered.checks[0]
        assert check.with_ == {"expected": values["restore_dir"], "snapshot": values["snapshot"]}
        assert check.name == f"etcd serves its data from {values['restore_dir']}"
        assert f"etcdutl snapshot restore {values['snapshot']} --data-dir {values['restore_dir']}" in rendered.solution
        assert next(s for s in rendered.setup if isinstance(s, sc.SnapshotStep)).snapshot.path == values["snapshot"]


@pytest.mark.parametrize("path", sorted(BUILTIN.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_drawn_path_replaces_the_default_one_everywhere(path):
    scenario = sc.load_file(path)
    for var, default in DEFAULT_PATHS.items():
        if var not in scenario.vars:
            continue
        seed = next(s for s in range(50) if sc.draw_vars(scenario, s)[var] != default)
        rendered, _ = scenario.instantiate(seed)
        assert default not in rendered.model_dump_json(exclude={"vars"}), f"{var} is written out somewhere"


def test_a_node_address_is_substituted_once_the_cluster_gives_it():
    restore = sc.load_file(BUILTIN / "etcd-restore.yaml")
    assert restore.cluster_vars == {"cp_ip": "controlplane"}
    rendered, values = restore.instantiate(5)
    assert "cp_ip" not in values and "https://{{ cp_ip }}:2379" in rendered.task
    values["cp_ip"] = "10.11.12.13"
    rendered.bind(values)
    assert "https://10.11.12.13:2379" in rendered.task and "{{" not in rendered.model_dump_json(exclude={"vars"})
    assert "--endpoints=https://10.11.12.13:2379" in rendered.solution
    assert restore.instantiate(5, known=values) == (rendered, values)
    # a var read from the cluster takes nothing from the draw: the other values stay put
    without = restore.model_copy(update={"vars": {k: v for k, v in restore.vars.items() if k != "cp_ip"}})
    assert sc.draw_vars(without, 5) == restore.instantiate(5)[1]


def test_node_ip_names_a_node_of_the_cluster(tmp_path):
    text = MINIMAL.replace("task: Do it.", "vars:\n  ip: {node_ip: node02}\ntask: Reach {{ ip }}.")
    p = only(problems_of(tmp_path, text))
    assert (p.line, p.field_path) == (7, "vars.ip.node_ip")
    assert "no node 'node02' in this cluster; nodes: controlplane, node01" in p.message
    alone = text.replace("task: Reach", "cluster: {workers: 0}\ntask: Reach").replace("node02", "node01")
    p = only(problems_of(tmp_path, alone))
    assert "no node 'node01' in this cluster; nodes: controlplane" in p.message
    text = MINIMAL.replace("task: Do it.", "vars:\n  ip: {node_ip: controlplane, value: x}\ntask: Do it.")
    p = only(problems_of(tmp_path, text))
    assert p.field_path == "vars.ip" and "exactly one of choice, range, value or node_ip, got value, node_ip" in p.message


def test_the_jump_host_is_a_node_only_where_the_cluster_asks_for_it(tmp_path):
    """`# on node NAME` in a solution and `node:` of a check name nodes of the cluster; the
    jump host `student` exists with `jump_host: true`, which the error says."""
    text = MINIMAL.replace("solution: touch /tmp/done", "solution: |\n  # on node student\n  touch /tmp/done")
    p = only(problems_of(tmp_path, text))
    assert (p.line, p.field_path) == (11, "solution")
    assert "`# on node student`: no node 'student' in this cluster: the jump host needs " \
           "`jump_host: true` under cluster" in p.message
    p = only(problems_of(tmp_path, text.replace("# on node student", "# on node node1")))
    assert "no node 'node1' in this cluster; nodes: controlplane, node01" in p.message
    jump = text.replace("task: Do it.", "cluster: {jump_host: true}\ntask: Do it.")
    assert problems_of(tmp_path, jump) == []
    student = jump.replace("    use: files.exists", "    node: student\n    use: files.exists")
    assert problems_of(tmp_path, student) == []
    found = problems_of(tmp_path, student.replace("cluster: {jump_host: true}\n", ""))
    assert [p.field_path for p in found] == ["checks[0].node", "solution"]
    assert all("`jump_host: true`" in p.message for p in found)
    p = only(problems_of(tmp_path, jump.replace("jump_host: true", "jump_host: maybe")))
    assert p.field_path == "cluster.jump_host"
    loaded = sc.loads(textwrap.dedent(jump), "s.yaml")
    spec = loaded.cluster.to_spec("c1")
    assert spec.jump_host and [(n.name, n.role) for n in spec.node_specs()] == [
        ("controlplane", "control-plane"), ("node01", "worker"), ("student", "jump-host")]


def test_values_reach_scripts_cka_sim_runs_through_env_only(tmp_path):
    text = MINIMAL.replace("task: Do it.", "vars:\n  dir: {value: /opt/x}\ntask: Do it.").replace(
        "    use: files.exists\n    with: {path: /tmp/done}",
        "    use: script\n    with:\n      run: test -d {{ dir }}")
    p = only(problems_of(tmp_path, text))
    assert (p.line, p.field_path) == (13, "checks[0].with.run")
    assert 'pass the value in `env:` (e.g. env: {DIR: "{{ dir }}"}) and use "$DIR"' in p.message
    text = MINIMAL.replace("task: Do it.", "vars:\n  dir: {value: /opt/x}\nsetup:\n  - run: mkdir -p {{ dir }}\ntask: Do it.")
    assert only(problems_of(tmp_path, text)).field_path == "setup[0].run"
    ok = text.replace("- run: mkdir -p {{ dir }}", "- run: mkdir -p \"$DIR\"\n    env: {DIR: \"{{ dir }}\"}")
    assert problems_of(tmp_path, ok) == []


def test_a_path_may_start_with_a_var_whose_values_are_absolute(tmp_path):
    setup = 'setup:\n  - snapshot: {path: "{{ dir }}/etcd.db"}\ntask: Do it.'
    ok = MINIMAL.replace("task: Do it.", "vars:\n  dir: {choice: [/opt/a, /srv/b]}\n" + setup)
    assert problems_of(tmp_path, ok) == []
    p = only(problems_of(tmp_path, ok.replace("/srv/b", "srv/b")))
    assert p.field_path == "setup[0].snapshot.path" and "'srv/b' is not" in p.message
    p = only(problems_of(tmp_path, ok.replace('"{{ dir }}/etcd.db"', "etcd.db")))
    assert "expected an absolute path like /opt/backup/etcd.db" in p.message


# --------------------------------------------------------------------------- schema and skeleton

def test_skeleton_validates_and_is_a_complete_example(tmp_path):
    path = tmp_path / "etcd-backup.yaml"
    path.write_text(sc.skeleton("etcd-backup"))
    assert sc.validate_file(path) == []
    scenario = sc.load_file(path)
    assert scenario.id == "etcd-backup" and scenario.time_limit == 480
    assert len(scenario.vars) == 1 and scenario.setup and len(scenario.checks) == 2
    assert scenario.hints and scenario.solution and scenario.wrong_solutions
    assert "#" in path.read_text()
    with pytest.raises(ScenarioError):
        sc.skeleton("Not A Slug")


def test_json_schema_is_valid_and_agrees_with_the_loader(tmp_path):
    schema = sc.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    skeleton = yaml.safe_load(sc.skeleton("etcd-backup"))
    assert list(validator.iter_errors(skeleton)) == []
    for name in ("restore-namespace.yaml", "nested/check-etcd-health.yml"):
        assert list(validator.iter_errors(yaml.safe_load((PACK / name).read_text()))) == []
    assert not validator.is_valid({**skeleton, "titel": "typo"})
    assert not validator.is_valid({**skeleton, "difficulty": "simple"})
    assert not validator.is_valid({**skeleton, "time_limit": "ten minutes"})
    assert "source" not in schema["properties"]

    exam = sc.exam_json_schema()
    jsonschema.Draft202012Validator.check_schema(exam)
    assert jsonschema.Draft202012Validator(exam).is_valid(yaml.safe_load((PACK / "mock-exam.yaml").read_text()))


def test_every_schema_field_has_a_description():
    for schema in (sc.json_schema(), sc.exam_json_schema()):
        models = [schema, *schema.get("$defs", {}).values()]
        for model in models:
            for name, prop in model.get("properties", {}).items():
                assert prop.get("description"), f"{model.get('title')}.{name} has no description"


# --------------------------------------------------------------------------- exams

def test_exam_needs_tasks_or_sample(tmp_path):
    base = "kind: exam\nid: mock\ntitle: Mock\nduration: 2h\n"
    assert sc.loads(base + "tasks: [a]\n").pass_mark == 66
    assert "exactly one of tasks" in only(problems_of(tmp_path, base)).message
    assert "exactly one of tasks" in only(problems_of(tmp_path, base + "tasks: [a]\nsample: {count: 1}\n")).message
    p = only(problems_of(tmp_path, base + "tasks: [a, b, a]\n"))
    assert (p.line, p.field_path) == (5, "tasks[2]")
    p = only(problems_of(tmp_path, base + "tasks: [a]\npass_mark: 120\n"))
    assert p.field_path == "pass_mark"


def test_exam_resolves_named_tasks_and_samples_across_domains(tmp_path):
    catalog = Catalog.load([PACK], builtin=False)
    exam = catalog.get_exam("mock-exam")
    assert exam.duration == 1200
    assert [s.id for s in exam.resolve(catalog, random.Random(1))] == ["restore-namespace", "check-etcd-health"]

    sample = sc.loads("kind: exam\nid: sampled\ntitle: S\nduration: 1h\n"
                      "sample: {count: 2, domains: [troubleshooting, cluster-architecture]}\n")
    picked = sample.resolve(catalog, random.Random(5))
    assert {s.domain for s in picked} == {"troubleshooting", "cluster-architecture"}
    too_many = sc.loads("kind: exam\nid: sampled\ntitle: S\nduration: 1h\nsample: {count: 3, domains: [storage]}\n")
    with pytest.raises(CatalogError, match="only 0"):
        too_many.resolve(catalog, random.Random(5))
