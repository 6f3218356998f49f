"""Stream 2: Bronze -> silver_<exchange>_trades (decoded, validated) + silver_dlq (rejects).

Per micro-batch (``foreachBatch``): read the wire header with column expressions,
look up the writer schema of each schema id present in the batch (registry, cached),
decode each id's rows with ``from_avro`` and that schema (PERMISSIVE: undecodable ->
null -> DLQ), validate with column rules (spark_jobs/validation.py), then append the
valid rows to their exchange's Silver table and every other row to the DLQ. Nothing
runs Python per row; nothing is dropped. Appends are exactly once per checkpoint
(spark_jobs/batch_commits.py). Bronze is read skipping delete/overwrite snapshots,
so retention and compaction on Bronze do not break the stream.

    spark-submit spark_jobs/silver_transformation.py [--trigger '5 seconds'|availableNow]
        [--namespace market_data] [--topics binance=...,kraken=...]
        [--clock-skew-seconds 60] [--max-rows-per-batch 1000000]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro
from pyspark.sql.streaming import DataStreamWriter

from k2.contracts import BRONZE_TABLE, SILVER_DLQ_TABLE, silver_table
from k2.settings import platform
from k2.streams import checkpoint_dir
from spark_jobs import wire
from spark_jobs.batch_commits import BatchCommits
from spark_jobs.options import add_stream_options, parse_topic_map, table_id
from spark_jobs.streaming import iceberg_stream
from spark_jobs.tables import KAFKA_COLUMNS, V3_COLUMNS
from spark_jobs.validation import classify, rules

STREAM = "silver_transformation"
KAFKA_NAMES = [c.name for c in KAFKA_COLUMNS]
TIMESTAMP_FIELDS = {"timestamp", "ingestion_timestamp"}  # v3 long µs -> TIMESTAMP


def _v3_projection(schema: wire.WriterSchema | None) -> list:
    """The v3 columns from ``decoded`` (typed as in Silver); absent fields are null."""
    fields = schema.fields if schema else set()
    out = []
    for c in V3_COLUMNS:
        if c.name not in fields:
            value = F.lit(None)
        elif c.name in TIMESTAMP_FIELDS:
            value = F.timestamp_micros(F.col(f"decoded.{c.name}"))
        else:
            value = F.col(f"decoded.{c.name}")
        out.append(value.cast(c.type).alias(c.name))
    return out


def decode(framed: DataFrame, schemas: dict[int, wire.WriterSchema]) -> DataFrame:
    """Rows with ``decoded`` and the v3 columns; each schema id decoded with its own schema."""
    parts = []
    usable = {sid: s for sid, s in schemas.items() if s.text}
    for sid, schema in usable.items():
        part = framed.where(F.col("schema_id") == sid).withColumn(
            "decoded", from_avro(wire.body(), schema.text, {"mode": "PERMISSIVE"}))
        # PERMISSIVE from_avro yields a struct of all-null fields for a malformed body; a
        # good v3 body never does (its fields are non-null), so that is decode_error.
        all_null = reduce(lambda a, b: a & b, [F.col(f"decoded.{f}").isNull() for f in schema.fields])
        ok = F.col("decoded").isNotNull() & ~all_null
        parts.append(part.select(*framed.columns, F.when(ok, True).alias("decoded"),
                                 *_v3_projection(schema)))
    # Everything not decodable by a known trade schema: bad header or unusable id.
    rest = framed.where(~F.col("schema_id").isin(list(usable)) | F.col("schema_id").isNull()
                        | ~wire.magic_ok()) if usable else framed
    if usable:
        parts = [p.where(wire.magic_ok()) for p in parts]
    parts.append(rest.select(*framed.columns, F.lit(None).cast("boolean").alias("decoded"),
                             *_v3_projection(None)))
    return reduce(DataFrame.unionByName, parts)


class SilverBatch:
    """The ``foreachBatch`` function: one Bronze micro-batch -> Silver tables + DLQ."""

    def __init__(self, namespace: str, topic_map: dict[str, str], clock_skew_s: float):
        self.namespace = namespace
        self.topic_map = topic_map
        self.clock_skew_s = clock_skew_s
        self.schemas = wire.SchemaCache(platform().registry_url)
        self.commits = BatchCommits(checkpoint_dir(STREAM), self.say)

    @staticmethod
    def say(message: str) -> None:
        from spark_jobs.streaming import say

        say(STREAM, message)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        now = datetime.now(UTC)  # one clock per batch: reruns of a stage agree
        framed = batch.select(*KAFKA_NAMES, wire.schema_id().alias("schema_id")).persist()
        try:
            ids = [r.schema_id for r in framed.where(wire.magic_ok() & F.col("schema_id").isNotNull())
                   .select("schema_id").distinct().collect()]
            schemas = {sid: self.schemas.get(sid) for sid in ids}
            problems = {sid: s.problem for sid, s in schemas.items() if s.problem}
            with_problem = framed.withColumn(
                "schema_problem",
                F.coalesce(*[F.when(F.col("schema_id") == sid, F.lit(p)) for sid, p in problems.items()],
                           F.lit(None).cast("string")) if problems else F.lit(None).cast("string"))
            error_type, message = classify(rules(self.topic_map, now, self.clock_skew_s))
            checked = (decode(with_problem, schemas)
                       .withColumn("error_type", error_type)
                       .withColumn("error_message", message)
                       .persist())
            try:
                self._write(checked, batch_id, now)
            finally:
                checked.unpersist()
        finally:
            framed.unpersist()
        self.commits.batch_done()

    def _write(self, checked: DataFrame, batch_id: int, now: datetime) -> None:
        stats = checked.groupBy("topic", "error_type").count().collect()
        valid_by_topic = {r.topic: r["count"] for r in stats if r.error_type is None}
        by_type: dict[str, int] = {}
        for r in stats:
            if r.error_type is not None:
                by_type[r.error_type] = by_type.get(r.error_type, 0) + r["count"]
        v3 = [c.name for c in V3_COLUMNS]
        written = []
        for ex, topic in self.topic_map.items():
            if valid_by_topic.get(topic):
                valid = checked.where(F.col("error_type").isNull() & (F.col("topic") == topic)).select(
                    *v3, F.to_date("timestamp").alias("exchange_date"))
                self.commits.append(valid, table_id(silver_table(ex), self.namespace), batch_id)
                written.append(f"{silver_table(ex)}={valid_by_topic[topic]}")
        rejected = checked.where(F.col("error_type").isNotNull())
        if by_type:
            dlq = rejected.select(*KAFKA_NAMES, "schema_id", "error_type", "error_message",
                                  F.lit(now).alias("error_timestamp"))
            self.commits.append(dlq, table_id(SILVER_DLQ_TABLE, self.namespace), batch_id)
            written.append(f"{SILVER_DLQ_TABLE}={sum(by_type.values())} {by_type}")
        if written:
            self.say(f"batch {batch_id}: " + ", ".join(written))


def build(spark: SparkSession, args: argparse.Namespace) -> DataStreamWriter:
    bronze = iceberg_stream(spark, table_id(BRONZE_TABLE, args.namespace), args.max_rows_per_batch)
    handler = SilverBatch(args.namespace, parse_topic_map(args.topics), args.clock_skew_seconds)
    return bronze.writeStream.foreachBatch(handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stream_options(parser, STREAM)
    parser.add_argument("--topics", help="exchange=topic,... (default: the contract trade topics)")
    parser.add_argument("--clock-skew-seconds", type=float, default=60.0,
                        help="how far into the future a trade timestamp may be (default 60)")
    parser.add_argument("--max-rows-per-batch", type=int, default=1_000_000,
                        help="soft cap on Bronze rows per micro-batch (default 1000000)")
    args = parser.parse_args(argv)

    from spark_jobs.streaming import run_stream

    return run_stream(STREAM, lambda spark: build(spark, args), args.trigger)


if __name__ == "__main__":
    raise SystemExit(main())
