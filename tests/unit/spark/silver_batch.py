"""Silver's framing and checks run on hand-built Kafka rows, shared by the Silver unit tests.

Two writer schemas are known: ``GOOD_ID`` (the v3 trade schema) and ``FOREIGN_ID`` (a
registered schema that is not a trade), and the batch is checked at the fixed ``NOW``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from k2.contracts import trade_schema_text
from spark_jobs import wire
from spark_jobs.silver_transformation import check, framed, with_schema_problem
from tests.unit.spark.wire_bytes import BRONZE_DDL

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
NOW_US = int(NOW.timestamp() * 1_000_000)
GOOD_ID, FOREIGN_ID = 7, 8
SCHEMAS = {
    GOOD_ID: wire.WriterSchema(GOOD_ID, trade_schema_text(), None),
    FOREIGN_ID: wire.WriterSchema(FOREIGN_ID, None, "schema id 8 is x.Other, not com.k2.marketdata.CryptoTradeV3"),
}
CAP = 32  # schema ids looked up per batch
CLOCK_SKEW_S = 60.0


def checked_batch(spark, rows: list[tuple], topics: dict[str, str], schemas=SCHEMAS):
    """Silver's checked frame of ``rows`` (``wire_bytes.kafka_row`` tuples), unpersisted:
    persist it before filtering it, as SilverBatch does, or every filter is pushed into
    each from_avro branch."""
    frames = framed(spark.createDataFrame(rows, BRONZE_DDL))
    return check(with_schema_problem(frames, schemas, CAP), schemas, topics, NOW, CLOCK_SKEW_S)
