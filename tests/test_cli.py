"""The CLI as a user meets it: real clusters, real shells, clean errors, JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pexpect
import pytest
from conftest import REPO, bare_etcd, needs_namespaces, run_cli

LINE7 = REPO / "tests/data/scenario_format/wrong-type-line7.yaml"


def test_validate_names_file_line_and_field_without_traceback() -> None:
    done = run_cli("scenario", "validate", str(LINE7))
    assert done.returncode == 1
    assert f"{LINE7}:7:" in done.stderr
    assert "cluster.control_planes" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_validate_reports_unknown_checker_names(tmp_path: Path) -> None:
    skeleton = run_cli("scenario", "new", "typo-checker", "-o", "-").stdout
    path = tmp_path / "typo.yaml"
    path.write_text(skeleton.replace("use: snapshot.valid", "use: snapshot.vaild"))
    done = run_cli("scenario", "validate", str(path))
    assert done.returncode == 1
    assert "unknown checker 'snapshot.vaild'" in done.stderr
    assert "snapshot.valid" in done.stderr  # the did-you-mean hint


def test_new_writes_a_file_that_validates_and_refuses_to_overwrite(tmp_path: Path) -> None:
    done = run_cli("scenario", "new", "my-task", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert run_cli("scenario", "validate", str(tmp_path / "my-task.yaml")).returncode == 0
    again = run_cli("scenario", "new", "my-task", cwd=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "hint:" in again.stderr


def test_schema_is_json_with_the_scenario_fields() -> None:
    schema = json.loads(run_cli("scenario", "schema").stdout)
    assert {"id", "title", "checks", "setup", "time_limit"} <= set(schema["properties"])


@pytest.mark.parametrize("args, message", [
    (("check",), "no session is active"),
    (("submit",), "no session is active"),
    (("shell", "-c", "true"), "no session is active"),
    (("start", "no-such-task"), "no-such-task"),
])
def test_user_errors_print_message_and_hint_only(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    done = run_cli(*args, env={"CKA_SIM_HOME": str(tmp_path)})
    assert done.returncode != 0
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "hint: " in done.stderr
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = run_cli("--debug", "check", env={"CKA_SIM_HOME": str(tmp_path)})
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "SessionError" in done.stderr


def test_status_json_is_null_without_a_session(tmp_path: Path) -> None:
    done = run_cli("status", "--json", env={"CKA_SIM_HOME": str(tmp_path)})
    assert done.returncode == 0 and json.loads(done.stdout) is None


def test_non_editable_install_ships_the_scenarios(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The runtime dependencies come from this interpreter's site-packages (no download);
    # a plain path in a .pth file runs none of that directory's own .pth hooks, so the
    # checkout's editable install stays out and the wheel below is what gets imported.
    site = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--no-build-isolation", str(REPO)],
                         capture_output=True, text=True, cwd=tmp_path)
    if pip.returncode != 0 and "hatchling" in pip.stderr:
        pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", str(REPO)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "CKA_SIM_HOME": str(tmp_path / "home")}
    where = subprocess.run([str(venv / "bin/python"), "-c", "import simulator; print(simulator.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert str(venv) in where.stdout, "the test must exercise the installed wheel, not the checkout"
    listed = subprocess.run([str(venv / "bin/cka-sim"), "list", "--json"], capture_output=True,
                            text=True, cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    builtin = sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml"))
    ids = {row["id"] for row in json.loads(listed.stdout)}
    assert set(builtin) <= ids
    bad = subprocess.run([str(venv / "bin/cka-sim"), "scenario", "validate", str(LINE7)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert bad.returncode == 1 and ":7:" in bad.stderr and "control_planes" in bad.stderr


# -- a whole attempt on the embedded driver ---------------------------------------------------

SOLVE = ("ETCDCTL_API=3 etcdctl snapshot save /opt/backup/{name}.db --endpoints=https://127.0.0.1:2379 "
         "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt "
         "--key=/etc/kubernetes/pki/etcd/server.key")


def start(env: dict[str, str], *args: str) -> None:
    done = run_cli("start", *args, env=env)
    assert done.returncode == 0, done.stderr


@pytest.fixture()
def pack(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A scenario pack holding the skeleton task, and an isolated user home."""
    scenarios = tmp_path / "pack"
    scenarios.mkdir()
    text = bare_etcd(run_cli("scenario", "new", "demo-backup", "-o", "-").stdout)
    (scenarios / "demo-backup.yaml").write_text(text)
    env = {"CKA_SIM_HOME": str(tmp_path / "home"), "CKA_SIM_SCENARIOS": str(scenarios)}
    yield scenarios, env
    run_cli("stop", env=env)


@needs_namespaces
def test_a_whole_attempt_from_start_to_history(pack: tuple[Path, dict[str, str]]) -> None:
    _, env = pack
    started = run_cli("start", "demo-backup", "--seed", "5", env=env)
    assert started.returncode == 0, started.stderr
    assert "Back up etcd" in started.stdout

    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["status"] == "running" and status["seed"] == 5
    name = status["vars"]["backup"]
    assert 0 < status["remaining"] <= status["time_limit"]

    again = run_cli("start", "demo-backup", env=env)
    assert again.returncode == 1 and "already active" in again.stderr and "hint:" in again.stderr

    before = json.loads(run_cli("check", "--json", env=env).stdout)
    assert before["final"] is False
    assert [c["passed"] for c in before["checks"]] == [False, True]  # the guard passes
    assert "no file at" in before["checks"][0]["detail"]

    hostname = run_cli("shell", "-c", "hostname; exit 3", env=env)
    assert hostname.stdout.strip() == "controlplane" and hostname.returncode == 3

    solved = run_cli("shell", "-c", SOLVE.format(name=name), env=env)
    assert solved.returncode == 0, solved.stderr

    report = json.loads(run_cli("submit", "--json", env=env).stdout)
    assert report["final"] is True and report["score"] == report["max_score"] == 3
    assert run_cli("check", env=env).returncode == 1  # submitted: no more checking

    [attempt] = json.loads(run_cli("history", "--json", env=env).stdout)
    assert attempt["id"] == report["attempt_id"]
    assert (attempt["scenario"], attempt["seed"], attempt["score"]) == ("demo-backup", 5, 3)
    assert attempt["vars"] == {"backup": name}
    assert [c["passed"] for c in attempt["checks"]] == [True, True]

    listed = {r["id"]: r for r in json.loads(run_cli("list", "--json", env=env).stdout)}
    assert listed["demo-backup"]["best_score"]["percent"] == 100.0
    assert listed["demo-backup"]["attempts"] == 1

    cluster = status["cluster"]
    assert run_cli("stop", env=env).stdout.strip() == "stopped"
    assert json.loads(run_cli("status", "--json", env=env).stdout) is None
    assert not (Path(env["CKA_SIM_HOME"]) / "clusters" / cluster).exists()


@needs_namespaces
def test_exam_mode_hides_check_and_hints(pack: tuple[Path, dict[str, str]]) -> None:
    _, env = pack
    start(env, "demo-backup", "--mode", "exam")
    for command in ("check", "hint"):
        done = run_cli(command, env=env)
        assert done.returncode == 1 and "exam mode" in done.stderr
    report = json.loads(run_cli("submit", "--json", env=env).stdout)
    assert report["score"] == 0  # a guard that holds earns nothing


@needs_namespaces
def test_interactive_shell_prompt_shows_task_and_time_left(pack: tuple[Path, dict[str, str]]) -> None:
    _, env = pack
    start(env, "demo-backup")
    child = pexpect.spawn(sys.executable, ["-m", "simulator", "shell"], env={**os.environ, **env},
                          encoding="utf-8", timeout=20, dimensions=(24, 100))
    try:
        child.expect(r"\[demo-backup (\d+):(\d\d)\] root@controlplane:~# ")
        minutes, seconds = int(child.match.group(1)), int(child.match.group(2))
        assert 7 * 60 <= minutes * 60 + seconds <= 8 * 60
        child.sendline("touch /root/was-here && tty")
        child.expect(r"/dev/pts/\d+")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert run_cli("shell", "-c", "test -f /root/was-here", env=env).returncode == 0


@needs_namespaces
def test_quality_gate_passes_the_skeleton_and_catches_a_broken_solution(
        pack: tuple[Path, dict[str, str]]) -> None:
    scenarios, env = pack
    done = run_cli("scenario", "test", "demo-backup", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads(done.stdout)
    assert result["passed"] and result["problems"] == []

    path = scenarios / "demo-backup.yaml"
    path.write_text(path.read_text().replace("snapshot save /opt/backup", "snapshot save /tmp"))
    broken = run_cli("scenario", "test", "demo-backup", "--json", env=env)
    assert broken.returncode == 1
    [result] = json.loads(broken.stdout)
    assert any("solution misses" in p for p in result["problems"])


@needs_namespaces
def test_exam_mode_deadline_locks_the_node_and_caps_time_used(pack: tuple[Path, dict[str, str]]) -> None:
    _, env = pack
    start(env, "demo-backup", "--mode", "exam")
    session_path = Path(env["CKA_SIM_HOME"]) / "session.json"
    data = json.loads(session_path.read_text())
    data["started_at"] -= 600
    data["deadline"] = time.time() - 120  # the clock ran out two minutes ago
    session_path.write_text(json.dumps(data))

    late = run_cli("shell", "-c", "true", env=env)
    assert late.returncode == 1 and "time is up" in late.stderr and "hint:" in late.stderr
    report = json.loads(run_cli("submit", "--json", env=env).stdout)
    assert report["final"] and report["time_used"] == pytest.approx(report["time_limit"], abs=1)
    [attempt] = json.loads(run_cli("history", "--json", env=env).stdout)
    assert attempt["mode"] == "exam" and attempt["overtime"] >= 119


@needs_namespaces
def test_practice_overtime_is_recorded(pack: tuple[Path, dict[str, str]]) -> None:
    _, env = pack
    start(env, "demo-backup")
    session_path = Path(env["CKA_SIM_HOME"]) / "session.json"
    data = json.loads(session_path.read_text())
    data["started_at"] -= data["time_limit"] + 60
    data["deadline"] -= data["time_limit"] + 60
    session_path.write_text(json.dumps(data))
    status = run_cli("status", env=env).stdout
    assert "overtime: +1:0" in status
    assert run_cli("shell", "-c", "true", env=env).returncode == 0  # practice: keep working
    report = json.loads(run_cli("submit", "--json", env=env).stdout)
    assert report["overtime"] >= 59
