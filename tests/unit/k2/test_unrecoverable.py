"""Reading the workers' ``unrecoverable_range`` DLQ records (k2/unrecoverable.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from k2 import unrecoverable
from workers.dlq import lost_range


def test_a_worker_record_becomes_one_row():
    value = lost_range("kraken", "SOL/USD", 7, 9, "REST history no longer holds these trades",
                       1772355600_000000, "http://127.0.0.1:1/0/public/Trades?pair=SOLUSD")
    row = unrecoverable.parse(2, 41, value)
    assert row == {"exchange": "kraken", "symbol": "SOL/USD", "first_id": 7, "last_id": 9,
                   "reason": "REST history no longer holds these trades: SOL/USD trades 7..9 (3 trades)",
                   "reported_at": datetime(2026, 3, 1, 9, tzinfo=UTC),
                   "endpoint": "http://127.0.0.1:1/0/public/Trades?pair=SOLUSD", "dlq_partition": 2, "dlq_offset": 41}


def test_other_dead_letters_and_broken_ranges_are_not_rows():
    assert unrecoverable.parse(0, 0, b'{"exchange":"binance","error_kind":"bad_json","raw":"{"}') is None
    reversed_range = json.loads(lost_range("binance", "X", 9, 7, "r", 0, "e"))
    assert unrecoverable.parse(0, 0, json.dumps(reversed_range).encode()) is None
    assert unrecoverable.parse(0, 0, None) is None


@given(st.binary(max_size=300))
def test_no_value_on_the_topic_makes_parse_raise(value):
    unrecoverable.parse(0, 0, value)


@given(st.dictionaries(st.sampled_from(["exchange", "error_kind", "lost_range", "received_at_us", "error"]),
                       st.none() | st.integers() | st.floats() | st.text(max_size=5)
                       | st.dictionaries(st.sampled_from(["symbol", "first_id", "last_id"]),
                                         st.none() | st.integers() | st.text(max_size=5))))
def test_no_record_shape_makes_parse_raise(record):
    unrecoverable.parse(0, 0, json.dumps({**record, "error_kind": "unrecoverable_range"}).encode())
