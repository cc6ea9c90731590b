"""On/off settings from the environment: one spelling everywhere, and a clear refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.envflags import env_flag
from simulator.errors import SimError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("raw", "default", "expected"), [
    (None, True, True), ("", False, False), ("  ", True, True),
    ("1", False, True), ("Yes", False, True), ("TRUE", False, True), ("on", False, True),
    ("0", True, False), ("no", True, False), ("False", True, False), (" off ", True, False),
])
def test_a_flag_reads_the_usual_spellings(monkeypatch, raw, default, expected):
    if raw is None:
        monkeypatch.delenv("CKA_SIM_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("CKA_SIM_TEST_FLAG", raw)
    assert env_flag("CKA_SIM_TEST_FLAG", default) is expected


def test_a_value_that_is_neither_is_refused_with_the_spellings(monkeypatch):
    monkeypatch.setenv("CKA_SIM_TEST_FLAG", "sometimes")
    with pytest.raises(SimError) as caught:
        env_flag("CKA_SIM_TEST_FLAG", True)
    assert "CKA_SIM_TEST_FLAG='sometimes'" in caught.value.message
    assert "1 (on) or 0 (off)" in caught.value.hint and "on by default" in caught.value.hint


@pytest.mark.parametrize("argv,name", [(["scenario", "test", "etcd-backup"], "CKA_SIM_GATE_FRESH"),
                                       ([], "CKA_SIM_STANDBY")])
def test_the_cli_says_which_setting_is_wrong_before_it_starts_anything(argv, name, tmp_path):
    env = dict(os.environ, **{name: "maybe"}, CKA_SIM_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "simulator", *argv], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"error: {name}='maybe' is neither on nor off" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "clusters").exists() or not any((tmp_path / "home" / "clusters").iterdir())
