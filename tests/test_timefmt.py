"""One clock format for the CLI, the TUI and the learner's prompt."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from simulator import timefmt
from simulator.cluster import shell


@pytest.mark.parametrize(("seconds", "text"), [
    (462, "7:42"), (462.9, "7:42"), (0.5, "0:00"), (0, "0:00"), (59.99, "0:59"),
    (600, "10:00"), (3599.9, "59:59"), (3600, "1:00:00"), (4000, "1:06:40"),
    (-0.5, "+0:00"), (-65, "+1:05"), (-65.9, "+1:05"), (-3700, "+1:01:40"),
])
def test_clock_rounds_toward_zero_and_shows_hours_only_when_needed(seconds: float, text: str) -> None:
    assert timefmt.clock(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (90, "1m30s"), (5400, "1h30m"), (480, "8m"), (0, "0s"), (-65, "-1m5s"),
])
def test_duration(seconds: float, text: str) -> None:
    assert timefmt.duration(seconds) == text


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_prompts_bash_clock_matches_the_python_one() -> None:
    values = [0, 1, 9, 59, 60, 61, 462, 599, 600, 3599, 3600, 3661, 4000, 36000,
              -1, -59, -65, -3600, -3700]
    script = shell.BASH_CLOCK + 'for v in "$@"; do __cka_sim_clock "$v"; echo "$__cka_sim_clock_text"; done'
    done = subprocess.run(["bash", "-c", script, "bash", *map(str, values)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [timefmt.clock(v) for v in values]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("left", "shown"), [(462.6, "7:42"), (-65.4, "+1:05"), (3700.2, "1:01:40")])
def test_the_prompt_reads_the_deadline_to_the_microsecond(tmp_path, left: float, shown: str) -> None:
    env_file = tmp_path / "session.env"
    env_file.write_bytes(shell.session_env("etcd-backup", time.time() + left))
    bashrc = shell.BASHRC.replace(shell.SESSION_ENV_PATH, str(env_file))
    done = subprocess.run(["bash", "--norc", "-c", 'PS1=x; eval "$1"; __cka_sim_prompt; '
                           'printf %s "$__cka_sim_prefix"', "bash", bashrc],
                          capture_output=True, text=True, check=True)
    assert done.stdout == f"[etcd-backup {shown}] "
