"""Benchmarks of the Spark tier, on a namespace of their own (default k2bench).

    spark-submit spark_jobs/bench.py gold-query [--rows 10000000] [--queries 30]
        Gold one-hour range query p50/p99 via Spark SQL and via pyiceberg + DuckDB, on a
        synthetic Gold table of --rows trades (generated once, in the table's sort order).
    spark-submit spark_jobs/bench.py bronze [--messages 1000000]
        Bronze ingest msg/s: produces --messages wire-format records to a fresh topic, then
        drains it with bronze_ingestion's query (Trigger.AvailableNow) and reports rows/s
        over the batches (startup excluded), over each whole minute of batches (the
        slowest minute is the sustained rate; at ~300K msg/s a 10-minute drain takes
        ~180M messages) and over the whole drain.

    python -m spark_jobs.bench recovery [--messages 400000] [--stream bronze_ingestion]
        Restart-to-first-committed-batch after ``kill -9``: runs the real bronze_ingestion
        with spark-submit on a fresh topic (checkpoints in a temporary K2_CHECKPOINT_ROOT),
        SIGKILLs its process group after two committed batches, restarts it, and times
        from the restart to the next entry in the checkpoint's commits/ folder.

One JSON log line per step and result on stderr (k2/log.py, ``"job":"bench"``); the
figures as one JSON line on stdout at the end, which is what `k2 bench` reads.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from k2.contracts import BRONZE_TABLE, EXCHANGES, GOLD_TABLE
from k2.log import STDERR, job_log
from k2.polling import wait_until
from k2.settings import PlatformSettings
from spark_jobs.options import job_settings, table_id

# The synthetic trades are those of the first registered venue (any one would do).
VENUE = EXCHANGES[0]

HOUR = timedelta(hours=1)
BASE = datetime(2026, 1, 1, tzinfo=UTC)


# stderr: stdout carries only the figures' JSON line that `k2 bench` parses.
log = job_log("bench", out=STDERR)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


WARMUP = 5  # untimed queries per engine before the timed ones


def ensure_tables(spark: SparkSession, s: PlatformSettings, namespace: str) -> None:
    from spark_jobs.tables import create_all

    create_all(spark, s, namespace)


def fill_gold(spark: SparkSession, s: PlatformSettings, namespace: str, rows: int, per_hour: int) -> int:
    gold = table_id(s, GOLD_TABLE, namespace)
    have = spark.table(gold).count()
    chunk = 1_000_000
    start = have
    while start < rows:
        n = min(chunk, rows - start)
        base_us = int(BASE.timestamp() * 1_000_000)
        step_us = 3_600_000_000 // per_hour
        df = spark.range(start, start + n).select(
            F.expr("uuid()").alias("message_id"),
            F.col("id").cast("string").alias("trade_id"),
            F.element_at(F.array(F.lit(f"BTC{VENUE.symbol_separator}USDT"), F.lit(f"ETH{VENUE.symbol_separator}USDT")), (F.col("id") % 2 + 1).cast("int")).alias("symbol"),
            F.lit(VENUE.enum_symbol).alias("exchange"),
            F.timestamp_micros(F.lit(base_us) + F.col("id") * step_us).alias("timestamp"),
            (F.lit(60000) + F.col("id") % 1000 / 100).cast("decimal(18,8)").alias("price"),
            (F.col("id") % 97 / 1000 + 0.001).cast("decimal(18,8)").alias("quantity"),
            F.when(F.col("id") % 2 == 0, "BTC").otherwise("ETH").alias("base_asset"),
            F.lit("USDT").alias("quote_currency"),
            F.when(F.col("id") % 3 == 0, "SELL").otherwise("BUY").alias("side"),
            F.timestamp_micros(F.lit(base_us) + F.col("id") * step_us + 1000).alias("ingestion_timestamp"),
            F.create_map(F.lit("bench"), F.lit("1")).alias("vendor_data"),
        ).withColumn("exchange_date", F.to_date("timestamp")).withColumn("exchange_hour", F.hour("timestamp"))
        df.writeTo(gold).append()
        start += n
        log.info("gold_fill", rows_written=start, rows_wanted=rows)
    return spark.table(gold).count()


def bench_gold_query(spark: SparkSession, s: PlatformSettings, args: argparse.Namespace) -> dict:
    ensure_tables(spark, s, args.namespace)
    total = fill_gold(spark, s, args.namespace, args.rows, args.per_hour)
    hours = max(1, total // args.per_hour)
    log.info("gold_rows", rows=total, hours=hours, per_hour=args.per_hour)
    rng = random.Random(7)
    picks = [BASE + HOUR * rng.randrange(hours) for _ in range(args.queries)]
    gold = table_id(s, GOLD_TABLE, args.namespace)

    def lit(ts: datetime) -> str:
        return f"TIMESTAMP '{ts:%Y-%m-%d %H:%M:%S}+00:00'"

    spark_ms = []
    # A long-lived session answers these (a notebook, the Thrift server): the first
    # WARMUP queries load the JIT and the catalog cache and are not counted.
    for i, h in enumerate([*picks[:WARMUP], *picks]):
        t0 = time.perf_counter()
        row = spark.sql(f"SELECT count(*) AS n, sum(price * quantity) AS notional FROM {gold} "
                        f"WHERE `timestamp` >= {lit(h)} AND `timestamp` < {lit(h + HOUR)}").first()
        if i >= WARMUP:
            spark_ms.append((time.perf_counter() - t0) * 1000)
    log.info("gold_query", engine="spark_sql", p50_ms=round(pct(spark_ms, .5)), p99_ms=round(pct(spark_ms, .99)),
             queries=len(spark_ms), last_hour_rows=row.n)

    import duckdb

    from k2.catalog import catalog

    table = catalog(s).load_table(f"{args.namespace}.{GOLD_TABLE}")
    duck_ms = []
    for i, h in enumerate([*picks[:WARMUP], *picks]):
        t0 = time.perf_counter()
        arrow = table.scan(row_filter=f"timestamp >= '{h.isoformat()}' and timestamp < '{(h + HOUR).isoformat()}'",
                           selected_fields=("timestamp", "price", "quantity")).to_arrow()
        with duckdb.connect() as con:
            con.register("hour_rows", arrow)
            n = con.execute("SELECT count(*), sum(price::DOUBLE * quantity::DOUBLE) FROM hour_rows").fetchall()[0][0]
        if i >= WARMUP:
            duck_ms.append((time.perf_counter() - t0) * 1000)
    log.info("gold_query", engine="pyiceberg_duckdb", p50_ms=round(pct(duck_ms, .5)), p99_ms=round(pct(duck_ms, .99)),
             queries=len(duck_ms), last_hour_rows=n)
    return {"gold_rows": total, "spark_sql_p50_ms": pct(spark_ms, .5), "spark_sql_p99_ms": pct(spark_ms, .99),
            "duckdb_p50_ms": pct(duck_ms, .5), "duckdb_p99_ms": pct(duck_ms, .99)}


def produce_frames(s: PlatformSettings, topic: str, messages: int) -> float:
    """Produce ``messages`` wire-format-looking records; returns seconds taken."""
    from confluent_kafka import Producer

    from k2.kafka_admin import TopicSpec, admin_client, ensure_topics
    from k2.kafka_client import client_config

    ensure_topics(admin_client(client_config(s, admin=True)), [TopicSpec(topic, 6)])
    p = Producer({**client_config(s), "linger.ms": 20, "batch.size": 1_000_000,
                  "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    # ~150 bytes like a v3 record, and like one not all alike: a random message_id and a
    # running trade id in every record (identical values would flatter Parquet's
    # dictionary encoding and compression), the rest as repetitive as real symbols are.
    header, tail = bytes([0, 0, 0, 0, 1]), b"BTCUSDT" * 14
    t0 = time.perf_counter()
    for i in range(messages):
        value = header + uuid.uuid4().bytes.hex().encode() + b"%012d" % i + tail
        while True:
            try:
                p.produce(topic, value=value, key=b"BTCUSDT%d" % (i % 64))
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)
    return time.perf_counter() - t0


def bench_bronze(spark: SparkSession, s: PlatformSettings, args: argparse.Namespace) -> dict:
    from spark_jobs.bronze_ingestion import WRITE_TASKS, build

    ensure_tables(spark, s, args.namespace)
    topic = f"k2bench.{uuid.uuid4().hex[:8]}.{VENUE.name}"
    bronze = table_id(s, BRONZE_TABLE, args.namespace)
    # Every batch's progress, not Spark's default last 100 (a long drain has hundreds).
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "1000000")
    try:
        secs = produce_frames(s, topic, args.messages)
        log.info("produced", records=args.messages, topic=topic, seconds=round(secs, 1),
                 msg_per_s=round(args.messages / secs))
        ns = argparse.Namespace(topics=f"{VENUE.name}={topic}", max_offsets_per_trigger=args.max_offsets,
                                write_tasks=WRITE_TASKS, fail_on_data_loss=False, namespace=args.namespace)
        with tempfile.TemporaryDirectory() as cp:
            t0 = time.perf_counter()
            q = build(spark, ns, s).option("checkpointLocation", cp).trigger(availableNow=True).toTable(bronze)
            q.awaitTermination()
            wall = time.perf_counter() - t0
            progress = [json.loads(p.json) for p in q.recentProgress]
    finally:  # a long run leaves tens of GB behind otherwise
        _drop_topic(s, topic)
        spark.sql(f"DROP TABLE IF EXISTS {bronze} PURGE")
        ensure_tables(spark, s, args.namespace)  # empty again, for the recovery bench
        log.info("cleaned_up", topic=topic, table=bronze, detail="dropped the bench topic; purged and recreated the table")
    rows = sum(p["numInputRows"] for p in progress)
    batch_ms = sum(p["durationMs"].get("triggerExecution", 0) for p in progress if p["numInputRows"])
    steady = [p for p in progress[1:] if p["numInputRows"]]
    steady_rate = (sum(p["numInputRows"] for p in steady) /
                   (sum(p["durationMs"]["triggerExecution"] for p in steady) / 1000)) if steady else 0.0
    minutes = minute_rates(steady)
    log.info("bronze", rows=rows, batches=len(progress), msg_per_s_batch_time=round(rows / (batch_ms / 1000)),
             msg_per_s_after_first_batch=round(steady_rate),
             msg_per_s_slowest_minute=round(min(minutes)) if minutes else None, minutes=len(minutes),
             msg_per_s_wall_with_startup=round(rows / wall))
    return {"bronze_rows": rows, "bronze_msg_s_batches": rows / (batch_ms / 1000),
            "bronze_msg_s_steady": steady_rate, "bronze_sustained_minutes": len(minutes),
            "bronze_msg_s_slowest_minute": min(minutes) if minutes else None, "bronze_msg_s_wall": rows / wall}


def _drop_topic(s: PlatformSettings, topic: str) -> None:
    from k2 import kafka_admin
    from k2.kafka_client import client_config

    try:
        kafka_admin.delete_topics(kafka_admin.admin_client(client_config(s, admin=True)), [topic])
    except RuntimeError as exc:  # report, do not hide the figures
        log.warning("topic_drop_failed", topic=topic, error=str(exc))


def minute_rates(batches: list[dict]) -> list[float]:
    """msg/s of consecutive runs of batches covering >= 60 s of batch time each (a
    trailing part shorter than a minute is left out): "sustained" is the slowest one."""
    rates, rows, ms = [], 0, 0
    for p in batches:
        rows += p["numInputRows"]
        ms += p["durationMs"]["triggerExecution"]
        if ms >= 60_000:
            rates.append(rows / (ms / 1000))
            rows, ms = 0, 0
    return rates


def _commits(root: str) -> int:
    from pathlib import Path

    folder = Path(root) / "bronze_ingestion" / "checkpoint" / "commits"
    return len(list(folder.glob("[0-9]*"))) if folder.exists() else 0


def _wait(condition, timeout: float) -> float:
    """Seconds until ``condition`` holds."""
    t0 = time.monotonic()
    wait_until(condition, timeout, "a new batch committed in the checkpoint", interval=0.2)
    return time.monotonic() - t0


def bench_recovery(s: PlatformSettings, args: argparse.Namespace) -> dict:
    """Orchestrates spark-submit processes (no Spark in this process)."""
    import os
    import signal
    import subprocess

    from k2.jobs import job_path, spark_submit
    from k2.settings import REPO_ROOT, env_for_children

    topic = f"k2bench.{uuid.uuid4().hex[:8]}.{VENUE.name}"
    produce_frames(s, topic, args.messages)
    root = tempfile.mkdtemp(prefix="k2bench-recovery-")
    env = {**env_for_children(s), "K2_CHECKPOINT_ROOT": root, "PYTHONPATH": str(REPO_ROOT)}
    env["PATH"] = f"{os.path.dirname(spark_submit())}{os.pathsep}{env.get('PATH', '')}"
    argv = [spark_submit(), str(job_path("bronze_ingestion")), "--namespace",
            args.namespace, "--topics", f"{VENUE.name}={topic}", "--trigger", "1 second",
            "--max-offsets-per-trigger", str(args.messages // 40)]
    stream_log = open(os.path.join(root, "bronze.log"), "a")  # noqa: SIM115
    samples = []
    proc = subprocess.Popen(argv, env=env, stdout=stream_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        cold = _wait(lambda: _commits(root) >= 1, 180)
        log.info("cold_start", seconds=round(cold, 1), detail="start to first committed batch")
        for attempt in range(args.restarts):
            before = _commits(root)
            _wait(lambda b=before: _commits(root) >= b + 1, 120)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            before = _commits(root)
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, env=env, stdout=stream_log, stderr=subprocess.STDOUT, start_new_session=True)
            _wait(lambda b=before: _commits(root) >= b + 1, 180)
            samples.append(time.monotonic() - t0)
            log.info("restart", attempt=attempt + 1, seconds=round(samples[-1], 1),
                     detail="kill -9 to first committed batch")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    log.info("recovery", max_s=round(max(samples), 1), mean_s=round(sum(samples) / len(samples), 1),
             restarts=len(samples), stream_log=stream_log.name)
    return {"cold_start_s": cold, "recovery_s": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["gold-query", "bronze", "recovery"])
    parser.add_argument("--namespace", default="k2bench", help="namespace of the bench tables (default k2bench)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="gold-query: Gold rows to have")
    parser.add_argument("--per-hour", type=int, default=40_000, help="gold-query: trades per hour")
    parser.add_argument("--queries", type=int, default=30, help="gold-query: timed queries per engine")
    parser.add_argument("--messages", type=int, default=1_000_000, help="bronze: records to ingest")
    parser.add_argument("--max-offsets", type=int, default=500_000, help="bronze: maxOffsetsPerTrigger")
    parser.add_argument("--restarts", type=int, default=3, help="recovery: kill -9/restart cycles")
    args = parser.parse_args(argv)
    if args.namespace == "market_data":
        parser.error("benchmarks write synthetic data: use a namespace of their own")
    settings = job_settings("bench")
    if args.what == "recovery":
        print(json.dumps({"bench": "recovery", **bench_recovery(settings, args)}), flush=True)
        return 0

    from spark_jobs.session import spark_session

    spark = spark_session("bench")
    try:
        result = (bench_gold_query(spark, settings, args) if args.what == "gold-query"
                  else bench_bronze(spark, settings, args))
        print(json.dumps({"bench": args.what, **result}), flush=True)
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
