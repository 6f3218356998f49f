"""The simulator's Binance REST history answers like Binance, from the stream's tape."""

import json

from workers.simulator.market import Tape
from workers.simulator.venues import binance as sim_binance
from workers.simulator.venues.binance import binance_trades, too_many_requests

US = {"X-MBX-TIME-UNIT": "MICROSECOND"}


def tape(depth: int = 100) -> Tape:
    t = Tape(["BTCUSDT", "ETHUSDT"], {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}, 7, 2, pad_to=8, archive_depth=depth)
    for i in range(300):
        t.next(1767225600000000 + i)
    return t


def get(t: Tape, path: str, headers: dict | None = None, **query: object):
    return binance_trades(path, {k: [str(v)] for k, v in query.items()}, headers or {}, t)


def test_historical_trades_from_id_match_the_stream_frames():
    t = tape()
    newest = t.archive["BTCUSDT"][-1].trade_id
    reply = get(t, "/api/v3/historicalTrades", US, symbol="BTCUSDT", fromId=newest - 9, limit=5)
    assert reply.status == 200
    items = json.loads(reply.body)
    assert [i["id"] for i in items] == list(range(newest - 9, newest - 4))
    for item, trade in zip(items, reply.trades, strict=True):
        frame = json.loads(sim_binance.binance_trade(trade, microseconds=True))["data"]
        assert (item["id"], item["price"], item["qty"], item["time"], item["isBuyerMaker"]) == (
            frame["t"], frame["p"], frame["q"], frame["T"], frame["m"])
        assert item["isBestMatch"] is True and set(item) == {
            "id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}


def test_milliseconds_without_the_time_unit_header():
    t = tape()
    (item,) = json.loads(get(t, "/api/v3/trades", symbol="ETHUSDT", limit=1).body)
    assert item["time"] == t.archive["ETHUSDT"][-1].ts_us // 1000


def test_recent_trades_and_bounded_history():
    t = tape(depth=100)
    archive = t.archive["BTCUSDT"]
    assert len(archive) == 100
    assert [i["id"] for i in json.loads(get(t, "/api/v3/trades", symbol="BTCUSDT", limit=3).body)] == [
        a.trade_id for a in list(archive)[-3:]]
    older = get(t, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=archive[0].trade_id - 50, limit=2)
    assert [i["id"] for i in json.loads(older.body)] == [archive[0].trade_id, archive[0].trade_id + 1]
    assert json.loads(get(t, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=archive[-1].trade_id + 1).body) == []


def test_errors_look_like_binance():
    t = tape()
    for query, code in (({"symbol": "NOPE"}, -1121), ({}, -1102), ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
                        ({"symbol": "BTCUSDT", "fromId": "x"}, -1100)):
        reply = get(t, "/api/v3/historicalTrades", **query)
        assert (reply.status, json.loads(reply.body)["code"]) == (400, code)
    assert get(t, "/api/v3/klines", symbol="BTCUSDT").status == 404
    throttled = too_many_requests(3)
    assert (throttled.status, throttled.headers, json.loads(throttled.body)["code"]) == (429, {"Retry-After": "3"}, -1003)
