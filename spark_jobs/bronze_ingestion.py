"""Stream 1: every trade topic in Kafka -> Bronze, bytes untouched, coordinates kept.

Exactly once per checkpoint: the Iceberg streaming sink records the query id and
epoch in each commit, so a batch replayed after ``kill -9`` is not appended twice.
The first run starts at the earliest retained offset.

    spark-submit spark_jobs/bronze_ingestion.py [--trigger '5 seconds'|availableNow]
        [--max-offsets-per-trigger 500000] [--namespace market_data]
        [--topics binance=market.crypto.trades.binance,kraken=...]
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter

from k2.contracts import BRONZE_TABLE
from k2.settings import platform
from spark_jobs.options import add_stream_options, parse_topic_map, table_id

STREAM = "bronze_ingestion"


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


def build(spark: SparkSession, args: argparse.Namespace) -> DataStreamWriter:
    topics = sorted(set(parse_topic_map(args.topics).values()))
    kafka = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", platform().kafka_bootstrap)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")  # first run only; later runs use the checkpoint
        .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
        # Records Kafka deleted before we read them are gone either way; failing forever
        # would stop ingestion of everything else. Spark logs the gap as a warning.
        .option("failOnDataLoss", str(args.fail_on_data_loss).lower())
        .load()
    )
    return (
        to_bronze(kafka)
        .writeStream.format("iceberg")
        .outputMode("append")
        .option("fanout-enabled", "true")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stream_options(parser, STREAM)
    parser.add_argument("--topics", help="exchange=topic,... (default: the contract trade topics)")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=500_000,
                        help="cap on Kafka records per micro-batch (default 500000)")
    parser.add_argument("--fail-on-data-loss", action="store_true",
                        help="fail when Kafka deleted offsets before they were read")
    args = parser.parse_args(argv)

    from spark_jobs.streaming import run_stream

    # .toTable on the table bootstrap_tables created (never a path: the catalog owns it).
    return run_stream(STREAM, lambda spark: build(spark, args), args.trigger,
                      table=table_id(BRONZE_TABLE, args.namespace))


if __name__ == "__main__":
    raise SystemExit(main())
