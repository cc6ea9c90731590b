"""files.*, cron.entry and script checkers on a real node filesystem with real commands."""

from __future__ import annotations

import pytest
from hostnode import host_context

from simulator import registry
from simulator.cron import normalize_schedule
from simulator.errors import CheckError


@pytest.fixture
def node_ctx(tmp_path):
    return host_context(tmp_path / "node")


def check(ctx, name, **params):
    fn = registry.get_checker(name)
    registry.check_params(fn, "checker", name, params)
    return fn(ctx, **params)


# ---------------------------------------------------------------- files.exists / files.mode / files.contains


def test_exists_file_dir_and_size(node_ctx):
    ctx, node = node_ctx
    node.write_file("/opt/backup/etcd.db", b"x" * 100)
    assert check(ctx, "files.exists", path="/opt/backup/etcd.db").passed
    assert check(ctx, "files.exists", path="/opt/backup", kind="dir").passed
    assert check(ctx, "files.exists", path="/opt/backup", kind="any").passed
    small = check(ctx, "files.exists", path="/opt/backup/etcd.db", min_size=1000)
    assert not small.passed and "holds 100 bytes, expected at least 1000" in small.detail
    not_dir = check(ctx, "files.exists", path="/opt/backup/etcd.db", kind="dir")
    assert not not_dir.passed and "expected a directory" in not_dir.detail
    not_file = check(ctx, "files.exists", path="/opt/backup")
    assert not not_file.passed and "is a directory, expected a regular file" in not_file.detail
    missing = check(ctx, "files.exists", path="/opt/backup/other.db")
    assert not missing.passed and "does not exist" in missing.detail
    with pytest.raises(CheckError):
        check(ctx, "files.exists", path="/opt", kind="folder")


def test_exists_follows_links_and_sees_empty_files(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/empty.conf", b"")
    node.host_path("/etc/link.conf").symlink_to("/etc/empty.conf")
    assert check(ctx, "files.exists", path="/etc/link.conf").passed
    assert not check(ctx, "files.exists", path="/etc/empty.conf", min_size=1).passed


def test_paths_with_shell_characters_are_only_data(node_ctx):
    ctx, node = node_ctx
    node.write_file("/opt/a b;$(touch pwned)", b"data")
    assert check(ctx, "files.exists", path="/opt/a b;$(touch pwned)").passed
    assert not node.host_path("/root/pwned").exists()


@pytest.mark.parametrize("wanted", ["0600", "600", 0o600, "0o600"])
def test_mode_matches(node_ctx, wanted):
    ctx, node = node_ctx
    node.write_file("/etc/kubernetes/pki/etcd/server.key", b"k", mode=0o600)
    assert check(ctx, "files.mode", path="/etc/kubernetes/pki/etcd/server.key", mode=wanted).passed


def test_mode_mismatch_says_how_to_fix(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/kubernetes/pki/etcd/server.key", b"k", mode=0o644)
    result = check(ctx, "files.mode", path="/etc/kubernetes/pki/etcd/server.key", mode="0600")
    assert not result.passed
    assert "has mode 0644, expected 0600" in result.detail and "chmod 0600" in result.detail
    missing = check(ctx, "files.mode", path="/nope", mode="0600")
    assert not missing.passed and "does not exist" in missing.detail
    for bad in ("rw-------", "0999", True, 0o17777):
        with pytest.raises(CheckError):
            check(ctx, "files.mode", path="/nope", mode=bad)


def test_contains_substring_and_regex(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/kubernetes/manifests/etcd.yaml", b"spec:\n  - --data-dir=/var/lib/etcd-restored\n")
    assert check(ctx, "files.contains", path="/etc/kubernetes/manifests/etcd.yaml",
                 pattern="--data-dir=/var/lib/etcd-restored").passed
    assert check(ctx, "files.contains", path="/etc/kubernetes/manifests/etcd.yaml",
                 pattern=r"^\s+- --data-dir=/var/lib/etcd-\w+$", regex=True).passed
    miss = check(ctx, "files.contains", path="/etc/kubernetes/manifests/etcd.yaml", pattern="/var/lib/etcd-new")
    assert not miss.passed and "none of the 2 line(s)" in miss.detail
    node.write_file("/root/empty", b"")
    assert "is empty" in check(ctx, "files.contains", path="/root/empty", pattern="x").detail
    assert "does not exist" in check(ctx, "files.contains", path="/root/none", pattern="x").detail
    assert "is a directory" in check(ctx, "files.contains", path="/root", pattern="x").detail
    with pytest.raises(CheckError):
        check(ctx, "files.contains", path="/root/empty", pattern="(", regex=True)


# ---------------------------------------------------------------- cron.entry

BACKUP = "ETCDCTL_API=3 etcdctl snapshot save /opt/backup/etcd.db"


def test_normalize_schedule():
    assert normalize_schedule("00 02 * * *") == normalize_schedule("0 2 * * *") == "0 2 * * *"
    assert normalize_schedule("@daily") == "0 0 * * *"
    assert normalize_schedule("*/20 * * * 7") == "0,20,40 * * * 0" == normalize_schedule("0-59/20 * * * sun")
    assert normalize_schedule("0 2 * * 0-6") == normalize_schedule("0 2 * * *") == "0 2 * * *"
    # two restricted day fields fire on either (cron's rule), so 0-6 makes it daily
    assert normalize_schedule("0 2 1 * 0-6") == "0 2 * * *"
    assert normalize_schedule("0 2 1 * 1") == "0 2 1 * 1" != normalize_schedule("0 2 * * 1")
    assert normalize_schedule("61 2 * * *") is None and normalize_schedule("0 2 * * * 2027") is None
    assert normalize_schedule("0 2 * *") is None
    assert normalize_schedule("@reboot") is None


def test_root_crontab_entry(node_ctx):
    ctx, node = node_ctx
    node.write_file("/var/spool/cron/crontabs/root",
                    f"# m h dom mon dow command\nSHELL=/bin/bash\n00 02 * * * {BACKUP} >/dev/null 2>&1\n".encode())
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command="etcdctl snapshot save")
    assert result.passed and "root's crontab" in result.detail
    wrong = check(ctx, "cron.entry", schedule="0 3 * * *", command="etcdctl snapshot save")
    assert not wrong.passed
    assert "is scheduled at root's crontab: '00 02 * * *', expected '0 3 * * *'" in wrong.detail
    other = check(ctx, "cron.entry", schedule="0 2 * * *", command="etcdutl backup")
    assert not other.passed and "no cron job runs 'etcdutl backup'" in other.detail and BACKUP in other.detail


def test_daily_shortcut_only_for_midnight(node_ctx):
    ctx, node = node_ctx
    node.write_file("/var/spool/cron/crontabs/root", f"@daily {BACKUP}\n".encode())
    assert check(ctx, "cron.entry", schedule="0 0 * * *", command="etcdctl snapshot save").passed
    assert not check(ctx, "cron.entry", schedule="0 2 * * *", command="etcdctl snapshot save").passed


def test_cron_d_entry_with_user(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd-backup", f"30 1 * * 0 root {BACKUP}\n".encode())
    result = check(ctx, "cron.entry", schedule="30 1 * * 7", command="etcdctl snapshot save /opt/backup/etcd.db")
    assert result.passed and "/etc/cron.d/etcd-backup" in result.detail
    node.write_file("/etc/crontab", f"0 4 * * * root {BACKUP}\n".encode())
    assert check(ctx, "cron.entry", schedule="0 4 * * *", command="etcdctl snapshot save").passed


SCRIPT = "/usr/local/bin/etcd-backup.sh"


@pytest.mark.parametrize("line", [
    f"0 2 * * * root true # {SCRIPT}",
    f"0 2 * * * root echo {SCRIPT}",
    f"0 2 * * * root false && {SCRIPT}",
    f"0 2 * * * root true || {SCRIPT}",
    f"0 2 * * * {SCRIPT}",  # no user field: cron takes the script path for the user
])
def test_cron_line_that_only_mentions_the_script_does_not_count(node_ctx, line):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd-backup", f"{line}\n".encode())
    assert not check(ctx, "cron.entry", schedule="0 2 * * *", command=SCRIPT).passed


@pytest.mark.parametrize("line", [
    f"0 2 * * * root {SCRIPT}",
    f"0 2 * * 0-6 root bash {SCRIPT} >> /var/log/etcd-backup.log 2>&1",
    f"00 02 1-31 * * root /bin/sh -c '{SCRIPT}'",
    f"0 2 * * * root cd /tmp && PATH=/usr/local/bin:/usr/bin:/bin {SCRIPT}",
])
def test_cron_line_that_runs_the_script_counts(node_ctx, line):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd-backup", f"{line}\n".encode())
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command=SCRIPT)
    assert result.passed, result.detail


def test_a_line_without_its_command_makes_cron_ignore_the_whole_file(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd-backup", f"0 2 * * * root {SCRIPT}\n0 3 * * * {SCRIPT}\n".encode())
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command=SCRIPT)
    assert not result.passed and "cron ignores all of /etc/cron.d/etcd-backup" in result.detail


def test_a_cron_d_file_others_may_write_is_ignored_as_cron_ignores_it(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd-backup", f"0 2 * * * root {SCRIPT}\n".encode(), mode=0o666)
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command=SCRIPT)
    assert not result.passed and "cron ignores /etc/cron.d/etcd-backup: it is writable by group or others" in result.detail
    node.write_file("/etc/cron.d/etcd-backup", f"0 2 * * * root {SCRIPT}\n".encode(), mode=0o644)
    assert check(ctx, "cron.entry", schedule="0 2 * * *", command=SCRIPT).passed


def test_cron_d_file_with_a_dot_is_ignored_by_cron(node_ctx):
    ctx, node = node_ctx
    node.write_file("/etc/cron.d/etcd.backup", f"0 2 * * * root {BACKUP}\n".encode())
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command="etcdctl snapshot save")
    assert not result.passed and "cron ignores /etc/cron.d/etcd.backup" in result.detail


def test_no_cron_jobs_at_all(node_ctx):
    ctx, _ = node_ctx
    result = check(ctx, "cron.entry", schedule="0 2 * * *", command="snapshot save")
    assert not result.passed and "no cron jobs at all" in result.detail
    with pytest.raises(CheckError):
        check(ctx, "cron.entry", schedule="every night", command="x")


# ---------------------------------------------------------------- script


def test_script_pass_and_fail_with_output(node_ctx):
    ctx, node = node_ctx
    node.write_file("/root/answer.txt", b"3\n")
    ok = check(ctx, "script", run='test "$(cat /root/answer.txt)" = 3 && echo "answer is right"')
    assert ok.passed and ok.detail == "answer is right"
    bad = check(ctx, "script", run='for i in $(seq 1 20); do echo "line $i"; done; echo oops >&2; exit 3')
    assert not bad.passed and "exit code 3" in bad.detail
    assert "oops" in bad.detail and "line 20" in bad.detail and "line 1\n" not in bad.detail


def test_script_env_values_are_not_code(node_ctx):
    ctx, node = node_ctx
    result = check(ctx, "script", run='test "$WANT" = \'$(touch /root/pwned)\' && test "$N" = 5',
                   env={"WANT": "$(touch /root/pwned)", "N": 5})
    assert result.passed, result.detail
    assert not node.host_path("/root/pwned").exists()


def test_script_timeout_fails(node_ctx):
    ctx, _ = node_ctx
    result = check(ctx, "script", run="sleep 5", timeout=0.5)
    assert not result.passed and "did not finish" in result.detail
