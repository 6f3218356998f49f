"""The whole data path on its own namespace, topics and checkpoints.

End-to-end tests, the fault matrix and the end-to-end benchmark run the real workers
and the real three streams against the real stack, isolated from the production
``market_data`` tables and topics so they can run beside a live platform:

    namespace   e2e_<run>                     (bootstrap_tables.py --namespace)
    topics      e2e-<run>.market.crypto.trades.<exchange>, ...dlq   (K2_WORKERS_TOPIC_PREFIX)
    checkpoints <workdir>/checkpoints/<stream> (K2_CHECKPOINT_ROOT)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from k2.catalog import catalog
from k2.config import load
from k2.contracts import DLQ_TOPIC, EXCHANGES, GOLD_TABLE, SILVER_DLQ_TABLE, STREAMS, trade_topic
from k2.jobs import job_path
from k2.kafka_admin import TopicSpec, admin_client, delete_topics, ensure_topics
from k2.kafka_client import client_config
from k2.polling import wait_until
from k2.settings import REPO_ROOT, PlatformSettings
from k2.streams import checkpoint_dir, lock_holder, read_progress, stop_stream
from k2ops.stack.airflow import environment
from k2ops.stack.spark import spark_submit
from spark_jobs.options import DEFAULT_TRIGGER

K2_BIN = str(Path(sys.executable).parent / "k2")


@dataclass
class IsolatedPipeline:
    workdir: Path
    run_id: str
    trigger: str = DEFAULT_TRIGGER  # the platform's
    partitions: int = 3
    streams: dict[str, subprocess.Popen] = field(default_factory=dict)
    workers: subprocess.Popen | None = None
    workers_log: Path | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.namespace = f"e2e_{self.run_id}"
        self.prefix = f"e2e-{self.run_id}."
        self.topics = {e.name: self.prefix + trade_topic(e.name) for e in EXCHANGES}
        self.dlq_topic = self.prefix + DLQ_TOPIC
        overrides = {"K2_CHECKPOINT_ROOT": str(self.workdir / "checkpoints"),
                     # The live platform's streams serve their metrics there; these serve none.
                     **{f"K2_{stream.upper()}_METRICS_PORT": "0" for stream in STREAMS}}
        self.env = {**environment(load(PlatformSettings)), **overrides}
        self.settings = load(PlatformSettings, {**os.environ, **overrides})

    # -- setup -------------------------------------------------------------------
    def create_topics(self) -> None:
        wanted = [*self.topics.values(), self.dlq_topic]
        ensure_topics(admin_client(client_config(self.settings, admin=True)), [TopicSpec(t, self.partitions) for t in wanted])

    def spark_job(self, job: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [spark_submit(), str(job_path(job)), *args],
            env=self.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        )

    def bootstrap_tables(self) -> None:
        result = self.spark_job("bootstrap_tables", "--namespace", self.namespace)
        if result.returncode != 0:
            raise RuntimeError(f"bootstrap_tables failed:\n{result.stderr[-3000:]}")

    def topic_arg(self) -> str:
        return ",".join(f"{ex}={topic}" for ex, topic in self.topics.items())

    # -- streams -----------------------------------------------------------------
    def start_stream(self, stream: str) -> subprocess.Popen:
        args = ["--namespace", self.namespace, "--trigger", self.trigger]
        if stream != "gold_aggregation":
            args += ["--topics", self.topic_arg()]
        log = open(self.workdir / f"{stream}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [spark_submit(), str(job_path(stream)), *args],
            env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.streams[stream] = proc
        return proc

    def start_streams(self, ready_timeout: float = 300) -> None:
        """Start the three streams and wait until each query runs (see :meth:`_started`)."""
        for stream in STREAMS:
            self.start_stream(stream)
        for stream in STREAMS:
            wait_until(lambda s=stream: self._started(s), ready_timeout, f"{stream} to start its query",
                       interval=1.0)

    def _started(self, stream: str) -> bool:
        """True once ``stream``'s query runs: it committed a batch, or its live process has
        written the checkpoint's ``metadata`` (Spark does at query start, before any batch).
        Not "a first batch": a stream reading an Iceberg table that holds only an empty
        append (Bronze's first batch on empty topics) plans no batch until rows arrive, and
        the caller sends rows only once the streams are up. A copy that died first is
        started again, as the babysitter would (its log keeps both runs, for the diagnosis)."""
        if self.last_batch(stream) >= 0:
            return True
        if self.streams[stream].poll() is not None:
            self.start_stream(stream)
            return False
        return (checkpoint_dir(stream, self.settings) / "metadata").exists()

    def stream_pid(self, stream: str) -> int | None:
        return lock_holder(stream, self.settings)

    def last_batch(self, stream: str) -> int:
        progress = read_progress(stream, self.settings)
        return progress.batch_id if progress else -1

    def kill_stream(self, stream: str) -> None:
        """kill -9 the stream's whole process group (as an OOM killer or a crash would)."""
        proc = self.streams.get(stream)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        stop_stream(stream, self.settings, timeout_s=30)

    # -- workers -----------------------------------------------------------------
    def worker_env(self, simulator_env: dict[str, str], **extra: str) -> dict[str, str]:
        """``simulator_env``: ``SimulatorThread.worker_env()``, the simulator's URLs (gap
        backfill asks its REST history too, never the live one's) and symbols per venue."""
        venues = tuple(f"K2_{e.name.upper()}_" for e in EXCHANGES)
        env = {k: v for k, v in self.env.items() if not k.startswith(("K2_WORKERS_", *venues))}
        env.update(simulator_env)
        env.update({f"{venue}METRICS_PORT": "0" for venue in venues})
        env.update({
            "K2_WORKERS_STATE_DIR": str(self.workdir / "worker-state"),
            "K2_WORKERS_REFRESH_SYMBOLS": "false", "K2_WORKERS_TOPIC_PREFIX": self.prefix,
            "K2_WORKERS_WATCHDOG_S": "3", "K2_WORKERS_BACKOFF_BASE_S": "0.2",
            "K2_WORKERS_BACKOFF_CAP_S": "2", "K2_WORKERS_SUMMARY_INTERVAL_S": "5",
            "K2_SUPERVISOR_BACKOFF_BASE_S": "0.5", "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    def start_workers(self, simulator_env: dict[str, str], phase: str | None = None,
                      exchanges: Iterable[str] = (), **extra: str) -> subprocess.Popen:
        """The workers under their supervisor, fed from the simulator ``simulator_env`` names:
        every registered venue's, or only ``exchanges``' (the venues a simulator serves).

        ``phase`` names one market run among several on the same pipeline: its log and
        its progress state are its own (``workers-<phase>.log``, ``worker-state-<phase>``),
        so a new simulator's trade ids are never compared with an earlier one's watermark.
        """
        suffix = f"-{phase}" if phase else ""
        self.workers_log = self.workdir / f"workers{suffix}.log"
        if phase:
            extra = {"K2_WORKERS_STATE_DIR": str(self.workdir / f"worker-state{suffix}"), **extra}
        log = open(self.workers_log, "ab")  # noqa: SIM115 - owned by the child
        self.workers = subprocess.Popen(
            [K2_BIN, "workers", *(arg for name in exchanges for arg in ("--exchange", name))],
            env=self.worker_env(simulator_env, **extra), cwd=REPO_ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self.workers

    def stop_workers(self, timeout: float = 60) -> int | None:
        """SIGTERM the supervisor: workers flush their producers, then exit."""
        if self.workers is None or self.workers.poll() is not None:
            return self.workers.returncode if self.workers else None
        self.workers.send_signal(signal.SIGTERM)
        return self.workers.wait(timeout)

    # -- reading -----------------------------------------------------------------
    def table(self, name: str):
        return catalog(self.settings).load_table(f"{self.namespace}.{name}")

    def gold(self):
        return self.table(GOLD_TABLE).scan().to_arrow()

    def silver_dlq(self):
        return self.table(SILVER_DLQ_TABLE).scan().to_arrow()

    # -- teardown ----------------------------------------------------------------
    def stop(self) -> None:
        self.stop_workers()
        for stream in list(self.streams):
            self.kill_stream(stream)

    def cleanup(self) -> None:
        self.stop()
        cat = catalog(self.settings)
        for (_, table) in cat.list_tables(self.namespace):
            cat.purge_table(f"{self.namespace}.{table}")
        cat.drop_namespace(self.namespace)
        delete_topics(admin_client(client_config(self.settings, admin=True)), [*self.topics.values(), self.dlq_topic])

