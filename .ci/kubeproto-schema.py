#!/usr/bin/env python3
"""Write checkers/kubeproto-schema.json from the Kubernetes API's own .proto files.

The API server stores objects in etcd as protobuf (kubeadm's manifest sets no
--storage-media-type), and protobuf on the wire carries field numbers, not names. The
checkers that read stored objects (checkers/kubeproto.py) name the fields with this table:
for every message of the stable API groups, its fields as [number, name, label, type]
(label: "optional", "repeated" or "map"; a map's type is [key type, value type]), and for
every group/version the protobuf package of its kinds.

The .proto files come from the Go module cache at the pinned Kubernetes release
(simulator/versions.toml): k8s.io/api and k8s.io/apimachinery v0.<minor>.<patch>, fetched
with `go mod download` when missing. Run it again after changing that version:

    python3 .ci/kubeproto-schema.py            # writes checkers/kubeproto-schema.json
    python3 .ci/kubeproto-schema.py --check    # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "checkers" / "kubeproto-schema.json"
# The apimachinery types objects embed (ObjectMeta, Time, Quantity, IntOrString, ...).
MACHINERY = ("pkg/apis/meta/v1", "pkg/api/resource", "pkg/util/intstr", "pkg/runtime")
STABLE = re.compile(r"^v[0-9]+$")  # stored objects of built-in kinds are at v1 or v2

_FIELD = re.compile(r"^\s*(optional|repeated|required)?\s*([.\w]+)\s+(\w+)\s*=\s*(\d+)\s*[;\[]")
_MAP = re.compile(r"^\s*map\s*<\s*([.\w]+)\s*,\s*([.\w]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
_SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "sint32",
            "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "double", "float"}


def kubernetes_version() -> str:
    text = (ROOT / "simulator" / "versions.toml").read_text()
    return re.search(r'^kubernetes\s*=\s*"v1\.(\d+)\.(\d+)"', text, re.M).expand(r"v0.\1.\2")


def module_dir(module: str, version: str) -> Path:
    found = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"],
                           capture_output=True, text=True, check=False,
                           env={**os.environ, "GOFLAGS": "-mod=mod"})
    if found.returncode != 0:
        sys.exit(f"cannot fetch {module}@{version} from the Go module proxy:\n{found.stderr}")
    return Path(json.loads(found.stdout)["Dir"])


def parse(text: str) -> tuple[str, dict[str, list]]:
    """(package, {message: fields}) of one generated.proto (proto2, no nested messages)."""
    text = re.sub(r"//[^\n]*", "", text)
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    messages: dict[str, list] = {}
    for match in re.finditer(r"^message\s+(\w+)\s*\{(.*?)^\}", text, re.M | re.S):
        fields = []
        for line in match.group(2).splitlines():
            if m := _MAP.match(line):
                key, value, name, number = m.groups()
                fields.append([int(number), name, "map", [_qualify(key, package),
                                                          _qualify(value, package)]])
            elif m := _FIELD.match(line):
                label, kind, name, number = m.groups()
                fields.append([int(number), name, label or "optional", _qualify(kind, package)])
        messages[f"{package}.{match.group(1)}"] = sorted(fields)
    return package, messages


def _qualify(kind: str, package: str) -> str:
    if kind in _SCALARS:
        return kind
    return kind[1:] if kind.startswith(".") else f"{package}.{kind}"


def build() -> dict:
    version = kubernetes_version()
    api, machinery = module_dir("k8s.io/api", version), module_dir("k8s.io/apimachinery", version)
    messages: dict[str, list] = {}
    for sub in MACHINERY:
        messages.update(parse((machinery / sub / "generated.proto").read_text())[1])
    groups: dict[str, str] = {}
    for proto in sorted(api.glob("*/*/generated.proto")):
        if not STABLE.match(proto.parent.name):
            continue
        package, found = parse(proto.read_text())
        messages.update(found)
        group = re.search(r'GroupName\s*=\s*"([^"]*)"', (proto.parent / "register.go").read_text())
        groups[f"{group.group(1)}/{proto.parent.name}".lstrip("/")] = package
    return {"kubernetes": f"v1.{version[3:]}", "groups": dict(sorted(groups.items())),
            "messages": dict(sorted(messages.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the file")
    args = parser.parse_args()
    text = json.dumps(build(), separators=(",", ":"), sort_keys=False) + "\n"
    if args.check:
        if OUT.exists() and OUT.read_text() == text:
            return 0
        print(f"{OUT.relative_to(ROOT)} is out of date: run python3 .ci/kubeproto-schema.py",
              file=sys.stderr)
        return 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
