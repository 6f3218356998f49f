"""Run the Spark jobs as operators do (spark-submit), isolated per test run.

Isolation: a namespace and topics unique to the run (the jobs' --namespace/--topics),
and K2_CHECKPOINT_ROOT in a temporary folder, so checkpoints, progress files and run
locks never touch the real streams or other engineers' runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from k2.config import load
from k2.contracts import STREAMS
from k2.jobs import job_path
from k2.settings import REPO_ROOT, PlatformSettings, env_for_children, platform
from k2ops.stack.spark import spark_submit


def free_ports(count: int) -> list[int]:
    """Ports free now (the kernel's choice), so test streams never take the live ones."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Jobs:
    namespace: str
    topics: dict[str, str]
    checkpoint_root: Path
    log_dir: Path
    running: list[subprocess.Popen] = field(default_factory=list)
    # Each stream's Prometheus port for this run (K2_<STREAM>_METRICS_PORT).
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(zip(STREAMS, free_ports(len(STREAMS)), strict=True)))

    @property
    def settings(self) -> PlatformSettings:
        """The platform settings the jobs see (their checkpoint root, locks, progress)."""
        return load(PlatformSettings, {**os.environ, "K2_CHECKPOINT_ROOT": str(self.checkpoint_root)})

    @property
    def env(self) -> dict[str, str]:
        env = env_for_children(platform())
        env["K2_CHECKPOINT_ROOT"] = str(self.checkpoint_root)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PATH"] = f"{Path(spark_submit()).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update({f"K2_{stream.upper()}_METRICS_PORT": str(port) for stream, port in self.metrics_ports.items()})
        return env

    def argv(self, job: str, *args: str) -> list[str]:
        argv = [spark_submit(), str(job_path(job)), "--namespace", self.namespace]
        if job in ("bronze_ingestion", "silver_transformation"):
            argv += ["--topics", ",".join(f"{ex}={t}" for ex, t in self.topics.items())]
        return argv + list(args)

    def run(self, job: str, *args: str, timeout: float = 300, check: bool = True) -> str:
        log = self.log_dir / f"{job}-{time.monotonic_ns()}.log"
        with open(log, "w") as out:
            proc = subprocess.run(self.argv(job, *args), env=self.env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO_ROOT)
        text = log.read_text()
        if check and proc.returncode != 0:
            raise AssertionError(f"{job} {' '.join(args)} exited {proc.returncode}:\n{text[-4000:]}")
        return text

    def start(self, job: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{job}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        # Own session: kill -9 reaches the spark-submit JVM and its Python driver together.
        proc = subprocess.Popen(self.argv(job, *args), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=REPO_ROOT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                self.kill9(proc)

    def metrics(self, stream: str) -> dict[str, float]:
        """The running stream's metrics as {sample name: value} (labels dropped: one stream
        per endpoint; histograms' per-phase samples are left out); {} if it serves none."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_ports[stream]}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
                if "phase" not in s.labels}

    def progress(self, stream: str) -> dict | None:
        try:
            return json.loads((self.checkpoint_root / stream / "progress.json").read_text())
        except (OSError, ValueError):
            return None

    def committed_batches(self, stream: str) -> int:
        commits = self.checkpoint_root / stream / "checkpoint" / "commits"
        return len([p for p in commits.glob("[0-9]*")]) if commits.exists() else 0
