"""Kraken gap backfill against real Kafka + registry and the simulator's REST Trades.

The simulator leaves Kraken trades out of the live stream (not out of REST), and
rate-limits the first REST call the way Kraken does (HTTP 200, ``EAPI:Rate limit
exceeded`` in the body). The expectation is every trade the market published for the
subscribed symbols from the first to the last one a connection was sent
(``published_trades``, built from the simulator's record without worker code).
"""

from __future__ import annotations

import time

import pytest
from worker_harness import (
    TopicReader,
    assert_topic_holds,
    expected_trades,
    published_trades,
    record_events,
    worker_env,
)

from k2.polling import wait_until

pytestmark = pytest.mark.integration

DROPPED = 30


def _rest_quiet_for(sim, seconds: float):
    """A probe: true once no REST request has reached the simulator for ``seconds``."""
    seen = {"count": -1, "since": 0.0}

    def quiet() -> bool:
        count = len(record_events(sim, "rest", "kraken"))
        if count != seen["count"]:
            seen.update(count=count, since=time.monotonic())
        return time.monotonic() - seen["since"] >= seconds

    return quiet


def test_trades_the_stream_left_out_are_backfilled_through_a_rate_limit(stack, topics, make_simulator, start_worker):
    sim = make_simulator(rate=40, seed=31)
    env = worker_env(sim, topics, kraken_rest_url=f"http://127.0.0.1:{sim.port}")
    worker = start_worker("kraken", env)
    reader = TopicReader(stack, topics["kraken"])
    wait_until(lambda: len(reader.poll(0.3)) >= 50, 20, "first trades")
    # The connect probes (one per symbol seen by then, paced a second apart) are over
    # once REST has been quiet for a few seconds; only then is the next call a gap page.
    wait_until(_rest_quiet_for(sim, 3.0), 60, "the connect probes to end")
    sim.call(sim.sim.throttle_rest, 1)  # the next REST call: EAPI:Rate limit exceeded
    assert sim.call(sim.sim.drop, "kraken", DROPPED) == 1
    wait_until(lambda: len(record_events(sim, "dropped", "kraken")) == DROPPED, 10, f"{DROPPED} trades left out of the stream")
    dropped = {(e["symbol"], e["trade_id"]) for e in record_events(sim, "dropped", "kraken")}
    symbols = {s for s, _ in dropped}
    # Each symbol's gap opens at its next live trade; both must be filled.
    wait_until(lambda: sum(e["trades"] for e in worker.events("backfill_done")) >= DROPPED
               and {e["symbol"] for e in worker.events("backfill_done")} >= symbols, 30, "backfill of the drops")
    sim.stop()

    expected = published_trades(sim.record_path, "kraken")
    assert dropped <= set(expected) and not dropped & set(expected_trades(sim.record_path, "kraken"))
    assert_topic_holds(reader, expected, "kraken")
    assert len(record_events(sim, "conn_open", "kraken")) == 1, "the gap must be filled without a reconnect"
    rest = record_events(sim, "rest", "kraken")
    # One answer rate-limited, and it was a page of the gap (a connect probe has no since).
    (limited,) = [e for e in rest if e["throttled"]]
    assert "since=" in limited["query"], limited
    assert all(e["path"] == "/0/public/Trades" and e["status"] == 200 for e in rest)
    done = worker.events("backfill_done")
    assert {e["cause"] for e in done} == {"stream"} and sum(e["throttled"] for e in done) == 1
    assert sum(e["trades"] for e in done) == DROPPED
    assert not worker.events("backfill_failed") and not worker.events("backfill_unavailable")
    assert worker.stop() == 0
    final = worker.events("stream_summary")[-1]
    assert final["gaps"] == len(done) and final["backfilled"] == DROPPED and final["backfill_lost"] == 0
    reader.close()
