"""Kubernetes protobuf as the API server stores it in etcd: read and written back byte for
byte, on values a real kube-apiserver v1.35.4 stored (tests/data/stored-objects.json)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers import kubeproto

ROOT = Path(__file__).resolve().parent.parent
STORED = {k: base64.b64decode(v) for k, v in
          json.loads((Path(__file__).parent / "data" / "stored-objects.json").read_text())["values"].items()}


@pytest.mark.parametrize("key", sorted(STORED))
def test_every_stored_value_reads_and_protobuf_writes_back_byte_for_byte(key):
    raw = STORED[key]
    doc = kubeproto.stored_document(raw)
    assert doc["metadata"]["name"] == key.rsplit("/", 1)[-1]
    if kubeproto.is_protobuf(raw):
        assert kubeproto.encode(doc) == raw
    else:
        assert key.startswith("/registry/apiregistration.k8s.io/")  # the aggregator stores JSON


def test_a_deployment_reads_as_kubectl_shows_it():
    doc = kubeproto.decode(STORED["/registry/deployments/billing/web"])
    assert (doc["apiVersion"], doc["kind"]) == ("apps/v1", "Deployment")
    spec = doc["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 1}  # IntOrString
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}  # Quantity
    assert spec["template"]["metadata"]["creationTimestamp"] is None  # Go's zero time: null
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["metadata"]["creationTimestamp"])
    fields = doc["metadata"]["managedFields"][0]
    assert fields["fieldsV1"]["f:spec"]["f:replicas"] == {}  # FieldsV1 is the JSON it holds


def test_secrets_keep_base64_and_leases_microseconds():
    secret = kubeproto.decode(STORED["/registry/secrets/billing/db"])
    assert secret["data"] == {"password": "czNjcjN0"} and secret["type"] == "Opaque"
    lease = kubeproto.decode(STORED["/registry/leases/kube-node-lease/controlplane"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["spec"]["renewTime"])


@pytest.mark.parametrize("raw, words", [
    (b"k8s\x00\n\x0e\n\x02v9\x12\x08Whatever\x12\x00", "no protobuf schema for apiVersion v9"),
    (b"k8s\x00\n\x0c\n\x02v1\x12\x06Gadget\x12\x00", "no protobuf schema for kind Gadget in v1"),
    (b"k8s\x00\n\x09\n\x02v1\x12\x03Po", "truncated protobuf"),
    (b"k8s\x00\x12\x00", "without a kind"),
    (b"plain words", "neither Kubernetes protobuf nor JSON"),
])
def test_what_cannot_be_read_says_why(raw, words):
    with pytest.raises(kubeproto.StoredValueError, match=words):
        kubeproto.stored_document(raw)


def test_writing_an_unknown_field_names_it():
    with pytest.raises(kubeproto.StoredValueError, match="ConfigMap has no field 'dataa'"):
        kubeproto.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                          "dataa": {}})


@pytest.mark.parametrize("ns, text", [(0, "0s"), (300_000_000, "300ms"), (1_500_000_000, "1.5s"),
                                      (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"),
                                      (-2_000, "-2µs")])
def test_durations_read_as_go_prints_them(ns, text):
    assert kubeproto.go_duration(ns) == text


_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(name=_names, namespace=_names, labels=st.dictionaries(_names, _names, max_size=4),
       data=st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True),
                            st.text(max_size=40), max_size=5),
       immutable=st.booleans())
def test_a_written_configmap_reads_back_as_it_was(name, namespace, labels, data, immutable):
    doc = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "data": data, "immutable": immutable}
    back = kubeproto.decode(kubeproto.encode(doc))
    assert back["metadata"]["name"] == name and back["metadata"]["namespace"] == namespace
    assert back["metadata"].get("labels", {}) == labels
    assert back.get("data", {}) == data and back["immutable"] is immutable


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain: the schema's source "
                    "(the API's .proto files) comes from the Go module proxy")
def test_the_schema_is_generated_from_the_pinned_release():
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "kubeproto-schema.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
