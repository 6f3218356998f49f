"""Property: any batch of byte sequences on the trade topics goes, row by row, exactly once
to its exchange's Silver table or to the DLQ with a reason, and no batch throws.

Hypothesis draws the cases (random bytes, every edge of the 5-byte header, valid headers
with garbage bodies, valid Avro with extreme field values); each case is expanded with a
truncation and a byte flip, and the whole list becomes one DataFrame, because one Spark
job per batch is what a stream runs (and one per row would take hours). Each batch also
carries known-good trades, which must come out in Silver.

Repeatable: the unit tier is derandomized (fixed seed, no example database). `make fuzz`
sets ``FUZZ_SCALE`` (examples x scale) and runs a new seed each time, printed so that
``FUZZ_SEED=<n>`` repeats it, the same knobs as the worker parsers' campaign.
"""

from __future__ import annotations

import os
import random
import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from spark_jobs.silver_transformation import dlq_rows, silver_rows
from tests.unit.spark.silver_batch import FOREIGN_ID, GOOD_ID, NOW, NOW_US, checked_batch
from tests.unit.spark.wire_bytes import (
    LONG_MAX,
    LONG_MIN,
    frame,
    good_fields,
    header_reason,
    kafka_row,
    v3_body,
    varint,
)

TOPICS = {"binance": "f.binance", "kraken": "f.kraken"}
UNKNOWN_TOPIC = "f.nasdaq"
GOOD_PER_BATCH = 10

UNIT_EXAMPLES = 6  # batches in the unit tier: ~1,000 rows, a Spark job each
SCALE = int(os.environ.get("FUZZ_SCALE") or "1")
CAMPAIGN_SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
FUZZ_SETTINGS = settings(
    max_examples=UNIT_EXAMPLES * SCALE, derandomize=SCALE == 1 and not os.environ.get("FUZZ_SEED"),
    database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture])

# -- strategies --------------------------------------------------------------------------

INT_EDGES = [0, 1, GOOD_ID, FOREIGN_ID, -1, 2**31 - 1, 2**31, 2**32 - 1]
schema_ids = st.sampled_from(INT_EDGES) | st.integers(-(2**31), 2**32 - 1)
timestamps = st.sampled_from([0, -1, LONG_MIN, LONG_MAX, NOW_US // 1000, NOW_US // 1_000_000,
                              NOW_US * 1000, NOW_US - 10**7, NOW_US + 10**10]) | st.integers(LONG_MIN, LONG_MAX)
decimals = st.sampled_from([0, 1, -1, 10**18 - 1, -(10**18 - 1), 10**18, 2**63, -(2**63) - 1, 2**64 + 5,
                            10**38 - 1, 10**38, 2**300]) | st.integers(-(10**20), 10**20)
texts = st.sampled_from(["", "BTCUSDT", "BTC/USD", "BTC", "USDT", "USD", "ROW"]) | st.text(max_size=12)
vendor = (st.dictionaries(st.text(max_size=4), st.text(max_size=16), max_size=3)
          | st.just({"blob": "x" * 200_000}))
enum_index = st.sampled_from([0, 1, 2, -1, 10**6])
avro_fields = st.fixed_dictionaries({
    "message_id": st.sampled_from(["ROW", "ROW", ""]), "trade_id": texts, "symbol": texts,
    "exchange": enum_index, "timestamp": timestamps, "price": decimals, "quantity": decimals,
    "base_asset": texts, "quote_currency": texts, "side": enum_index,
    "ingestion_timestamp": timestamps, "vendor_data": vendor,
})
# A value is a function of its row number (valid-looking bodies name their row in message_id).
values = st.one_of(
    st.binary(max_size=40).map(lambda b: lambda n: b),
    st.builds(lambda sid, body, magic: lambda n: frame(sid, body, magic),
              schema_ids, st.binary(max_size=24), st.sampled_from([0, 0, 0, 1, 255])),
    st.binary(max_size=80).map(lambda body: lambda n: frame(GOOD_ID, body)),
    st.builds(lambda bomb, at: lambda n: frame(GOOD_ID, varint(bomb) + b"\x00" * at),
              st.sampled_from([2**31 - 20, 2**40, -(2**31), LONG_MAX]), st.integers(0, 4)),
    avro_fields.map(lambda f: lambda n: frame(GOOD_ID, v3_body(
        {**f, "message_id": f["message_id"].replace("ROW", f"row-{n}")}))),
)
cases = st.tuples(values, st.sampled_from([*TOPICS.values(), UNKNOWN_TOPIC]))


def expand(drawn: list, seed: int) -> list[tuple[str, bytes | None]]:
    """(topic, value) rows: each drawn case, one truncation and one byte flip of it, then
    known-good trades. The row number is the Kafka offset."""
    rnd = random.Random(seed)
    rows: list[tuple[str, bytes | None]] = []
    for make, topic in drawn:
        value = make(len(rows))
        rows.append((topic, value))
        rows.append((topic, value[: rnd.randrange(len(value) + 1)]))
        if value:
            flipped = bytearray(value)
            flipped[rnd.randrange(len(flipped))] ^= 1 << rnd.randrange(8)
            rows.append((topic, bytes(flipped)))
    for i in range(GOOD_PER_BATCH):
        ex = "binance" if i % 2 else "kraken"
        rows.append((TOPICS[ex], frame(GOOD_ID, v3_body(good_fields(ex, len(rows), NOW_US - 10**6 * i)))))
    rows.append((TOPICS["binance"], None))  # a tombstone
    return rows


# -- the property --------------------------------------------------------------------------


def run_batch(spark, rows: list[tuple[str, bytes | None]]) -> None:
    checked = checked_batch(spark, [kafka_row(t, v, n) for n, (t, v) in enumerate(rows)], TOPICS).persist()
    try:
        out = [dlq_rows(checked, NOW).select(
            F.lit("dlq").alias("dest"), "offset", "error_type", "error_message",
            F.lit(None).cast("string").alias("message_id"))]
        for ex, topic in TOPICS.items():
            out.append(silver_rows(checked, topic).select(
                F.lit(ex).alias("dest"), F.lit(None).cast("bigint").alias("offset"),
                F.lit(None).cast("string").alias("error_type"), F.lit(None).cast("string").alias("error_message"),
                "message_id"))
        got = out[0].unionByName(out[1]).unionByName(out[2]).collect()
    finally:
        checked.unpersist()

    dlq = {r.offset: r for r in got if r.dest == "dlq"}
    silver = [r for r in got if r.dest != "dlq"]
    assert len(dlq) == len([r for r in got if r.dest == "dlq"]), "a row reached the DLQ twice"
    assert len(dlq) + len(silver) == len(rows), "rows lost or doubled"
    assert all(r.error_type and r.error_message for r in dlq.values())
    seen: set[int] = set()
    for r in silver:
        if r.message_id.startswith("row-") and r.message_id[4:].isdigit():
            n = int(r.message_id[4:])
            assert n not in seen and n not in dlq, f"row {n} went to Silver twice or to both"
            assert rows[n][0] == TOPICS[r.dest], f"row {n} of {rows[n][0]} reached silver_{r.dest}"
            seen.add(n)
    for n, (_topic, value) in enumerate(rows):
        expected = header_reason(value, GOOD_ID)
        if expected:
            assert n in dlq and dlq[n].error_type == expected, (n, value[:16] if value else value, dlq.get(n))
    for n in range(len(rows) - GOOD_PER_BATCH - 1, len(rows) - 1):
        assert n in seen, f"known-good row {n} did not reach Silver: {dlq.get(n)}"


def test_silver_property_holds_for_hostile_batches(spark):
    stats = {"batches": 0, "rows": 0}
    started = time.monotonic()

    @FUZZ_SETTINGS
    @given(st.lists(cases, min_size=30, max_size=60), st.integers(0, 2**32))
    def prop(drawn, expand_seed):
        rows = expand(drawn, expand_seed)
        run_batch(spark, rows)
        stats["batches"] += 1
        stats["rows"] += len(rows)

    if not FUZZ_SETTINGS.derandomize:
        prop = seed(CAMPAIGN_SEED)(prop)
    prop()
    elapsed = time.monotonic() - started
    how = "derandomized" if FUZZ_SETTINGS.derandomize else f"FUZZ_SEED={CAMPAIGN_SEED}"
    print(f"\nsilver fuzz ({how}, scale {SCALE}): {stats['rows']} rows in {stats['batches']} batches, "
          f"{elapsed:.1f} s, {stats['rows'] / elapsed:.0f} rows/s")
    assert stats["batches"] >= FUZZ_SETTINGS.max_examples
