"""Binance gap backfill against real Kafka + registry and the simulator's REST history.

The expectation is every trade the simulator's market published for the subscribed
symbols from the first one a connection was sent (``published_trades``, built from the
record without worker code): a complete history, whatever the stream left out.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_harness import (
    TopicReader,
    assert_topic_holds,
    expected_trades,
    published_trades,
    record_events,
    wait_for_more,
    worker_env,
)

from k2.polling import wait_until

pytestmark = pytest.mark.integration


def test_kill_9_under_supervisor_backfills_every_published_trade(stack, topics, make_simulator, start_worker):
    sim = make_simulator(rate=40, seed=21)
    env = worker_env(sim, topics, supervisor_backoff_base_s="1")
    supervisor = start_worker("binance", env, supervised=True)
    reader = TopicReader(stack, topics["binance"])
    state = Path(env["K2_WORKERS_STATE_DIR"]) / "binance" / "last_acked.json"
    wait_until(lambda: len(reader.poll(0.3)) >= 100 and state.exists(), 30, "first trades and a progress file")

    killed_at_conn = len(record_events(sim, "conn_open", "binance"))
    supervisor.kill_child(20)
    wait_until(lambda: len(record_events(sim, "conn_open", "binance")) > killed_at_conn, 30,
               "restarted worker to reconnect")
    wait_until(lambda: {e["symbol"] for e in supervisor.events("backfill_done")} == {"BTCUSDT", "ETHUSDT"},
               30, "the restart gap of both symbols backfilled")
    wait_for_more(reader, 40, "live trades after the backfill")
    sim.stop()

    expected = published_trades(sim.record_path, "binance")
    sent = expected_trades(sim.record_path, "binance")
    downtime = set(expected) - set(sent)
    assert len(downtime) >= 20, f"the kill left only {len(downtime)} trades unsent: not a real gap"
    assert_topic_holds(reader, expected, "binance", timeout_s=45)
    done = supervisor.events("backfill_done")
    assert {e["cause"] for e in done} == {"restart"}, done
    assert sum(e["trades"] for e in done) >= len(downtime)
    assert not supervisor.events("backfill_failed")
    loaded = supervisor.events("progress_state_loaded")
    assert len(loaded) == 1 and set(loaded[0]["last_acked"]) == {"BTCUSDT", "ETHUSDT"}
    rest = record_events(sim, "rest", "binance")
    assert rest and all(e["status"] == 200 for e in rest)
    # Each connect probes the newest id of the symbols already seen (the restarted worker's:
    # both, from its state file); everything else pages history.
    assert {e["query"] for e in rest if e["path"] == "/api/v3/trades"} == {
        "symbol=BTCUSDT&limit=1", "symbol=ETHUSDT&limit=1"}
    assert all("historicalTrades" in e["path"] for e in rest if e["path"] != "/api/v3/trades")
    assert {e["symbol"] for e in supervisor.events("probed")} == {"BTCUSDT", "ETHUSDT"}
    assert supervisor.stop() == 0
    reader.close()


def test_gap_inside_one_connection_is_backfilled_through_429s(stack, topics, make_simulator, start_worker):
    sim = make_simulator(rate=50, seed=23)
    worker = start_worker("binance", worker_env(sim, topics, workers_backfill_page_limit="7"))
    reader = TopicReader(stack, topics["binance"])
    wait_until(lambda: len(reader.poll(0.3)) >= 50, 20, "first trades")
    sim.call(sim.sim.throttle_rest, 2, 1)  # the first two REST requests: 429, Retry-After: 1
    assert sim.call(sim.sim.drop, "binance", 40) == 1
    wait_until(lambda: len(record_events(sim, "dropped", "binance")) == 40, 10, "40 trades left out of the stream")
    wait_until(lambda: sum(e["trades"] for e in worker.events("backfill_done")) >= 40, 30, "backfill of the drops")
    wait_for_more(reader, 40, "live trades after the backfill of the drops")
    sim.stop()

    expected = published_trades(sim.record_path, "binance")
    dropped = {(e["symbol"], e["trade_id"]) for e in record_events(sim, "dropped", "binance")}
    assert dropped <= set(expected) and not dropped & set(expected_trades(sim.record_path, "binance"))
    assert_topic_holds(reader, expected, "binance")
    assert len(record_events(sim, "conn_open", "binance")) == 1, "the gap must be filled without a reconnect"
    rest = [e for e in record_events(sim, "rest", "binance") if "historicalTrades" in e["path"]]  # not the connect probe
    assert [e["status"] for e in rest[:2]] == [429, 429] and all(e["status"] == 200 for e in rest[2:])
    assert all(e["count"] <= 7 for e in rest), "pages larger than K2_WORKERS_BACKFILL_PAGE_LIMIT"
    done = worker.events("backfill_done")
    assert {e["cause"] for e in done} == {"stream"} and sum(e["throttled"] for e in done) == 2
    assert not worker.events("backfill_failed")
    assert worker.stop() == 0
    final = worker.events("stream_summary")[-1]
    assert final["gaps"] == len(done) and final["backfilled"] >= 40 and final["backfill_lost"] == 0
    reader.close()
