"""A worker whose symbols are split over several connections (shards), against the
simulator and real Kafka: exactly the trades sent land, and one shard's connection
dropping is that shard's alone."""

from __future__ import annotations

from collections import Counter

import pytest
from worker_harness import (
    BACKFILLING_VENUES,
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
