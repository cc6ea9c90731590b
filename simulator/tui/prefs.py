"""Small remembered choices of the TUI (driver, mode), kept as JSON in the data dir."""

from __future__ import annotations

import dataclasses
import json
import os

from simulator import paths

FILE_NAME = "tui.json"


@dataclasses.dataclass
class Prefs:
    """What the learner picked last time."""

    driver: str = "local"
    mode: str = "practice"

    @classmethod
    def load(cls) -> Prefs:
        """The saved prefs; defaults when the file is missing or unreadable."""
        try:
            data = json.loads((paths.data_dir() / FILE_NAME).read_text())
        except (OSError, ValueError):
            return cls()
        prefs = cls()
        if isinstance(data, dict):
            if data.get("driver") in ("local", "kind"):
                prefs.driver = data["driver"]
            if data.get("mode") in ("practice", "exam"):
                prefs.mode = data["mode"]
        return prefs

    def save(self) -> None:
        """Write the prefs atomically; a read-only data dir is not an error worth a crash."""
        path = paths.data_dir() / FILE_NAME
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(dataclasses.asdict(self)))
            os.replace(tmp, path)
        except OSError:
            pass


def docker_answers(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers `docker info` (the kind driver needs one)."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
