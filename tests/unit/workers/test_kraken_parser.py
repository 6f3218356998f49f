"""Kraken v2 parser on recorded-format frames."""

import json
from decimal import Decimal

import pytest

from workers.exchanges.kraken import Kraken
from workers.normalize import NormalizeError
from workers.symbols import SymbolTable

RECEIVED = 1767225600200000

BATCH = (
    '{"channel":"trade","type":"update","data":['
    '{"symbol":"BTC/USD","side":"sell","price":94250.1,"qty":0.0125,"ord_type":"market",'
    '"trade_id":81234567,"timestamp":"2026-01-01T00:00:00.123456Z"},'
    '{"symbol":"BTC/USD","side":"buy","price":94250.2,"qty":1.5e-05,"ord_type":"limit",'
    '"trade_id":81234568,"timestamp":"2026-01-01T00:00:00.223456Z"},'
    '{"symbol":"ETH/USD","side":"buy","price":3.3005E+3,"qty":2,"ord_type":"limit",'
    '"trade_id":1001,"timestamp":"2026-01-01T00:00:01Z"}]}'
)


@pytest.fixture
def kraken():
    return Kraken(["XBT/USD", "ETH/USD", "DOGE/USD"], SymbolTable.shipped())


def test_batched_trades_keep_exact_decimals_and_order(kraken):
    parsed = kraken.parse(BATCH, RECEIVED)
    assert parsed.rejects == [] and parsed.control is None
    assert [(t["symbol"], t["trade_id"], t["price"], t["quantity"], t["side"]) for t in parsed.trades] == [
        ("BTC/USD", "81234567", Decimal("94250.1"), Decimal("0.0125"), "SELL"),
        ("BTC/USD", "81234568", Decimal("94250.2"), Decimal("0.000015"), "BUY"),
        ("ETH/USD", "1001", Decimal("3300.5"), Decimal("2"), "BUY"),
    ]
    first = parsed.trades[0]
    assert first["exchange"] == "KRAKEN"
    assert first["timestamp"] == 1767225600123456
    assert (first["base_asset"], first["quote_currency"]) == ("BTC", "USD")
    assert first["vendor_data"] == {"ord_type": "market", "type": "update"}
    assert first["message_id"] == "b3759a1e-042b-55ed-b27a-81f2774d8d9f"
    assert parsed.trades[2]["timestamp"] == 1767225601000000


def test_xbt_and_xdg_names_are_normalized(kraken):
    frame = BATCH.replace('"BTC/USD"', '"XBT/USD"', 1)
    parsed = kraken.parse(frame, RECEIVED)
    assert parsed.trades[0]["symbol"] == "BTC/USD"
    assert parsed.trades[0]["message_id"] == "b3759a1e-042b-55ed-b27a-81f2774d8d9f"
    assert kraken.symbols == ["BTC/USD", "ETH/USD", "DOGE/USD"]
    assert kraken.normalize_symbol("XDG/XBT") == "DOGE/BTC"


def test_subscribe_uses_v2_names_with_snapshot(kraken):
    (message,) = kraken.subscribe_messages()
    assert json.loads(message) == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD", "DOGE/USD"], "snapshot": True},
        "req_id": 1,
    }
    assert json.loads(kraken.ping_message(7)) == {"method": "ping", "req_id": 7}


def test_snapshot_duplicates_have_equal_message_ids(kraken):
    update = kraken.parse(BATCH, RECEIVED).trades
    snapshot = kraken.parse(BATCH.replace('"update"', '"snapshot"'), RECEIVED + 5).trades
    assert [t["message_id"] for t in update] == [t["message_id"] for t in snapshot]
    assert snapshot[0]["vendor_data"]["type"] == "snapshot"


def test_one_bad_trade_in_a_batch_keeps_the_others(kraken):
    doc = json.loads(BATCH)
    frame = BATCH.replace("94250.2", "94250.123456789")  # 9 decimals in the 2nd item
    parsed = kraken.parse(frame, RECEIVED)
    assert [t["trade_id"] for t in parsed.trades] == ["81234567", "1001"]
    assert [r.kind for r in parsed.rejects] == ["decimal_out_of_range"]
    assert str(parsed.rejects[0]).startswith("data[1]: price 94250.123456789")
    assert len(doc["data"]) == 3


def test_malformed_item_in_batch_is_rejected_alone(kraken):
    frame = BATCH.replace('"trade_id":81234568,', "")
    parsed = kraken.parse(frame, RECEIVED)
    assert [t["trade_id"] for t in parsed.trades] == ["81234567", "1001"]
    assert [r.kind for r in parsed.rejects] == ["bad_trade"]
    assert "trade_id" in str(parsed.rejects[0])


@pytest.mark.parametrize(
    "change, kind",
    [
        (('"side":"sell"', '"side":"short"'), "bad_trade"),
        (('"symbol":"BTC/USD"', '"symbol":"FOO/BAR"'), "unknown_symbol"),
        (('"timestamp":"2026-01-01T00:00:00.123456Z"', '"timestamp":"soon"'), "bad_timestamp"),
        (('"qty":0.0125', '"qty":12345678901'), "decimal_out_of_range"),
    ],
)
def test_item_level_rejects(kraken, change, kind):
    parsed = kraken.parse(BATCH.replace(*change, 1), RECEIVED)
    assert len(parsed.trades) == 2
    assert [r.kind for r in parsed.rejects] == [kind]


@pytest.mark.parametrize(
    "frame, kind, detail",
    [
        ('{"channel":"heartbeat"}', "heartbeat", ""),
        (
            '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,'
            '"system":"online","version":"2.0.10"}]}',
            "status",
            "online",
        ),
        (
            '{"method":"subscribe","result":{"channel":"trade","symbol":"BTC/USD","snapshot":true},'
            '"success":true,"time_in":"2026-01-01T00:00:00.1Z","time_out":"2026-01-01T00:00:00.2Z","req_id":1}',
            "ack",
            "trade BTC/USD",
        ),
        (
            '{"error":"Currency pair not supported XBT/USD","method":"subscribe","req_id":1,'
            '"success":false,"symbol":"XBT/USD","time_in":"x","time_out":"y"}',
            "subscribe_error",
            "subscribe XBT/USD rejected: Currency pair not supported XBT/USD",
        ),
        ('{"method":"pong","req_id":3,"time_in":"x","time_out":"y"}', "pong", "req_id=3"),
    ],
)
def test_control_frames(kraken, frame, kind, detail):
    parsed = kraken.parse(frame, RECEIVED)
    assert parsed.trades == [] and parsed.rejects == []
    assert (parsed.control.kind, parsed.control.detail) == (kind, detail)


def test_empty_snapshot_is_fine(kraken):
    assert kraken.parse('{"channel":"trade","type":"snapshot","data":[]}', RECEIVED).trades == []


@pytest.mark.parametrize(
    "frame, kind",
    [
        ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD"', "malformed_json"),
        ('{"channel":"book","type":"update","data":[]}', "unexpected_frame"),
        ('"hello"', "unexpected_frame"),
    ],
)
def test_unusable_frames_raise_with_kind(kraken, frame, kind):
    with pytest.raises(NormalizeError) as err:
        kraken.parse(frame, RECEIVED)
    assert err.value.kind == kind
