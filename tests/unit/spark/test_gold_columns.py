"""Gold's columns (``with_gold_columns``) from the rows of two Silver tables, unioned as the stream does.

Each trade keeps every v3 value as Silver holds it (exchange as its enum symbol text,
trade id as text, exact decimals, µs timestamps), and gains the UTC date and hour of
its timestamp; the rows sit on either side of midnight, where date and hour turn over.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.gold_aggregation import with_gold_columns

SILVER_DDL = ("message_id string, trade_id string, symbol string, exchange string, timestamp timestamp, "
              "price decimal(18,8), quantity decimal(18,8), base_asset string, quote_currency string, "
              "side string, ingestion_timestamp timestamp, vendor_data map<string,string>, exchange_date date")
LAST_US_OF_DAY = datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC)
AFTERNOON = datetime(2026, 3, 2, 13, 30, 0, 500_000, tzinfo=UTC)


def micros(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000 + ts.microsecond


BINANCE_ROWS = [
    ("b-1", "9007199254740993", "BTCUSDT", "BINANCE", LAST_US_OF_DAY, Decimal("65000.12345678"),
     Decimal("0.00100000"), "BTC", "USDT", "BUY", MIDNIGHT, {"is_best_match": "true"}, date(2026, 3, 1)),
]
KRAKEN_ROWS = [
    ("k-1", "42", "BTC/USD", "KRAKEN", MIDNIGHT, Decimal("9999999999.99999999"), Decimal("0.00000001"),
     "BTC", "USD", "SELL", MIDNIGHT, {}, date(2026, 3, 2)),
    ("k-2", "43", "ETH/USD", "KRAKEN", AFTERNOON, Decimal("3000.5"), Decimal("2"), "ETH", "USD", "BUY",
     AFTERNOON, {"ord_type": "limit"}, date(2026, 3, 2)),
]


def silver_union(spark) -> DataFrame:
    binance = spark.createDataFrame(BINANCE_ROWS, SILVER_DDL)
    kraken = spark.createDataFrame(KRAKEN_ROWS, SILVER_DDL)
    return binance.unionByName(kraken)


def test_gold_columns_and_types(spark):
    out = with_gold_columns(silver_union(spark))
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        ("message_id", "string"), ("trade_id", "string"), ("symbol", "string"), ("exchange", "string"),
        ("timestamp", "timestamp"), ("price", "decimal(18,8)"), ("quantity", "decimal(18,8)"),
        ("base_asset", "string"), ("quote_currency", "string"), ("side", "string"),
        ("ingestion_timestamp", "timestamp"), ("vendor_data", "map<string,string>"),
        ("exchange_date", "date"), ("exchange_hour", "int"),
    ]


def test_gold_values_of_two_exchanges(spark):
    out = with_gold_columns(silver_union(spark))
    rows = out.select(
        "message_id", "trade_id", "symbol", "exchange", F.unix_micros("timestamp").alias("ts_us"), "price",
        "quantity", "base_asset", "quote_currency", "side", F.unix_micros("ingestion_timestamp").alias("in_us"),
        "vendor_data", F.date_format("exchange_date", "yyyy-MM-dd").alias("day"), "exchange_hour",
    ).orderBy("message_id").collect()
    assert [tuple(r) for r in rows] == [
        ("b-1", "9007199254740993", "BTCUSDT", "BINANCE", micros(LAST_US_OF_DAY), Decimal("65000.12345678"),
         Decimal("0.00100000"), "BTC", "USDT", "BUY", micros(MIDNIGHT), {"is_best_match": "true"}, "2026-03-01", 23),
        ("k-1", "42", "BTC/USD", "KRAKEN", micros(MIDNIGHT), Decimal("9999999999.99999999"), Decimal("0.00000001"),
         "BTC", "USD", "SELL", micros(MIDNIGHT), {}, "2026-03-02", 0),
        ("k-2", "43", "ETH/USD", "KRAKEN", micros(AFTERNOON), Decimal("3000.50000000"), Decimal("2.00000000"),
         "ETH", "USD", "BUY", micros(AFTERNOON), {"ord_type": "limit"}, "2026-03-02", 13),
    ]


def test_gold_columns_match_the_gold_table(spark):
    from spark_jobs.tables import GOLD

    out = with_gold_columns(silver_union(spark))
    assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
        (c.name, c.type) for c in GOLD.columns]
