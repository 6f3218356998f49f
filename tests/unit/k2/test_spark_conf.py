"""The Spark configuration K2 builds: the address drivers advertise, RPC authentication,
and the secret's way to Spark (0600 files, never a command line)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from k2.config import load
from k2.settings import PlatformSettings, env_for_children, platform
from k2ops.stack import cli, spark

SECRET = "s3cr3t-for-the-test"


def _settings(tmp_path, **env: str) -> PlatformSettings:
    return load(PlatformSettings, {"K2_HOME": str(tmp_path / "home"), **env})


@pytest.fixture
def container(monkeypatch):
    """A container's name resolution: its hostname maps to its address (/etc/hosts)."""
    monkeypatch.setattr(socket, "gethostname", lambda: "3f2a9c1b7d0e")
    monkeypatch.setattr(socket, "gethostbyname", lambda name: {"3f2a9c1b7d0e": "172.18.0.7"}[name])


def test_a_wildcard_bind_address_is_never_advertised(tmp_path, container):
    conf = spark.defaults(_settings(tmp_path, K2_BIND_HOST="0.0.0.0"), tmp_path)
    assert conf["spark.driver.bindAddress"] == "0.0.0.0"
    assert conf["spark.driver.host"] == "172.18.0.7"
    # An explicit wildcard is no better: it is replaced too.
    conf = spark.defaults(_settings(tmp_path, K2_BIND_HOST="::", K2_SPARK_DRIVER_HOST="0.0.0.0"), tmp_path)
    assert conf["spark.driver.host"] == "172.18.0.7"


def test_a_concrete_address_is_advertised_as_it_is(tmp_path, container):
    assert spark.defaults(_settings(tmp_path), tmp_path)["spark.driver.host"] == "127.0.0.1"
    conf = spark.defaults(_settings(tmp_path, K2_BIND_HOST="0.0.0.0", K2_SPARK_DRIVER_HOST="airflow-scheduler"),
                          tmp_path)
    assert (conf["spark.driver.bindAddress"], conf["spark.driver.host"]) == ("0.0.0.0", "airflow-scheduler")


@pytest.mark.parametrize("resolves", ["127.0.1.1", OSError("no such host")])
def test_the_hostname_is_advertised_when_it_has_no_other_address(monkeypatch, resolves):
    def gethostbyname(name):
        if isinstance(resolves, Exception):
            raise resolves
        return resolves

    monkeypatch.setattr(socket, "gethostname", lambda: "k2-box")
    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    assert spark.advertised_host("0.0.0.0") == "k2-box"


def test_authentication_is_on_iff_a_secret_is_set(tmp_path):
    off = _settings(tmp_path)
    on = _settings(tmp_path, K2_SPARK_AUTH_SECRET=SECRET)
    for conf in (spark.defaults(off, tmp_path), spark.daemon_conf(off)):
        assert not [k for k in conf if k.startswith("spark.authenticate")]
    for conf in (spark.defaults(on, tmp_path), spark.daemon_conf(on)):
        assert conf["spark.authenticate"] == "true"
        assert conf["spark.authenticate.secret"] == SECRET
    # The daemons offer no unauthenticated way in, with or without a secret.
    assert spark.daemon_conf(off)["spark.master.rest.enabled"] == "false"
    assert spark.daemon_conf(off)["spark.ui.killEnabled"] == "false"
    assert SECRET not in repr(on)


def test_the_conf_files_are_private_from_their_creation(tmp_path):
    s = _settings(tmp_path, K2_SPARK_AUTH_SECRET=SECRET)
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    stale = conf_dir / "spark-defaults.conf"
    stale.write_text("stale-line\n")
    stale.chmod(0o644)
    spark.write_conf(s, conf_dir)
    for name in ("spark-defaults.conf", spark.DAEMON_CONF):
        path = conf_dir / name
        assert path.stat().st_mode & 0o777 == 0o600, name
        assert f"spark.authenticate.secret {SECRET}\n" in path.read_text()
    assert "stale-line" not in stale.read_text()


def test_the_local_standalone_daemons_get_the_secret_by_file_only(tmp_path):
    s = _settings(tmp_path, K2_SPARK_AUTH_SECRET=SECRET)
    for svc in spark.standalone_services(s):
        assert SECRET not in " ".join(svc.argv)
        assert svc.argv[svc.argv.index("--properties-file") + 1] == str(s.spark_conf_dir / spark.DAEMON_CONF)


@pytest.mark.parametrize("role", ["master", "worker"])
def test_the_compose_daemon_gets_the_secret_by_file_only(tmp_path, monkeypatch, container, role):
    """`k2 stack spark-daemon` (the compose services' command) as compose runs it."""
    monkeypatch.setenv("K2_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("K2_BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("K2_SPARK_AUTH_SECRET", SECRET)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    execs = []
    monkeypatch.setattr(cli.os, "execve", lambda path, argv, env: execs.append((argv, env)))
    try:
        cli._spark_daemon(argparse.Namespace(role=role, host=None, master_url="spark://spark-master:7077"))
    finally:
        platform.cache_clear()  # it read this test's settings: later tests must not see them
    [(argv, env)] = execs
    assert SECRET not in " ".join(argv)
    assert argv[argv.index("--host") + 1] == "172.18.0.7"
    properties = argv[argv.index("--properties-file") + 1]
    assert (role == "worker") == ("spark://spark-master:7077" in argv)
    path = Path(properties)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert f"spark.authenticate.secret {SECRET}\n" in path.read_text()


def test_drivers_uis_stay_on_loopback_where_k2_binds_every_interface(tmp_path):
    assert env_for_children(_settings(tmp_path, K2_BIND_HOST="0.0.0.0"))["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env_for_children(_settings(tmp_path, K2_BIND_HOST="10.1.2.3"))["SPARK_LOCAL_IP"] == "10.1.2.3"
