"""Silver's validation rules as column expressions: the first failing rule names the reason.

Rules run in order; a row gets the ``error_type`` and ``error_message`` of the first
rule it fails, or nulls when it passes all of them. Frame-level problems (header,
schema id, decode) come first because later rules need decoded fields.

Every expression is total under ANSI mode (no cast, substring or arithmetic that can
throw on any value), and every rule that compares a field runs after ``missing_field``,
so a null never slips through a comparison that evaluates to null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from k2.contracts import EXCHANGES, exchange
from k2.ledger import epoch_us
from spark_jobs import wire

# How each exchange spells a pair (SPEC §3), from its registry line (k2.exchanges).
SYMBOL_SEPARATOR = {e.name: e.symbol_separator for e in EXCHANGES}

REQUIRED_TEXT = ("message_id", "trade_id", "symbol", "base_asset", "quote_currency")
REQUIRED_ANY = ("exchange", "timestamp", "price", "quantity", "side", "ingestion_timestamp")
TIMESTAMPS = ("timestamp", "ingestion_timestamp")

# The oldest instant a trade (or its receipt) can have: Bitcoin's genesis block; no
# crypto trade predates it, on any exchange, however deep a backfill goes. Fixed
# rather than "now minus N days" so a replay or a late backfill never turns valid
# trades into rejects. What it catches in practice is a unit mistake: seconds or
# milliseconds sent as microseconds land in January 1970 (0, negatives and Long.MIN
# too). Nanoseconds sent as microseconds land tens of millennia ahead and fail
# future_timestamp instead.
OLDEST_TIMESTAMP = datetime(2009, 1, 3, tzinfo=UTC)


@dataclass(frozen=True)
class Rule:
    error_type: str
    failed: Column  # true when the row breaks the rule
    message: Column


def _map(pairs: dict[str, str]) -> Column:
    return F.create_map(*[F.lit(x) for kv in pairs.items() for x in kv])


def _first_of(fields: tuple[str, ...], failed) -> Column:
    """The name of the first field for which ``failed(name)`` holds."""
    out = F.when(failed(fields[0]), F.lit(fields[0]))
    for f in fields[1:]:
        out = out.when(failed(f), F.lit(f))
    return out


# The batch's clock, as columns: the rules refer to them rather than to literals, so the
# rules are built once per stream and each batch only adds these (clock_columns).
# Neither is a timestamp literal: Spark writes a TIMESTAMP (or LONG) literal's value into
# the generated Java code, so a new clock every batch meant new code, compiled anew
# (two Janino compilations per batch, a tenth of Silver's CPU); decimal and string
# literals are passed to the generated code as references, and the code is reused.
LATEST_ALLOWED = "_k2_latest_allowed_us"  # processing time + clock skew, µs since the epoch
NOW_TEXT = "_k2_now_text"  # processing time, ISO 8601, for messages
MICROS = "decimal(20,0)"


def clock_columns(now: datetime, clock_skew_s: float) -> dict[str, Column]:
    """The columns :func:`rules` reads the batch's processing time from."""
    latest_us = epoch_us(now + timedelta(seconds=clock_skew_s))
    return {LATEST_ALLOWED: F.lit(Decimal(latest_us)).cast(MICROS), NOW_TEXT: F.lit(now.isoformat())}


def rules(topic_map: dict[str, str], clock_skew_s: float, oldest: datetime = OLDEST_TIMESTAMP) -> list[Rule]:
    """Rules over a frame with ``value``, ``topic``, ``schema_id``, ``schema_problem``,
    ``decoded`` (true or null), ``out_of_range`` (names of fields whose decoded value
    does not fit Silver's type, or empty), the v3 columns (timestamps as TIMESTAMP) and
    the batch's :func:`clock_columns`."""
    topic_enum = _map({t: exchange(ex).enum_symbol for ex, t in topic_map.items()})[F.col("topic")]
    topic_sep = _map({t: SYMBOL_SEPARATOR[ex] for ex, t in topic_map.items()})[F.col("topic")]
    limit = F.col(LATEST_ALLOWED)
    missing_fields = F.concat_ws(", ", *[
        F.when(F.col(c).isNull() | (F.col(c) == ""), F.lit(c)) for c in REQUIRED_TEXT
    ], *[F.when(F.col(c).isNull(), F.lit(c)) for c in REQUIRED_ANY])
    expected_symbol = F.concat(F.col("base_asset"), topic_sep, F.col("quote_currency"))
    late = _first_of(TIMESTAMPS, lambda c: F.unix_micros(F.col(c)).cast(MICROS) > limit)
    early = _first_of(TIMESTAMPS, lambda c: F.col(c) < F.lit(oldest))
    return [
        Rule("truncated_frame", wire.frame_length() < wire.HEADER_BYTES,
             F.format_string("frame of %d bytes is shorter than the 5-byte wire header",
                             wire.frame_length())),
        Rule("bad_magic_byte", ~wire.magic_ok(),
             F.format_string("magic byte is 0x%s, expected 0x00 (not Confluent wire format)",
                             F.hex(F.substring("value", 1, 1)))),
        Rule("unknown_schema_id", F.col("schema_problem").isNotNull(), F.col("schema_problem")),
        Rule("decode_error", F.col("decoded").isNull(),
             F.format_string("Avro body of %d bytes does not decode with writer schema id %d",
                             F.length("value") - 5, F.col("schema_id"))),
        Rule("unknown_topic", topic_enum.isNull(),
             F.format_string("topic %s is not one of this stream's trade topics", F.col("topic"))),
        Rule("value_out_of_range", F.coalesce(F.col("out_of_range"), F.lit("")) != "",
             F.format_string("field(s) %s decode but do not fit Silver's types (decimal(18,8) for "
                             "price and quantity)", F.col("out_of_range"))),
        Rule("missing_field", missing_fields != "",
             F.format_string("required field(s) missing or empty: %s", missing_fields)),
        Rule("exchange_topic_mismatch", F.col("exchange") != topic_enum,
             F.format_string("exchange %s does not match topic %s (expects %s)",
                             F.col("exchange"), F.col("topic"), topic_enum)),
        Rule("non_positive_price", F.col("price") <= 0,
             F.format_string("price %s is not > 0", F.col("price").cast("string"))),
        Rule("non_positive_quantity", F.col("quantity") <= 0,
             F.format_string("quantity %s is not > 0", F.col("quantity").cast("string"))),
        Rule("future_timestamp", late.isNotNull(),
             F.format_string("%s %s is more than %ss ahead of processing time %s", late,
                             _value_of(late), F.lit(f"{clock_skew_s:g}"), F.col(NOW_TEXT))),
        Rule("ancient_timestamp", early.isNotNull(),
             F.format_string("%s %s is before %s (Bitcoin's genesis block), so no trade can have it; "
                             "often seconds or milliseconds sent as microseconds", early,
                             _value_of(early), F.lit(oldest.isoformat()))),
        Rule("symbol_mismatch", F.col("symbol") != expected_symbol,
             F.format_string("symbol %s is inconsistent with base %s / quote %s (expected %s)",
                             F.col("symbol"), F.col("base_asset"), F.col("quote_currency"),
                             expected_symbol)),
    ]


def _value_of(field_name: Column) -> Column:
    """The named timestamp column's value as text."""
    return F.when(field_name == "timestamp", F.col("timestamp").cast("string")).otherwise(
        F.col("ingestion_timestamp").cast("string"))


@dataclass(frozen=True)
class Classifier:
    """The columns :func:`classify` adds, built once from a rule list (building them is
    hundreds of py4j calls: a stream builds them once, not per batch)."""

    failed_rule: Column
    error_type: Column
    error_message: Column


def classifier(rule_list: list[Rule]) -> Classifier:
    """The rules are evaluated once, into the index of the first that fails; type and
    message are then picked by that index. Spelling each out as its own CASE over every
    rule would repeat every condition (and Spark's generated code would outgrow the JVM's
    method limit and fall back to the interpreter)."""
    index = F.when(rule_list[0].failed, F.lit(0))
    for i, rule in enumerate(rule_list[1:], start=1):
        index = index.when(rule.failed, F.lit(i))
    idx = F.col("failed_rule")
    error_type = F.when(idx == 0, F.lit(rule_list[0].error_type))
    message = F.when(idx == 0, rule_list[0].message)
    for i, rule in enumerate(rule_list[1:], start=1):
        error_type = error_type.when(idx == i, F.lit(rule.error_type))
        message = message.when(idx == i, rule.message)
    # A message is never empty, even if a rule's text came out null.
    return Classifier(index, error_type, F.when(idx.isNotNull(), F.coalesce(message, error_type)))


def classify(frame: DataFrame, rules: list[Rule] | Classifier) -> DataFrame:
    """``frame`` plus ``error_type`` and ``error_message``: those of the first failing
    rule, else null (see :func:`classifier`)."""
    c = rules if isinstance(rules, Classifier) else classifier(rules)
    indexed = frame.withColumn("failed_rule", c.failed_rule)
    return indexed.select(*frame.columns, c.error_type.alias("error_type"), c.error_message.alias("error_message"))
