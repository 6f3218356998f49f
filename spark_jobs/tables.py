"""DDL of the K2 lakehouse (SPEC §3): one definition per table, owned by the Spark jobs.

Each table is described as data (columns with comments, partitioning, properties) so
the same definition creates it (``CREATE TABLE IF NOT EXISTS``, then properties and
sort order re-applied, which converges an existing table) and verifies it
(``bootstrap_tables --verify``).

Timestamps of the v3 record (µs since the epoch, UTC, Avro ``long``) are stored as
Spark ``TIMESTAMP`` (Iceberg ``timestamptz``, µs precision): lossless, and what
``hours()``/``days()`` partitioning and time-range queries need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from k2.contracts import BRONZE_TABLE, EXCHANGES, GOLD_TABLE, SILVER_DLQ_TABLE, silver_table
from k2.log import EventLog
from k2.settings import PlatformSettings
from spark_jobs.options import table_id

# Every table: Iceberg v2, zstd Parquet, and old metadata.json files cleaned on commit
# (streams commit every few seconds; without this the metadata folder grows forever).
BASE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    # Streaming writers land few rows per partition per batch: fanout avoids a sort.
    "write.spark.fanout.enabled": "true",
    # Used by expire_snapshots when no explicit age is given: longer than any outage a
    # stream reading this table is expected to survive (see retention.py).
    "history.expire.max-snapshot-age-ms": str(3 * 24 * 3600 * 1000),
    "history.expire.min-snapshots-to-keep": "20",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type as DESCRIBE shows it (lower case)
    comment: str


@dataclass(frozen=True)
class TableDef:
    name: str
    comment: str
    columns: tuple[Column, ...]
    partitioned_by: str  # Spark SQL transform list
    sort_order: str | None = None  # the order within each task's files (WRITE ... LOCALLY ORDERED BY)
    properties: dict[str, str] = field(default_factory=dict)

    def create_sql(self, s: PlatformSettings, namespace: str) -> str:
        cols = ",\n  ".join(f"`{c.name}` {c.type.upper()} COMMENT '{_q(c.comment)}'" for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {table_id(s, self.name, namespace)} (\n  {cols}\n)\n"
            f"USING iceberg\nPARTITIONED BY ({self.partitioned_by})\n"
            f"COMMENT '{_q(self.comment)}'\nTBLPROPERTIES ({_props(self.all_properties)})"
        )

    @property
    def all_properties(self) -> dict[str, str]:
        return {**BASE_PROPERTIES, **self.properties}


def _q(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _props(props: dict[str, str]) -> str:
    return ", ".join(f"'{k}' = '{v}'" for k, v in props.items())


KAFKA_COLUMNS = (
    Column("key", "binary", "Kafka record key as produced (the symbol, UTF-8)."),
    Column("value", "binary",
           "Kafka record value, byte for byte: Confluent wire format (magic 0x00, 4-byte "
           "big-endian registry schema id, Avro body)."),
    Column("topic", "string", "Kafka topic the record was read from."),
    Column("partition", "int", "Kafka partition of the record."),
    Column("offset", "bigint", "Kafka offset of the record within its partition."),
    Column("kafka_timestamp", "timestamp", "Kafka record timestamp (producer create time), UTC."),
)

V3_COLUMNS = (
    Column("message_id", "string",
           "Deterministic dedup key: UUIDv5 of '<EXCHANGE>:<symbol>:<trade_id>'."),
    Column("trade_id", "string", "Exchange trade id as decimal text."),
    Column("symbol", "string",
           "Normalized pair: base and quote joined by the exchange's separator (k2/exchanges.py), "
           "e.g. BTCUSDT, BTC/USD."),
    Column("exchange", "string",
           f"Exchange enum symbol of the v3 record ({', '.join(e.enum_symbol for e in EXCHANGES)})."),
    Column("timestamp", "timestamp",
           "Trade execution time reported by the exchange, UTC (v3 long µs, lossless)."),
    Column("price", "decimal(18,8)", "Trade price in the quote currency."),
    Column("quantity", "decimal(18,8)", "Traded amount of the base asset."),
    Column("base_asset", "string", "Base asset of the pair, from exchange metadata."),
    Column("quote_currency", "string", "Quote currency of the pair, from exchange metadata."),
    Column("side", "string", "Taker (aggressor) side: BUY or SELL."),
    Column("ingestion_timestamp", "timestamp",
           "When the worker received the frame carrying the trade, UTC."),
    Column("vendor_data", "map<string,string>", "Exchange-specific extras as strings."),
)

BRONZE = TableDef(
    name=BRONZE_TABLE,
    comment="Raw Kafka trade records of every exchange, bytes untouched (stream bronze_ingestion). "
    "Retention 7 days.",
    columns=(
        *KAFKA_COLUMNS,
        Column("ingestion_timestamp", "timestamp", "When bronze_ingestion read the record (batch time), UTC."),
        Column("ingestion_date", "date", "UTC date of ingestion_timestamp; the partition key."),
    ),
    partitioned_by="ingestion_date",
    properties={"write.distribution-mode": "none"},  # bronze_ingestion coalesces each batch
)


# Silver's tables are written by one stream that appends each batch's rows to every
# table side by side, from a batch held in few Spark partitions (spark_jobs/held.py), so
# a task's rows already fall in one or two date partitions: with fanout writers
# (BASE_PROPERTIES) they need no shuffle before the write. Iceberg's default for a
# partitioned table, "hash", ran a shuffle stage per table per batch: appending a
# 1,000-row batch to five tables took 0.81-0.89 CPU-s with it and 0.58-0.64 without, one
# data file per table either way (local[2], scratch benchmark, two runs of 90 batches).
# Bronze too: bronze_ingestion coalesces its batch (a Spark partition per Kafka
# partition as read) into --write-tasks partitions itself.
SILVER_WRITE = {"write.distribution-mode": "none"}


def silver_def(exchange_name: str) -> TableDef:
    return TableDef(
        name=silver_table(exchange_name),
        comment=f"Decoded, validated v3 trades of {exchange_name} (stream silver_transformation). "
        "Not deduplicated; retention 30 days.",
        columns=(*V3_COLUMNS, Column("exchange_date", "date", "UTC date of timestamp; the partition key.")),
        partitioned_by="exchange_date",
        properties=SILVER_WRITE,
    )


SILVER_DLQ = TableDef(
    name=SILVER_DLQ_TABLE,
    comment="Bronze records that failed decoding or validation, with the reason "
    "(stream silver_transformation). Retention 30 days.",
    columns=(
        *KAFKA_COLUMNS,
        Column("schema_id", "int", "Registry schema id from the wire header; null if the frame is too short."),
        Column("error_type", "string",
               "Machine-readable reason: bad_magic_byte, truncated_frame, unknown_schema_id, "
               "decode_error, missing_field, non_positive_price, non_positive_quantity, "
               "future_timestamp, ancient_timestamp, value_out_of_range, exchange_topic_mismatch, "
               "unknown_topic, symbol_mismatch."),
        Column("error_message", "string", "Human-readable explanation with the offending values."),
        Column("error_timestamp", "timestamp", "When the record was rejected, UTC; partitioned by day."),
    ),
    partitioned_by="days(error_timestamp)",
    properties=SILVER_WRITE,
)

GOLD = TableDef(
    name=GOLD_TABLE,
    comment="All exchanges' trades, one row per message_id (stream gold_aggregation). "
    "Partitioned by hour of timestamp, files sorted by (timestamp, trade_id). Kept forever.",
    columns=(
        *V3_COLUMNS,
        Column("exchange_date", "date", "UTC date of timestamp."),
        Column("exchange_hour", "int", "UTC hour of day (0-23) of timestamp."),
    ),
    partitioned_by="hours(`timestamp`)",
    sort_order="`timestamp`, trade_id",
    # Writes are clustered by hour (hash) and sorted by the table order within each hour's
    # file. Not "range": a range distribution samples the rows first, one more Spark job
    # in every Gold batch, and a global sort buys nothing for a few seconds of trades
    # (compaction sorts each hour as a whole). ``create_all`` sets the sort order with
    # WRITE DISTRIBUTED BY PARTITION LOCALLY ORDERED BY, which keeps "hash": a plain
    # WRITE ORDERED BY switches the table to "range".
    properties={"write.distribution-mode": "hash", "write.spark.fanout.enabled": "false"},
)


def table_defs() -> list[TableDef]:
    return [BRONZE, *(silver_def(e.name) for e in EXCHANGES), SILVER_DLQ, GOLD]


def existing_tables(spark: SparkSession, s: PlatformSettings, namespace: str) -> set[str]:
    """Tables in ``namespace`` (empty if it does not exist).

    Not ``spark.catalog.tableExists``: it also asks for views, which the JDBC catalog
    without view support answers with an exception.
    """
    namespaces = {r[0] for r in spark.sql(f"SHOW NAMESPACES IN {s.catalog_name}").collect()}
    if namespace not in namespaces:
        return set()
    return {r.tableName for r in spark.sql(f"SHOW TABLES IN {s.catalog_name}.{namespace}").collect()}


def create_all(spark: SparkSession, s: PlatformSettings, namespace: str, log: EventLog | None = None) -> None:
    """Create the namespace and every table; re-apply properties and sort order (idempotent).
    ``log``: one line per namespace and table; None is silent."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {s.catalog_name}.{namespace}")
    if log:
        log.info("namespace_ready", namespace=namespace)
    before = existing_tables(spark, s, namespace)
    for t in table_defs():
        existed = t.name in before
        spark.sql(t.create_sql(s, namespace))
        spark.sql(f"ALTER TABLE {table_id(s, t.name, namespace)} SET TBLPROPERTIES ({_props(t.all_properties)})")
        if t.sort_order:
            spark.sql(f"ALTER TABLE {table_id(s, t.name, namespace)} "
                      f"WRITE DISTRIBUTED BY PARTITION LOCALLY ORDERED BY {t.sort_order}")
        if log:
            log.info("table_ready", table=f"{namespace}.{t.name}", created=not existed,
                     detail="properties re-applied" if existed else "created")


def verify_all(spark: SparkSession, s: PlatformSettings, namespace: str) -> list[str]:
    """Problems found (empty when every table exists with the expected columns and
    properties)."""
    problems: list[str] = []
    present = existing_tables(spark, s, namespace)
    for t in table_defs():
        ident = table_id(s, t.name, namespace)
        if t.name not in present:
            problems.append(f"{namespace}.{t.name}: missing (run bootstrap_tables)")
            continue
        actual = {f.name: f.dataType.simpleString() for f in spark.table(ident).schema.fields}
        for c in t.columns:
            if c.name not in actual:
                problems.append(f"{namespace}.{t.name}: column {c.name} missing")
            elif actual[c.name] != c.type:
                problems.append(f"{namespace}.{t.name}: column {c.name} is {actual[c.name]}, expected {c.type}")
        extra = sorted(set(actual) - {c.name for c in t.columns})
        if extra:
            problems.append(f"{namespace}.{t.name}: unexpected columns {', '.join(extra)}")
        problems += [f"{p} (run bootstrap_tables to re-apply)" for p in property_problems(
            f"{namespace}.{t.name}", t.all_properties, table_properties(spark, ident))]
    return problems


def table_properties(spark: SparkSession, ident: str) -> dict[str, str]:
    return {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES {ident}").collect()}


def property_problems(name: str, expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """A line per property of ``expected`` the table does not have with that value."""
    return [f"{name}: property {k} is {actual[k] if k in actual else 'not set'}, expected {v}"
            for k, v in expected.items() if actual.get(k) != v]


def iceberg_table(spark: SparkSession, table: str):
    """The Iceberg table object (JVM) behind ``table``: its metadata and table API, no Spark job."""
    return spark._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, table)
