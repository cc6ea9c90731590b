"""The pinned upstream releases, read from ``versions.toml`` beside this module.

That file is the only place a version is written down: the build scripts in ``.ci/`` read
it too, so the binaries they build are the ones the simulator expects.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

VERSIONS_FILE = Path(__file__).with_name("versions.toml")

with VERSIONS_FILE.open("rb") as _fh:
    _PINNED: dict[str, str] = tomllib.load(_fh)

KUBERNETES_VERSION: str = _PINNED["kubernetes"]
"""Kubernetes release tag (``v1.x.y``) of the control-plane binaries and images."""
ETCD_VERSION: str = _PINNED["etcd"]
"""etcd release tag (``v3.x.y``); image tags and ``etcd --version`` drop the ``v``."""
COREDNS_VERSION: str = _PINNED["coredns"]
PAUSE_VERSION: str = _PINNED["pause"]
KIND_VERSION: str = _PINNED["kind"]
CRI_TOOLS_VERSION: str = _PINNED["cri_tools"]
KIND_NODE_IMAGE: str = _PINNED["kind_node_image"]
"""The official kind node image for the pinned Kubernetes minor, by digest."""

__all__ = ["COREDNS_VERSION", "CRI_TOOLS_VERSION", "ETCD_VERSION", "KIND_NODE_IMAGE", "KIND_VERSION",
           "KUBERNETES_VERSION", "PAUSE_VERSION", "VERSIONS_FILE"]
