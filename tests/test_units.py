"""Unit files as systemd reads them (simulator.cluster.local.units): sections, continued
lines, drop-ins, ExecStart's words and variables, EnvironmentFile lines."""

from __future__ import annotations

import pytest

from simulator.cluster.local import units


def test_exec_start_is_split_and_expanded_as_systemd_does():
    env = {"ARGS": "--a=1  --b=2", "DIR": "/var/lib/etcd-new", "EMPTY": ""}
    assert units.exec_argv("-/usr/local/bin/etcd $ARGS --data-dir=${DIR} $EMPTY", env) == [
        "/usr/local/bin/etcd", "--a=1", "--b=2", "--data-dir=/var/lib/etcd-new"]
    # $NAME inside a word is not expanded; $$ and %% are literal $ and %
    assert units.exec_argv("/bin/sh -c 'echo $$HOME x$DIR 100%%'", env) == [
        "/bin/sh", "-c", "echo $HOME x$DIR 100%"]
    with pytest.raises(ValueError):
        units.exec_argv("", env)


def test_unit_files_join_continued_lines_and_drop_ins_reset_exec_start(tmp_path):
    unit_dir = tmp_path / "etc/systemd/system"
    (unit_dir / "etcd.service.d").mkdir(parents=True)
    (unit_dir / "etcd.service").write_text(
        "[Unit]\nDescription=etcd\n\n[Service]\n# comment\nExecStart=/usr/local/bin/etcd \\\n"
        "  --name=controlplane \\\n  --data-dir=/var/lib/etcd\nRestart=on-failure\nRestartSec=5\n"
        "Environment=A=1 \"B=two words\"\nEnvironmentFile=-/etc/default/etcd\n")
    (unit_dir / "etcd.service.d/10-restore.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/etcd --data-dir=/var/lib/etcd-new\n")
    config = units.load_unit(tmp_path, "etcd.service")
    assert config is not None
    assert config.description == "etcd"
    assert config.exec_start == "/usr/local/bin/etcd --data-dir=/var/lib/etcd-new"
    assert config.environment == {"A": "1", "B": "two words"}
    assert config.environment_files == ["-/etc/default/etcd"]
    assert (config.restart, config.restart_sec) == ("on-failure", 5.0)
    assert list(config.files) == ["/etc/systemd/system/etcd.service",
                                  "/etc/systemd/system/etcd.service.d/10-restore.conf"]
    (unit_dir / "etcd.service.d/10-restore.conf").unlink()
    config = units.load_unit(tmp_path, "etcd.service")
    assert config is not None
    assert units.exec_argv(config.exec_start, {}) == [
        "/usr/local/bin/etcd", "--name=controlplane", "--data-dir=/var/lib/etcd"]
    assert units.load_unit(tmp_path, "other.service") is None


def test_environment_files_read_as_systemd_reads_them(tmp_path):
    path = tmp_path / "etcd.env"
    path.write_text("# settings\nETCD_DATA_DIR=/var/lib/etcd-new\nexport ETCD_NAME=\"control plane\"\n"
                    "; other comment\nnot a line\nQUOTED='a b'\n")
    assert units.read_environment_file(path) == {
        "ETCD_DATA_DIR": "/var/lib/etcd-new", "ETCD_NAME": "control plane", "QUOTED": "a b"}
