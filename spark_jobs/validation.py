"""Silver's validation rules as column expressions: the first failing rule names the reason.

Rules run in order; a row gets the ``error_type`` and ``error_message`` of the first
rule it fails, or nulls when it passes all of them. Frame-level problems (header,
schema id, decode) come first because later rules need decoded fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

from k2.contracts import EXCHANGES, exchange

# How each exchange spells a pair (SPEC §3): Binance BTCUSDT, Kraken BTC/USD.
SYMBOL_SEPARATOR = {"binance": "", "kraken": "/"}
missing = [e.name for e in EXCHANGES if e.name not in SYMBOL_SEPARATOR]
if missing:  # pragma: no cover - a new exchange must declare its symbol convention
    raise RuntimeError(f"SYMBOL_SEPARATOR has no entry for {missing}; add it in spark_jobs/validation.py")

REQUIRED_TEXT = ("message_id", "trade_id", "symbol", "base_asset", "quote_currency")
REQUIRED_ANY = ("exchange", "timestamp", "price", "quantity", "side", "ingestion_timestamp")


@dataclass(frozen=True)
class Rule:
    error_type: str
    failed: Column  # true when the row breaks the rule
    message: Column


def _map(pairs: dict[str, str]) -> Column:
    return F.create_map(*[F.lit(x) for kv in pairs.items() for x in kv])


def rules(topic_map: dict[str, str], now: datetime, clock_skew_s: float) -> list[Rule]:
    """Rules over a frame with ``value``, ``topic``, ``schema_id``, ``schema_problem``,
    ``decoded`` (struct or null) and the v3 columns (``timestamp`` as TIMESTAMP)."""
    topic_enum = _map({t: exchange(ex).enum_symbol for ex, t in topic_map.items()})[F.col("topic")]
    topic_sep = _map({t: SYMBOL_SEPARATOR[ex] for ex, t in topic_map.items()})[F.col("topic")]
    limit = now + timedelta(seconds=clock_skew_s)
    missing_fields = F.concat_ws(", ", *[
        F.when(F.col(c).isNull() | (F.col(c) == ""), F.lit(c)) for c in REQUIRED_TEXT
    ], *[F.when(F.col(c).isNull(), F.lit(c)) for c in REQUIRED_ANY])
    expected_symbol = F.concat(F.col("base_asset"), topic_sep, F.col("quote_currency"))
    return [
        Rule("truncated_frame", F.coalesce(F.length("value"), F.lit(0)) < 5,
             F.format_string("frame of %d bytes is shorter than the 5-byte wire header",
                             F.coalesce(F.length("value"), F.lit(0)))),
        Rule("bad_magic_byte", F.substring("value", 1, 1) != F.lit(bytes([0])),
             F.format_string("magic byte is 0x%s, expected 0x00 (not Confluent wire format)",
                             F.hex(F.substring("value", 1, 1)))),
        Rule("unknown_schema_id", F.col("schema_problem").isNotNull(), F.col("schema_problem")),
        Rule("decode_error", F.col("decoded").isNull(),
             F.format_string("Avro body of %d bytes does not decode with writer schema id %d",
                             F.length("value") - 5, F.col("schema_id"))),
        Rule("unknown_topic", topic_enum.isNull(),
             F.format_string("topic %s is not one of this stream's trade topics", F.col("topic"))),
        Rule("missing_field", missing_fields != "",
             F.format_string("required field(s) missing or empty: %s", missing_fields)),
        Rule("exchange_topic_mismatch", F.col("exchange") != topic_enum,
             F.format_string("exchange %s does not match topic %s (expects %s)",
                             F.col("exchange"), F.col("topic"), topic_enum)),
        Rule("non_positive_price", F.col("price") <= 0,
             F.format_string("price %s is not > 0", F.col("price").cast("string"))),
        Rule("non_positive_quantity", F.col("quantity") <= 0,
             F.format_string("quantity %s is not > 0", F.col("quantity").cast("string"))),
        Rule("future_timestamp", F.col("timestamp") > F.lit(limit),
             F.format_string("timestamp %s is more than %ss ahead of processing time %s",
                             F.col("timestamp").cast("string"), F.lit(f"{clock_skew_s:g}"),
                             F.lit(now.isoformat()))),
        Rule("symbol_mismatch", F.col("symbol") != expected_symbol,
             F.format_string("symbol %s is inconsistent with base %s / quote %s (expected %s)",
                             F.col("symbol"), F.col("base_asset"), F.col("quote_currency"),
                             expected_symbol)),
    ]


def classify(rule_list: list[Rule]) -> tuple[Column, Column]:
    """(error_type, error_message) columns: those of the first failing rule, else null."""
    error_type: Column | None = None
    message: Column | None = None
    for rule in rule_list:
        if error_type is None:
            error_type = F.when(rule.failed, F.lit(rule.error_type))
            message = F.when(rule.failed, rule.message)
        else:
            error_type = error_type.when(rule.failed, F.lit(rule.error_type))
            message = message.when(rule.failed, rule.message)
    return error_type, message
