"""The compose deployment's Spark, as local processes: a standalone master and a worker
started with the compose services' own command and environment, RPC authentication on.

No Docker engine runs here, so docker-compose.yaml's `spark-master` and `spark-worker-1`
services run as processes: their `command` and `environment` are read from the file and
translated (container hosts to 127.0.0.1, free ports, a temporary K2_HOME, a small worker)
and the secret is a fresh one, as docker/.env would hold. A driver configured as K2
configures its drivers (``spark.write_conf`` from the Airflow scheduler's compose
environment) runs a job on the cluster's executor; a driver without the secret is refused;
the secret is on no process's command line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from k2.config import load
from k2.polling import wait_until
from k2.settings import REPO_ROOT, PlatformSettings, env_for_children
from k2ops.stack import spark
from ports import free_port

pytestmark = pytest.mark.integration

JOB = """
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("k2-auth-smoke").getOrCreate()
total = spark.sparkContext.parallelize(range(1000), 2).map(lambda x: 2 * x).sum()
print(f"RESULT sum={total} master={spark.sparkContext.master}", flush=True)
spark.stop()
"""
REFUSED = "Failed to connect to master"  # the driver's standalone client, on each try




class Cluster:
    """The compose file's Spark services, translated to this machine."""

    def __init__(self, tmp: Path, secret: str) -> None:
        self.tmp, self.secret = tmp, secret
        self.master_port, self.master_ui, self.worker_ui = free_port(), free_port(), free_port()
        self.compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())["services"]
        self.procs: list[subprocess.Popen] = []

    def _local(self, value: str) -> str:
        """A compose value on this machine: secrets files (/run/secrets/<name>, from
        docker/.env: the Spark secret is the cluster's, the others unused here), hosts,
        ports, paths."""
        value = str(value)
        if value.startswith("/run/secrets/"):
            name = value.removeprefix("/run/secrets/")
            path = self.tmp / "secrets" / name
            if not path.exists():
                path.parent.mkdir(mode=0o700, exist_ok=True)
                path.write_text(self.secret if name == "spark_auth_secret" else f"compose-{name}")
            return str(path)
        value = re.sub(r"\$\{(\w+)[^}]*\}", r"compose-\1", value)
        value = value.replace("spark-master:7077", f"127.0.0.1:{self.master_port}")
        return value.replace("/var/lib/k2", str(self.tmp / "home"))

    def env(self, service: str, **extra: str) -> dict[str, str]:
        environment = self.compose[service].get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("K2_", "SPARK_"))}
        env.update({k: self._local(v) for k, v in environment.items()})
        # The master and worker bind (and advertise) their container's address: here, loopback.
        return {**env, "K2_BIND_HOST": "127.0.0.1", "PYTHONPATH": str(REPO_ROOT), **extra}

    def start(self, service: str, **extra: str) -> subprocess.Popen:
        argv = [self._local(a) for a in self.compose[service]["command"]]
        assert argv[:3] == ["k2", "stack", "spark-daemon"], argv
        log = open(self.tmp / f"{service}.log", "wb")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen([sys.executable, "-m", "k2ops.cli", *argv[1:]], cwd=REPO_ROOT,
                                env=self.env(service, **extra), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, service: str) -> str:
        return (self.tmp / f"{service}.log").read_text(errors="replace")

    def master_state(self) -> dict:
        """The master UI's JSON (workers, apps); {} while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui}/json/", timeout=3) as resp:
                return json.load(resp)
        except OSError:
            return {}

    def alive_workers(self) -> int:
        return sum(w["state"] == "ALIVE" for w in self.master_state().get("workers", []))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spark-auth")
    c = Cluster(tmp, secrets.token_urlsafe(32))
    # In their containers the UIs bind every interface, for compose to publish them on the
    # host's loopback; here they bind loopback directly.
    c.start("spark-master", SPARK_MASTER_PORT=str(c.master_port), SPARK_MASTER_WEBUI_PORT=str(c.master_ui),
            SPARK_LOCAL_IP="127.0.0.1")
    try:
        wait_until(c.master_state, 120, what="the Spark master's UI")
    except TimeoutError:
        c.stop()
        pytest.fail("master did not start:\n" + c.log("spark-master")[-3000:])
    c.start("spark-worker-1", SPARK_WORKER_WEBUI_PORT=str(c.worker_ui), SPARK_WORKER_CORES="1",
            SPARK_WORKER_MEMORY="512m", SPARK_WORKER_DIR=str(tmp / "work"), SPARK_LOCAL_IP="127.0.0.1")
    try:
        wait_until(c.alive_workers, 120, what="the worker to register with the master")
        yield c
    except TimeoutError:
        pytest.fail("worker did not register:\n" + c.log("spark-worker-1")[-3000:]
                    + "\n--- master:\n" + c.log("spark-master")[-3000:])
    finally:
        c.stop()


def _driver(cluster: Cluster, name: str, secret: str) -> tuple[list[str], dict[str, str]]:
    """spark-submit of JOB as K2 runs its drivers in compose (the scheduler's environment):
    bound to every interface (compose's K2_BIND_HOST=0.0.0.0), advertising another address
    (the container's; here loopback, so that executors' traffic stays on this machine)."""
    env = cluster.env("airflow-scheduler", K2_BIND_HOST="0.0.0.0", K2_SPARK_DRIVER_HOST="127.0.0.1",
                      K2_SPARK_DRIVER_MEMORY="512m")
    if secret != cluster.secret:  # not the secret of compose's file: given instead of it
        env.pop("K2_SPARK_AUTH_SECRET_FILE")
        env["K2_SPARK_AUTH_SECRET"] = secret
    settings = load(PlatformSettings, env)
    conf_dir = cluster.tmp / f"conf-{name}"
    spark.write_conf(settings, conf_dir)
    job = cluster.tmp / "job.py"
    job.write_text(JOB)
    env = {**env_for_children(settings), **{k: env[k] for k in ("PATH", "PYTHONPATH")},
           "SPARK_CONF_DIR": str(conf_dir), "PYSPARK_PYTHON": sys.executable}
    argv = [spark.spark_submit(), "--executor-memory", "512m", "--total-executor-cores", "1", str(job)]
    return argv, env


def _cmdlines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone, or not a process folder
            continue
    return out


def test_a_driver_with_k2s_settings_runs_a_job_on_the_authenticated_cluster(cluster):
    argv, env = _driver(cluster, "k2", cluster.secret)
    conf = (cluster.tmp / "conf-k2" / "spark-defaults.conf")
    assert conf.stat().st_mode & 0o777 == 0o600
    assert f"spark.authenticate.secret {cluster.secret}" in conf.read_text()
    assert "spark.driver.bindAddress 0.0.0.0\n" in conf.read_text()
    assert "spark.driver.host 127.0.0.1\n" in conf.read_text()
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"  # the driver's UI

    log = cluster.tmp / "driver-k2.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen(argv, env=env, cwd=cluster.tmp, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    seen = {"executor": False, "secret": []}

    def finished() -> bool:
        for line in _cmdlines():
            seen["executor"] |= "CoarseGrainedExecutorBackend" in line
            if cluster.secret in line:
                seen["secret"].append(line)
        return driver.poll() is not None

    try:
        wait_until(finished, 240, what="the job on the standalone cluster", interval=0.2)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # spark-submit's JVM and its Python child
    text = log.read_text(errors="replace")
    assert driver.returncode == 0, text[-4000:]
    assert f"RESULT sum={2 * sum(range(1000))} master=spark://127.0.0.1:{cluster.master_port}" in text
    assert seen["executor"], "no executor process ran on the worker"
    assert not seen["secret"], "the secret is on a command line"
    apps = cluster.master_state()["completedapps"]
    assert [a["name"] for a in apps if a["name"] == "k2-auth-smoke"], apps


def test_a_driver_without_the_secret_is_refused(cluster):
    argv, env = _driver(cluster, "nosecret", "")
    assert "spark.authenticate" not in (cluster.tmp / "conf-nosecret" / "spark-defaults.conf").read_text()
    before = len(cluster.master_state()["activeapps"]) + len(cluster.master_state()["completedapps"])
    log = cluster.tmp / "driver-nosecret.log"
    with open(log, "wb") as out:
        driver = subprocess.Popen(argv, env=env, cwd=cluster.tmp, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_until(lambda: REFUSED in log.read_text(errors="replace") or driver.poll() is not None, 60,
                   what="the driver's attempt to register")
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # spark-submit's JVM and its Python child
        driver.wait(30)
    text = log.read_text(errors="replace")
    assert REFUSED in text, text[-4000:]
    assert "RESULT" not in text
    state = cluster.master_state()
    assert len(state["activeapps"]) + len(state["completedapps"]) == before
