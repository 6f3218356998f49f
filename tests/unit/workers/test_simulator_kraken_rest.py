"""The simulator's Kraken REST Trades answers like Kraken, from the stream's tape."""

import json
from decimal import Decimal

from workers.simulator.market import Tape
from workers.simulator.venues import kraken as sim_kraken
from workers.simulator.venues.kraken import (
    kraken_pair_symbols,
    kraken_rate_limited,
    kraken_trades_reply,
)

PAIRS = kraken_pair_symbols(["BTC/USD", "ETH/USD"], {"XBT": "BTC", "XDG": "DOGE"})
T0 = 1767225600000000


def tape(depth: int = 100) -> Tape:
    t = Tape(["BTC/USD", "ETH/USD"], {"BTC/USD": "BTC", "ETH/USD": "ETH"}, 7, 1, archive_depth=depth)
    for i in range(300):
        t.next(T0 + 10 * i)
    return t


def get(t: Tape, path: str = "/0/public/Trades", **query: object):
    return kraken_trades_reply(path, {k: [str(v)] for k, v in query.items()}, t, PAIRS)


def test_pair_names_accepted():
    assert PAIRS == {"BTC/USD": "BTC/USD", "BTCUSD": "BTC/USD", "XBTUSD": "BTC/USD",
                     "ETH/USD": "ETH/USD", "ETHUSD": "ETH/USD"}


def test_trades_since_match_the_stream_items():
    t = tape()
    archive = list(t.archive["BTC/USD"])
    since = archive[10].ts_us * 1000  # exclusive: the answer starts with the next trade
    reply = get(t, pair="XBTUSD", since=since, count=5)
    doc = json.loads(reply.body, parse_float=Decimal)
    assert reply.status == 200 and doc["error"] == [] and set(doc["result"]) == {"XBTUSD", "last"}
    items = doc["result"]["XBTUSD"]
    assert [i[6] for i in items] == [a.trade_id for a in archive[11:16]]
    assert doc["result"]["last"] == str(archive[15].ts_us * 1000)
    for item, trade in zip(items, archive[11:16], strict=True):
        live = json.loads(sim_kraken.kraken_item(trade), parse_float=Decimal)
        assert Decimal(item[0]) == live["price"] and Decimal(item[1]) == live["qty"]
        assert item[2] == Decimal(trade.ts_us).scaleb(-6)  # seconds with the µs digits, no float rounding
        assert item[3] == {"buy": "b", "sell": "s"}[live["side"]] and item[4] == "m" and item[5] == ""


def test_paging_with_last_reaches_every_trade_once():
    t = tape()
    archive = list(t.archive["ETH/USD"])
    seen, since = [], archive[0].ts_us * 1000 - 1
    for _ in range(100):
        result = json.loads(get(t, pair="ETH/USD", since=since, count=7).body)["result"]
        if not result["ETH/USD"]:
            break
        seen += [i[6] for i in result["ETH/USD"]]
        since = int(result["last"])
    assert seen == [a.trade_id for a in archive]


def test_without_since_the_most_recent_trades():
    t = tape()
    archive = list(t.archive["ETH/USD"])
    result = json.loads(get(t, pair="ETHUSD", count=2).body)["result"]
    assert [i[6] for i in result["ETHUSD"]] == [a.trade_id for a in archive[-2:]]
    assert result["last"] == str(archive[-1].ts_us * 1000)


def test_history_older_than_the_archive_is_not_served():
    t = tape(depth=20)
    archive = t.archive["BTC/USD"]
    assert len(archive) == 20
    items = json.loads(get(t, pair="XBTUSD", since=0, count=3).body)["result"]["XBTUSD"]
    assert [i[6] for i in items] == [archive[0].trade_id, archive[0].trade_id + 1, archive[0].trade_id + 2]
    newest = json.loads(get(t, pair="XBTUSD", since=archive[-1].ts_us * 1000).body)["result"]
    assert newest == {"XBTUSD": [], "last": str(archive[-1].ts_us * 1000)}


def test_errors_arrive_in_the_body_with_http_200():
    t = tape()
    for query, error in (({"pair": "NOPE"}, "EQuery:Unknown asset pair"), ({}, "EGeneral:Invalid arguments:pair"),
                         ({"pair": "XBTUSD", "count": 1001}, "EGeneral:Invalid arguments:count"),
                         ({"pair": "XBTUSD", "since": "x"}, "EGeneral:Invalid arguments")):
        reply = get(t, **query)
        assert (reply.status, json.loads(reply.body)) == (200, {"error": [error]})
    assert json.loads(get(t, "/0/public/Ticker", pair="XBTUSD").body)["error"][0].startswith("EGeneral:Unknown method")
    limited = kraken_rate_limited()
    assert (limited.status, json.loads(limited.body)) == (200, {"error": ["EAPI:Rate limit exceeded"]})
