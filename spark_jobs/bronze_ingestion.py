"""Stream 1: every trade topic in Kafka -> Bronze, bytes untouched, coordinates kept.

Exactly once per checkpoint: the Iceberg streaming sink records the query id and
epoch in each commit, so a batch replayed after ``kill -9`` is not appended twice.
The first run starts at the earliest retained offset.

Offsets Kafka deleted (retention) before Bronze read them cannot be recovered, and with
``failOnDataLoss=false`` Spark skips them with a mere warning, so the stream reports
them itself, without per-row work: after each batch the progress reporter compares the rows
the Kafka source returned with the size of the planned offset ranges. Equal (K2's
producers are idempotent, not transactional, so every offset is a record): nothing was
lost. Fewer: it looks up the first offset of each planned range that reached Bronze
(one small pyiceberg scan of that batch's files) and reports the head of the range
that is missing (:func:`lost_ranges`) as an ERROR line, in the progress file and in
the stream's loss ledger (k2.streams), which ``k2 streams status`` and the babysitter
read.

    spark-submit spark_jobs/bronze_ingestion.py [--trigger '2 seconds'|availableNow]
        [--max-offsets-per-trigger 500000] [--write-tasks 1] [--namespace market_data]
        [--topics binance=market.crypto.trades.binance,kraken=...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter

from k2.contracts import BRONZE_TABLE
from k2.kafka_client import spark_options
from k2.settings import PlatformSettings
from k2.streams import LostRange, checkpoint_dir
from spark_jobs.options import job_settings, parse_topic_map, stream_parser, table_id

STREAM = "bronze_ingestion"
WRITE_TASKS = 1  # tasks writing a batch: one data file per batch on the local stack
FETCH_MAX_WAIT_MS = 10  # how long the broker may hold a Kafka fetch that finds no new record
NOTHING_READ = -1  # first offset of a planned range of which no row reached Bronze
Offsets = dict[str, dict[str, int]]  # topic -> partition (as text, like Spark's JSON) -> offset
Range = tuple[str, int, int, int]  # topic, partition, start offset, end offset (exclusive)
# (ranges, batch id) -> first offset in Bronze per (topic, partition)
FirstOffsets = Callable[[list[Range], int], dict[tuple[str, int], int]]


def planned_ranges(start: Offsets, end: Offsets) -> tuple[list[Range], bool]:
    """The batch's non-empty ``[start, end)`` ranges, and whether every partition had a start.

    A partition without a start (the very first batch, a partition added later) was
    started at the earliest offset Kafka still had, so nothing of it is missing, but
    its size is unknown.
    """
    ranges, complete = [], True
    for topic, parts in sorted(end.items()):
        for part_text, until in sorted(parts.items(), key=lambda kv: int(kv[0])):
            since = start.get(topic, {}).get(part_text)
            if since is None:
                complete = False
            elif until > since:
                ranges.append((topic, int(part_text), since, until))
    return ranges, complete


def lost_ranges(ranges: list[Range], first_seen: dict[tuple[str, int], int],
                batch_id: int = -1, now: float = 0.0) -> list[LostRange]:
    """The offsets of each planned range Kafka deleted before the batch read them.

    ``first_seen``: per partition, the first offset of its range that reached Bronze
    (``NOTHING_READ``, or absent, when none did). Retention deletes from the head of a
    partition, so the gap is ``[start, first_seen)``, or the whole range.
    """
    lost = []
    for topic, part, since, until in ranges:
        first = first_seen.get((topic, part), NOTHING_READ)
        gap_end = until if first == NOTHING_READ else min(first, until)
        if gap_end > since:
            lost.append(LostRange(topic, part, since, gap_end, batch_id, now))
    return lost


def _offsets(value: object) -> Offsets:
    # Spark's progress JSON has offsets as objects (or as JSON text in older versions).
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {t: {str(p): int(o) for p, o in parts.items()} for t, parts in value.items() if isinstance(parts, dict)}


def losses_from_progress(progress: dict, first_offsets: FirstOffsets) -> list[LostRange]:
    """The ranges one batch lost, from its ``StreamingQueryProgress`` JSON (the reporter's input).

    ``first_offsets`` is only called when the batch read fewer rows than it planned.
    """
    lost: list[LostRange] = []
    for source in progress.get("sources") or []:
        if "Kafka" not in (source.get("description") or ""):
            continue
        ranges, complete = planned_ranges(_offsets(source.get("startOffset")), _offsets(source.get("endOffset")))
        planned = sum(until - since for _, _, since, until in ranges)
        rows = int(source.get("numInputRows") or 0)
        if not ranges or (complete and rows >= planned):
            continue  # every planned offset arrived: the cheap, normal case
        batch = int(progress.get("batchId", -1))
        lost += lost_ranges(ranges, first_offsets(ranges, batch), batch, time.time())
    return lost


def batch_day(checkpoint: Path, batch_id: int) -> date:
    """The ``ingestion_date`` of a batch's rows: the date of its batch timestamp.

    Streaming fixes ``current_timestamp()`` to the batch timestamp kept in the offset
    log (the same on a replay), so the lookup can prune Bronze to one day partition.
    """
    meta = json.loads((checkpoint / "offsets" / str(batch_id)).read_text().splitlines()[1])
    return datetime.fromtimestamp(int(meta["batchTimestampMs"]) / 1000, UTC).date()


def bronze_first_offsets(s: PlatformSettings, namespace: str, checkpoint: Path) -> FirstOffsets:
    """Look up, in Bronze, the first offset of each range (pyiceberg: no Spark job)."""

    def lookup(ranges: list[Range], batch_id: int) -> dict[tuple[str, int], int]:
        import pyarrow.compute as pc
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan, Or

        from k2.catalog import catalog

        wanted = [And(EqualTo("topic", t), EqualTo("partition", p), GreaterThanOrEqual("offset", s),
                      LessThan("offset", e)) for t, p, s, e in ranges]
        where = wanted[0] if len(wanted) == 1 else Or(*wanted)
        table = catalog(s).load_table(f"{namespace}.{BRONZE_TABLE}")
        day = batch_day(checkpoint, batch_id).isoformat()
        rows = table.scan(row_filter=And(EqualTo("ingestion_date", day), where),
                          selected_fields=("topic", "partition", "offset")).to_arrow()
        firsts = rows.group_by(["topic", "partition"]).aggregate([("offset", "min")])
        return {(t, int(p)): int(o) for t, p, o in zip(firsts["topic"].to_pylist(), firsts["partition"].to_pylist(),
                                                        pc.cast(firsts["offset_min"], "int64").to_pylist(),
                                                        strict=True)}

    return lookup


def to_bronze(kafka: DataFrame) -> DataFrame:
    """Kafka source rows -> Bronze rows (value and key are not touched)."""
    now = F.current_timestamp()
    return kafka.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        now.alias("ingestion_timestamp"),
        F.to_date(now).alias("ingestion_date"),
    )


def write_tasks(text: str) -> int:
    """``--write-tasks``: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def build(spark: SparkSession, args: argparse.Namespace, s: PlatformSettings) -> DataStreamWriter:
    topics = sorted(set(parse_topic_map(args.topics).values()))
    kafka = (
        spark.readStream.format("kafka")
        .options(**spark_options(s))  # bootstrap servers and, in compose, SASL
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")  # first run only; later runs use the checkpoint
        .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
        # After each fetch Spark's Kafka reader asks for the partition's earliest and
        # latest offsets, on the connection where the consumer has just sent its next
        # fetch. The broker answers a connection's requests in order and holds a fetch
        # that finds nothing new for up to fetch.max.wait.ms (500 ms by default), so each
        # partition of a small batch waited for its next record to arrive: most of a
        # batch's time at 50 trades/s per venue (jstack: the task in position()).
        .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
        # Records Kafka deleted before we read them are gone either way; failing forever
        # would stop ingestion of everything else. Spark only logs a warning, so the
        # stream reports the exact ranges itself (losses_from_progress).
        .option("failOnDataLoss", str(args.fail_on_data_loss).lower())
        .load()
    )
    return (
        # The Kafka source reads a batch as one Spark partition per Kafka partition (15 on
        # the local stack): written as they come, that is a file each per batch, and
        # Iceberg's "hash" distribution shuffled them into one before the write, a
        # stage of its own. Coalescing to --write-tasks partitions writes one file per
        # task without a shuffle (tables.py: Bronze is "none").
        to_bronze(kafka).coalesce(args.write_tasks)
        .writeStream.format("iceberg")
        .outputMode("append")
        .option("fanout-enabled", "true")
    )


def main(argv: list[str] | None = None) -> int:
    parser = stream_parser(__doc__, STREAM, topics=True)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=500_000,
                        help="cap on Kafka records per micro-batch (default 500000)")
    parser.add_argument("--write-tasks", type=write_tasks, default=WRITE_TASKS,
                        help=f"Spark tasks (and data files) that write each batch (default {WRITE_TASKS}; "
                        "more only pays on a cluster with many cores)")
    parser.add_argument("--fail-on-data-loss", action="store_true",
                        help="fail when Kafka deleted offsets before they were read")
    args = parser.parse_args(argv)
    settings = job_settings(STREAM)

    from spark_jobs.streaming import run_stream

    # .toTable on the table bootstrap_tables created (never a path: the catalog owns it).
    return run_stream(settings, STREAM, lambda spark: build(spark, args, settings), args.trigger,
                      table=table_id(settings, BRONZE_TABLE, args.namespace),
                      find_losses=lambda raw: losses_from_progress(
                          raw, bronze_first_offsets(settings, args.namespace, checkpoint_dir(STREAM, settings))))


if __name__ == "__main__":
    raise SystemExit(main())
