"""etcd.key's check that an object is the original one, and etcd.dir_keys on the data
directory a real etcd left behind, read through a real node filesystem."""

from __future__ import annotations

import shutil

import pytest
from clusterkit import check, fault
from conftest import needs_namespaces
from hostnode import RealEtcd, host_context

from simulator import registry
from simulator.cluster.local.driver import LocalDriver
from simulator.cluster.node import ClusterSpec
from simulator.errors import CheckError
from simulator.setup_steps import record

pytestmark = [pytest.mark.slow, needs_namespaces]

DEPLOY = "/registry/deployments/shop/web"
LATE = "/registry/configmaps/shop/feature-flags"


@pytest.fixture(scope="module")
def old_data_dir(tmp_path_factory):
    """The data directory of an etcd that held a Deployment, then lost it and got a ConfigMap."""
    work = tmp_path_factory.mktemp("etcd")
    etcd = RealEtcd(work)
    try:
        etcd.put(DEPLOY, "k8s\x00deployment")
        etcd.put("/registry/configmaps/shop/app-config", "k8s\x00config")
        etcd.delete(DEPLOY)
        etcd.put(LATE, "k8s\x00late")
    finally:
        etcd.stop()
    return etcd.data_dir


def test_dir_keys_reads_what_was_done_before_etcd_left_the_directory(tmp_path, old_data_dir):
    ctx, node = host_context(tmp_path / "node")
    shutil.copytree(old_data_dir, node.host_path("/var/lib/etcd"))
    done = check(ctx, "etcd.dir_keys", data_dir="/var/lib/etcd", present=[LATE], absent=[DEPLOY])
    assert done.passed, done.detail
    assert done.detail == f"the etcd data in /var/lib/etcd holds {LATE} and no longer holds {DEPLOY}"
    skipped = check(ctx, "etcd.dir_keys", data_dir="/var/lib/etcd", present=[DEPLOY], absent=[LATE])
    assert not skipped.passed
    assert skipped.detail == f"the etcd data in /var/lib/etcd: {DEPLOY} is not in it; {LATE} is still in it"


def test_dir_keys_on_a_missing_or_broken_directory(tmp_path):
    ctx, node = host_context(tmp_path / "node")
    gone = check(ctx, "etcd.dir_keys", data_dir="/var/lib/etcd", present=[LATE])
    assert not gone.passed and "/var/lib/etcd/member/snap/db does not exist" in gone.detail
    node.write_file("/var/lib/etcd/member/snap/db", b"\0" * 8192)
    broken = check(ctx, "etcd.dir_keys", data_dir="/var/lib/etcd", present=[LATE])
    assert not broken.passed and "is not a readable etcd database" in broken.detail


@pytest.fixture(scope="module")
def etcd_ctx():
    driver = LocalDriver()
    made = driver.create(ClusterSpec("keychk"), lambda step: None)
    yield registry.Context(made)
    driver.delete(made)


def test_key_created_before_setup_tells_the_original_from_a_re_creation(etcd_ctx):
    ctx = etcd_ctx
    with pytest.raises(CheckError):
        check(ctx, "etcd.key", key=DEPLOY, created_before_setup=True)
    fault(ctx, "etcd.put", key=DEPLOY, value="original")
    record(ctx, "revision")
    fault(ctx, "etcd.put", key=DEPLOY, value="updated since")
    original = check(ctx, "etcd.key", key=DEPLOY, created_before_setup=True)
    assert original.passed and "before the task began" in original.detail, original.detail
    fault(ctx, "etcd.delete", key=DEPLOY)
    fault(ctx, "etcd.put", key=DEPLOY, value="made again")
    again = check(ctx, "etcd.key", key=DEPLOY, created_before_setup=True)
    assert not again.passed and "it is a new object made again" in again.detail
    assert check(ctx, "etcd.key", key=DEPLOY).passed
