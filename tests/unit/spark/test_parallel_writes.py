"""Writes side by side from a streaming query's foreachBatch (spark_jobs/parallel.py).

A real local Spark: a rate stream whose foreachBatch writes each batch to four parquet
"tables" with ``in_parallel``, as Silver commits its tables. Each thread must keep the
query's properties but run its write as an execution of its own.
"""

from __future__ import annotations

import threading
import time

import pytest

from spark_jobs.parallel import EXECUTION_PROPERTIES, in_parallel

TABLES = 4
BATCHES = 3


def test_in_parallel_returns_in_order_and_raises_the_first_error_after_all_ended():
    ended: list[int] = []

    def call(i: int):
        def run() -> int:
            time.sleep(0.05 * (3 - i))  # the last call ends first
            ended.append(i)
            if i in (1, 2):
                raise ValueError(f"call {i}")
            return i
        return run

    assert in_parallel([call(0), call(3)]) == [0, 3]
    ended.clear()
    with pytest.raises(ValueError, match="call 1"):
        in_parallel([call(i) for i in range(4)])
    assert sorted(ended) == [0, 1, 2, 3]


def test_writes_side_by_side_in_foreach_batch_land_whole_as_executions_of_their_own(spark, tmp_path):
    seen: list[dict] = []  # per write: batch, thread, the properties it ran with
    failures: list[BaseException] = []
    lock = threading.Lock()

    def write(df, batch_id: int, table: int) -> int:
        sc = spark.sparkContext
        with lock:
            seen.append({
                "batch": batch_id, "thread": threading.get_ident(),
                "query_id": sc.getLocalProperty("sql.streaming.queryId"),
                **{key: sc.getLocalProperty(key) for key in EXECUTION_PROPERTIES},
            })
        df.withColumn("batch", df.value * 0 + batch_id).write.mode("append").parquet(str(tmp_path / f"t{table}"))
        return table

    done: list[int] = []  # batches written whole; later ones are left alone

    def handler(batch, batch_id: int) -> None:
        if len(done) >= BATCHES:
            return
        try:
            rows = batch.persist()
            rows.count()
            assert in_parallel([lambda t=t: write(rows, batch_id, t) for t in range(TABLES)]) == list(range(TABLES))
            rows.write.mode("append").parquet(str(tmp_path / "source"))
            rows.unpersist()
            done.append(batch_id)
        except BaseException as exc:
            failures.append(exc)
            raise

    query = (spark.readStream.format("rate").option("rowsPerSecond", 200).load()
             .writeStream.foreachBatch(handler).trigger(processingTime="200 milliseconds")
             .option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    try:
        deadline = time.monotonic() + 120
        while len(done) < BATCHES and not failures:
            assert query.isActive, query.exception()
            assert time.monotonic() < deadline, f"only {len(done)} batches in 120 s"
            time.sleep(0.1)
    finally:
        query.stop()
    assert not failures, failures[0]

    batches = sorted({s["batch"] for s in seen})
    assert batches == done
    source = spark.read.parquet(str(tmp_path / "source"))
    source_by_batch = {r.value: r for r in source.selectExpr("value").collect()}
    assert len(source_by_batch) == source.count() > 0  # the rate source's values are unique
    for table in range(TABLES):
        written = spark.read.parquet(str(tmp_path / f"t{table}"))
        # Every row of every completed batch, once, in each table.
        assert sorted(r.value for r in written.select("value").collect()) == sorted(source_by_batch)
    for s in seen:
        assert s["query_id"] == str(query.id), s  # the query's properties go with each thread
        assert all(s[key] is None for key in EXECUTION_PROPERTIES), s  # but not the batch's execution
    for batch in batches:
        threads = {s["thread"] for s in seen if s["batch"] == batch}
        assert len(threads) == TABLES, (batch, threads)  # each write in its own thread
