"""A worker whose symbols are split over several connections (shards), against the
simulator and real Kafka: exactly the trades sent land, and one shard's connection
dropping is that shard's alone."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from worker_harness import (
    BACKFILLING_VENUES,
    PAIRS,
    TopicReader,
    assert_topic_holds,
    expected_trades,
    published_trades,
    record_events,
    wait_for_more,
    worker_env,
)

from k2.exchanges import names
from k2.polling import wait_until

pytestmark = pytest.mark.integration

# Three symbols per venue the simulator serves (restated, in each venue's form): with at
# most one symbol a connection, three shards.
THREE = {
    "binance": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "kraken": ("BTC/USD", "ETH/USD", "SOL/USD"),
    "coinbase": ("BTC-USD", "ETH-USD", "SOL-USD"),
    "bybit": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "okx": ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
}


def sessions(sim, exchange: str) -> list:
    return sim.call(sim.sim.sessions, exchange)


@pytest.mark.parametrize("exchange", names())
def test_a_sharded_worker_delivers_every_trade_and_one_shard_drops_alone(
    exchange, stack, topics, make_simulator, start_worker
):
    sim = make_simulator(rate=30 if exchange == "kraken" else 150, seed=21, symbols=THREE)
    worker = start_worker(exchange, worker_env(sim, topics, workers_shard_max_symbols="1"))
    reader = TopicReader(stack, topics[exchange])
    wait_until(lambda: len(sessions(sim, exchange)) == 3, 20, "three connections, one per shard")
    wait_until(lambda: {m["value"]["symbol"] for m in reader.poll(0.3)} == set(THREE[exchange]), 30,
               "trades of every symbol")

    victim = sessions(sim, exchange)[0]
    survivors = {s.id for s in sessions(sim, exchange)} - {victim.id}
    sim.call(lambda: sim.sim.spawn(victim.abort()))  # the network drops one connection
    wait_until(lambda: len(record_events(sim, "conn_open", exchange)) == 4, 20, "the dropped shard reconnects")
    wait_until(lambda: len(sessions(sim, exchange)) == 3, 10, "three connections again")
    assert survivors <= {s.id for s in sessions(sim, exchange)}  # the other shards kept theirs
    wait_for_more(reader, 100, "trades after the reconnect")
    before_stop = worker.events()  # stopping the simulator closes every connection
    sim.stop()

    if exchange in BACKFILLING_VENUES:  # what the drop hid comes over REST
        assert_topic_holds(reader, published_trades(sim.record_path, exchange), exchange)
    else:  # Bybit: no history; Kafka holds exactly what the connections carried
        assert_topic_holds(reader, expected_trades(sim.record_path, exchange), exchange, contiguous=False)
    (planned,) = worker.events("shards_planned")
    assert planned["per_shard"] == [1, 1, 1]
    (closed,) = [e for e in before_stop if e.get("event") == "connection_closed"]
    dropped = closed["shard"]
    connected = Counter(e["shard"] for e in before_stop if e.get("event") == "connected")
    assert connected == {shard: 2 if shard == dropped else 1 for shard in (1, 2, 3)}
    assert worker.stop() == 0
    reader.close()


class Listing:
    """A venue's REST listing served from a local HTTP server the test edits: Bybit's
    ``instruments-info`` format, restated (Bybit backfills nothing, so its REST URL may
    point here while its WebSocket points at the simulator)."""

    def __init__(self, symbols: list[str]):
        self.symbols = symbols
        self.requests = 0
        listing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                listing.requests += 1
                ok = self.path == "/v5/market/instruments-info?category=spot"
                body = json.dumps({"retCode": 0, "retMsg": "OK", "time": 1767225600000, "result": {
                    "category": "spot", "list": [
                        {"symbol": s, "baseCoin": PAIRS[s][0], "quoteCoin": PAIRS[s][1], "status": "Trading",
                         "symbolType": "", "innovation": "0"} for s in listing.symbols]}}).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_all_follows_listings_and_delistings_without_reconnecting(stack, topics, make_simulator, start_worker):
    sim = make_simulator(rate=150, seed=22, symbols={"bybit": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "ADAUSDT")})
    listing = Listing(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    env = worker_env(sim, topics, workers_shard_max_symbols="2", workers_symbols_refresh_s="1")
    env.update({"K2_BYBIT_SYMBOLS": "all", "K2_BYBIT_REST_URL": listing.url})
    worker = start_worker("bybit", env)
    reader = TopicReader(stack, topics["bybit"])
    wait_until(lambda: {m["value"]["symbol"] for m in reader.poll(0.3)} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}, 30,
               "trades of the three listed symbols")
    opened = len(record_events(sim, "conn_open", "bybit"))
    assert opened == 2  # shards [BTCUSDT, ETHUSDT] and [SOLUSDT]

    listing.symbols = ["BTCUSDT", "SOLUSDT", "ADAUSDT"]  # ETHUSDT delisted, ADAUSDT listed
    wait_until(lambda: worker.events("symbols_listed") and worker.events("symbols_delisted"), 20, "the change seen")
    seen = len(reader.poll(0.3))
    wait_until(lambda: "ADAUSDT" in {m["value"]["symbol"] for m in reader.poll(0.3)[seen:]}, 20, "ADAUSDT trades")
    wait_for_more(reader, 100, "trades after the change")
    assert len(record_events(sim, "conn_open", "bybit")) == opened  # no connection replaced
    # As the venue sees it: the two connections stream the listed symbols, ETHUSDT no more.
    assert sorted(sorted(s.subscribed) for s in sessions(sim, "bybit")) == [["ADAUSDT", "BTCUSDT"], ["SOLUSDT"]]
    before_stop = worker.events()
    sim.stop()
    listing.close()

    assert_topic_holds(reader, expected_trades(sim.record_path, "bybit"), "bybit", contiguous=False)
    (listed,) = [e for e in before_stop if e.get("event") == "symbols_listed"]
    (delisted,) = [e for e in before_stop if e.get("event") == "symbols_delisted"]
    assert (listed["symbols"], delisted["symbols"]) == (["ADAUSDT"], ["ETHUSDT"])
    # ETHUSDT's departure left room on shard 1 for ADAUSDT: subscribed there, live.
    assert [(e["shard"], e["symbols"]) for e in before_stop if e.get("event") == "shard_subscribing"] == [(1, ["ADAUSDT"])]
    assert [(e["shard"], e["symbols"]) for e in before_stop if e.get("event") == "shard_unsubscribing"] == [(1, ["ETHUSDT"])]
    assert not [e for e in before_stop if e.get("event") == "connection_closed"]
    assert worker.stop() == 0
    reader.close()
