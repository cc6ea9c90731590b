"""Where cka-sim keeps user state: history, the active session, clusters, caches."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "cka-sim"


def data_dir() -> Path:
    """The user data dir (``CKA_SIM_HOME`` overrides it); created on first use."""
    override = os.environ.get("CKA_SIM_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The user cache dir for downloaded or built binaries (``CKA_SIM_CACHE`` overrides it)."""
    override = os.environ.get("CKA_SIM_CACHE")
    path = Path(override) if override else Path(platformdirs.user_cache_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def clusters_dir() -> Path:
    """Directory holding one sub-directory per practice cluster."""
    path = data_dir() / "clusters"
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_scenarios_dir() -> Path:
    """Scenario packs the user drops in without passing ``--scenarios``."""
    return data_dir() / "scenarios"
