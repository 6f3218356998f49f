"""The `k2` command line: every subcommand explains itself; settings typos are caught."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k2ops.cli import build_parser
from ports import free_port

K2 = str(Path(sys.executable).parent / "k2")


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_all_areas_are_present():
    top = {c[0] for c in COMMANDS}
    assert {"up", "down", "stack", "setup", "config", "query", "streams", "workers", "simulate"} <= top
    assert {("stack", a) for a in ("up", "down", "status", "logs")} <= set(COMMANDS)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in {("airflow",), ("spark-submit",)}],
                         ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: k2 " + " ".join(command))
    assert len(out.splitlines()) > 3


def test_config_flags_unknown_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    ok = subprocess.run([K2, "config"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "K2_KAFKA_BOOTSTRAP=127.0.0.1:9092" in ok.stdout
    typo = subprocess.run([K2, "config"], env={**env, "K2_KAFAK_PORT": "1"},
                          capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2
    assert ("K2_KAFAK_PORT is not a K2 setting and is ignored (did you mean K2_KAFKA_PORT?)"
            in typo.stdout)


def test_other_commands_warn_about_unknown_settings_and_carry_on(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    # Ports nobody uses, so `status` never reports another stack running on this machine.
    env.update({"K2_HOME": str(tmp_path), "K2_REGISTRY_PROT": "1", "K2_PG_PORT": "1",
                "K2_KAFKA_PORT": "2", "K2_REGISTRY_PORT": "3", "K2_AIRFLOW_PORT": "4"})
    result = subprocess.run([K2, "stack", "status"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.stderr.splitlines() == [
        "k2 stack: warning: K2_REGISTRY_PROT is not a K2 setting and is ignored "
        "(did you mean K2_REGISTRY_PORT?); `k2 config` lists every setting"
    ]
    assert result.stdout.startswith("SERVICE") and "postgres" in result.stdout  # it still ran


def test_bad_setting_fails_naming_it():
    env = {**os.environ, "K2_KAFKA_PORT": "not-a-port"}
    result = subprocess.run([K2, "stack", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "K2_KAFKA_PORT='not-a-port' is not a valid int" in result.stderr


def test_setup_takes_no_or_known_components():
    assert build_parser().parse_args(["setup"]).components == []
    bad = subprocess.run([K2, "setup", "zookeeper"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown components ['zookeeper']" in bad.stderr


def test_spark_submit_passes_options_through_with_the_stack_conf(tmp_path):
    env = {**os.environ, "K2_HOME": str(tmp_path)}
    result = subprocess.run([K2, "spark-submit", "--version"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "version 4.1.1" in result.stdout + result.stderr
    conf = (tmp_path / "spark-conf" / "spark-defaults.conf").read_text()
    assert f"spark.sql.catalog.k2.warehouse file://{tmp_path}/warehouse" in conf




def test_bench_without_a_stack_says_how_to_start_one(tmp_path):
    env = {**os.environ, "K2_HOME": str(tmp_path), "K2_PG_PORT": str(free_port()),
           "K2_KAFKA_PORT": str(free_port()), "K2_REGISTRY_PORT": str(free_port())}
    proc = subprocess.run([K2, "bench", "--only", "workers"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "local stack is not running (postgres, kafka, registry down)" in proc.stderr
    assert "k2 stack up postgres kafka registry spark" in proc.stderr and "make bench" in proc.stderr
    assert not (tmp_path / "bench").exists()  # no report of a run that never happened
