"""Bronze's projection of Kafka source rows (``to_bronze``): every column, its type and value.

The input has the Kafka source's own schema (Spark's ``kafka`` format: key, value,
topic, partition, offset, timestamp, timestampType). Bytes must come through untouched,
whatever they are, and the batch's ingestion time is one instant for every row.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pyspark.sql import functions as F

from spark_jobs.bronze_ingestion import to_bronze

KAFKA_SOURCE_DDL = ("key binary, value binary, topic string, partition int, offset bigint, "
                    "timestamp timestamp, timestampType int")
CREATED = datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC)
CREATED_US = int(CREATED.timestamp()) * 1_000_000 + CREATED.microsecond
ROWS = [
    (b"BTCUSDT", b"\x00\x00\x00\x00\x07avro", "market.crypto.trades.binance", 3, 41, CREATED, 0),
    (None, None, "market.crypto.trades.kraken", 19, 2**40, CREATED, 1),  # keyless tombstone
    (b"\xff\xfe", bytes(range(256)), "market.crypto.trades.kraken", 0, 0, CREATED, 0),  # not UTF-8
]


def test_bronze_columns_and_types(spark):
    out = to_bronze(spark.createDataFrame(ROWS, KAFKA_SOURCE_DDL))
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        ("key", "binary"), ("value", "binary"), ("topic", "string"), ("partition", "int"),
        ("offset", "bigint"), ("kafka_timestamp", "timestamp"), ("ingestion_timestamp", "timestamp"),
        ("ingestion_date", "date"),
    ]


def test_bronze_values_keep_the_bytes_and_coordinates_and_stamp_one_ingestion_time(spark):
    out = to_bronze(spark.createDataFrame(ROWS, KAFKA_SOURCE_DDL))
    before_us = time.time_ns() // 1000
    got = out.select(
        "key", "value", "topic", "partition", "offset",
        F.unix_micros("kafka_timestamp").alias("kafka_us"),
        F.unix_micros("ingestion_timestamp").alias("ingested_us"),
        F.date_format("ingestion_timestamp", "yyyy-MM-dd").alias("ingested_day"),
        F.date_format("ingestion_date", "yyyy-MM-dd").alias("ingestion_date"),
    ).collect()
    after_us = time.time_ns() // 1000
    assert [(r.key, r.value, r.topic, r.partition, r.offset, r.kafka_us) for r in got] == [
        (b"BTCUSDT", b"\x00\x00\x00\x00\x07avro", "market.crypto.trades.binance", 3, 41, CREATED_US),
        (None, None, "market.crypto.trades.kraken", 19, 2**40, CREATED_US),
        (b"\xff\xfe", bytes(range(256)), "market.crypto.trades.kraken", 0, 0, CREATED_US),
    ]
    assert len({r.ingested_us for r in got}) == 1  # one batch, one instant
    ingested_us = got[0].ingested_us
    assert before_us - 1_000_000 <= ingested_us <= after_us  # the query's own clock (ms resolution)
    # The partition key is the UTC date of that instant (the session time zone is UTC).
    day = datetime.fromtimestamp(ingested_us / 1_000_000, UTC).date().isoformat()
    assert {(r.ingested_day, r.ingestion_date) for r in got} == {(day, day)}


def test_bronze_projection_matches_the_bronze_table(spark):
    from spark_jobs.tables import BRONZE

    out = to_bronze(spark.createDataFrame(ROWS[:1], KAFKA_SOURCE_DDL))
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        (c.name, c.type) for c in BRONZE.columns]
