"""The simulator's frames are valid for the documented formats (parsed as plain JSON)."""

import json
from decimal import Decimal

from workers.simulator.market import SimTrade
from workers.simulator.venues import binance as sim_binance
from workers.simulator.venues import kraken as sim_kraken

TRADE = SimTrade("BTC/USD", 42, "94250.10", "0.00001500", "sell", 1767225600123456)


def test_kraken_numbers_keep_their_value_in_both_forms():
    for exponent in (False, True):
        doc = json.loads(sim_kraken.kraken_trades([sim_kraken.kraken_item(TRADE, exponent)]), parse_float=Decimal)
        item = doc["data"][0]
        assert item["qty"] == Decimal("0.000015") and item["price"] == Decimal("94250.1")
        assert item["timestamp"] == "2026-01-01T00:00:00.123456Z" and item["side"] == "sell"
    assert "e-" in sim_kraken.kraken_item(TRADE, True)


def test_binance_trade_frame_fields():
    t = SimTrade("BTCUSDT", 7, "94250.01000000", "0.00210000", "sell", 1767225600123456)
    doc = json.loads(sim_binance.binance_trade(t, microseconds=False))
    assert doc["stream"] == "btcusdt@trade"
    d = doc["data"]
    assert (d["e"], d["s"], d["t"], d["p"], d["q"], d["T"], d["m"]) == (
        "trade", "BTCUSDT", 7, "94250.01000000", "0.00210000", 1767225600123, True)
    assert json.loads(sim_binance.binance_trade(t, microseconds=True))["data"]["T"] == 1767225600123456


def test_bad_frames_are_bad_in_the_intended_way():
    t = SimTrade("BTCUSDT", 7, "94250.01000000", "0.00210000", "buy", 1767225600123456)
    for kind in ("truncated_json", "not_json"):
        for raw in (sim_binance.binance_bad(kind, t, True), sim_kraken.kraken_bad(kind, TRADE)):
            try:
                json.loads(raw)
                raise AssertionError(f"{kind} parsed")
            except ValueError:
                pass
    assert json.loads(sim_binance.binance_bad("unknown_symbol", t, True))["data"]["s"] == "NOPEUSDT"
    assert json.loads(sim_binance.binance_bad("oversize_decimal", t, True))["data"]["p"].endswith("123456789")
    assert json.loads(sim_kraken.kraken_bad("unknown_symbol", TRADE))["data"][0]["symbol"] == "NOPE/USD"
