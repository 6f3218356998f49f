"""A full-market-ish capture (K2_<EXCHANGE>_SYMBOLS=all over a generated universe of a
a hundred-odd symbols, a small per-connection limit so there are several shards) against
the simulator with the venues' limits enforced, into real Kafka: forced disconnects of
single shards while trades flow lose nothing.

Kafka must hold exactly what the simulator's record says: every published trade between
the first and the last one sent, per symbol, for venues with a REST history (what a
dropped shard missed is backfilled); exactly the trades sent for Bybit, which has none
(what a dropped shard missed is lost on the venue too). Duplicates are allowed only as
the worker tests allow them: same trade, same message_id. Base and quote of the
generated symbols come from the simulator's listings, never from the worker.
"""

from __future__ import annotations

import pytest
from worker_harness import (
    BACKFILLING_VENUES,
    TopicReader,
    assert_topic_holds,
    expected_trades,
    published_trades,
    record_events,
    wait_caught_up,
    wait_for_more,
    worker_env,
)

from k2.exchanges import names
from k2.polling import wait_until

pytestmark = pytest.mark.integration

UNIVERSE = {"binance": 120, "kraken": 90, "coinbase": 60, "bybit": 60, "okx": 60}
SHARD_MAX = 20  # symbols per connection: 3 to 6 shards per venue
RATE = {"kraken": 60}  # trades/s; Kraken's 50-trade snapshots per symbol make its resubscribes heavy
DEFAULT_RATE = 150


def shards(sim, exchange: str) -> list:
    return sorted(sim.call(sim.sim.sessions, exchange), key=lambda s: s.id)


def subscribed(sim, exchange: str) -> int:
    return sim.call(sim.sim.stats)["subscribed"][exchange]


@pytest.mark.parametrize("exchange", names())
def test_a_sharded_full_market_loses_nothing_across_single_shard_disconnects(
    exchange, stack, topics, make_simulator, start_worker
):
    size = UNIVERSE[exchange]
    sim = make_simulator(universe={exchange: size}, rate=RATE.get(exchange, DEFAULT_RATE), seed=31,
                         connect_limits=True)
    env = worker_env(sim, topics, workers_shard_max_symbols=str(SHARD_MAX))
    env[f"K2_{exchange.upper()}_SYMBOLS"] = "all"
    worker = start_worker(exchange, env)
    reader = TopicReader(stack, topics[exchange])
    want = -(-size // SHARD_MAX)
    wait_until(lambda: len(shards(sim, exchange)) == want and subscribed(sim, exchange) == size, 60,
               f"{want} shards subscribed to all {size} symbols")
    wait_for_more(reader, 300, "trades on every shard")

    # One shard by its position, then the one serving a symbol of another: each alone.
    opened = len(record_events(sim, "conn_open", exchange))
    before = {s.id for s in shards(sim, exchange)}
    dropped = sim.call(sim.sim.disconnect_one, exchange, 1)
    wait_until(lambda: len(shards(sim, exchange)) == want and subscribed(sim, exchange) == size, 30,
               "the dropped shard back with its symbols")
    after = {s.id for s in shards(sim, exchange)}
    assert before - after == {dropped} and len(after - before) == 1, "only the dropped shard reconnected"
    wait_for_more(reader, 200, "trades after the first drop")
    last_symbol = sorted(shards(sim, exchange)[-1].subscribed)[0]
    dropped = sim.call(lambda: sim.sim.disconnect_one(exchange, symbol=last_symbol))
    assert dropped is not None
    wait_until(lambda: len(shards(sim, exchange)) == want and subscribed(sim, exchange) == size, 30,
               "the second dropped shard back")
    wait_for_more(reader, 200, "trades after the second drop")
    assert len(record_events(sim, "conn_open", exchange)) == opened + 2  # the two drops' successors only
    if exchange in BACKFILLING_VENUES:
        # What the drops cost is fetched over REST at the venue's pace, behind the probes of
        # the reconnected shard's symbols: the simulator (and its REST history) stays until
        # the worker says it has caught up.
        wait_caught_up(worker)
    sim.stop()

    listings = sim.sim.markets[exchange].venue.listings
    pairs = {symbol: (item.base, item.quote) for symbol, item in listings.items()}
    if exchange in BACKFILLING_VENUES:
        expected = published_trades(sim.record_path, exchange, pairs)
        assert_topic_holds(reader, expected, exchange, timeout_s=90)
    else:
        expected = expected_trades(sim.record_path, exchange, pairs)
        assert_topic_holds(reader, expected, exchange, timeout_s=90, contiguous=False)
    assert len({symbol for symbol, _ in expected}) == size  # every symbol of the universe traded and landed
    assert record_events(sim, "limit", exchange) == [], "the worker went past one of the venue's limits"
    assert worker.stop() == 0
    reader.close()
