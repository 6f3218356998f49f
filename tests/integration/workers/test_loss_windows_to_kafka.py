"""Venues that can neither detect nor refetch a missing trade: what a disconnect and a
kill -9 lose is reported as possible-loss windows on the DLQ topic.

Simulator -> supervised worker -> real Kafka. The expectation comes from the simulator's
record (every trade the market published, tests/simulator_expectations.py), not from the
worker: every published trade Kafka does not hold must lie in a window of its symbol.
"""

from __future__ import annotations

from collections import Counter

import pytest
from worker_harness import (
    BACKFILLING_VENUES,
    TopicReader,
    published_trades,
    record_events,
    wait_for_more,
    worker_env,
)

from k2.exchanges import names, venue
from k2.polling import wait_until

pytestmark = pytest.mark.integration

# Restated here, not read from the worker: venues without contiguous ids and without a
# REST history (the others detect and fill their gaps, see test_workers_to_kafka.py).
NON_RECOVERING = [n for n in names() if n not in BACKFILLING_VENUES and not venue(n).contiguous_ids]


def windows(dlq: TopicReader) -> list[dict]:
    return [m["value"] for m in dlq.poll(0.3) if m["value"].get("error_kind") == "possible_loss_window"]


def reasons(dlq: TopicReader) -> Counter:
    return Counter(w["possible_loss"]["reason"] for w in windows(dlq))


@pytest.mark.parametrize("exchange", NON_RECOVERING)
def test_disconnect_and_kill_9_losses_all_lie_in_reported_windows(exchange, stack, topics, make_simulator,
                                                                   start_worker):
    sim = make_simulator(rate=200, seed=21)
    supervisor = start_worker(exchange, worker_env(sim, topics, supervisor_backoff_base_s="0.5"), supervised=True)
    trades, dlq = TopicReader(stack, topics[exchange]), TopicReader(stack, topics["dlq"], avro=False)
    wait_until(lambda: len(trades.poll(0.3)) >= 150, 30, "first trades")
    symbols = sorted({m["value"]["symbol"] for m in trades.messages})
    assert windows(dlq) == []  # a first start with no state file: nothing to report

    assert sim.call(sim.sim.disconnect, exchange, "abort") == 1
    wait_until(lambda: len(record_events(sim, "conn_open", exchange)) >= 2, 15, "reconnect after the abort")
    wait_for_more(trades, 100, "trades on the new connection")
    wait_until(lambda: sum(reasons(dlq).values()) >= len(symbols), 15, "one window per symbol for the disconnect")

    supervisor.kill_child(30)
    wait_until(lambda: len(record_events(sim, "conn_open", exchange)) >= 3, 60, "the restarted worker to connect")
    wait_for_more(trades, 100, "trades from the restarted worker")
    wait_until(lambda: reasons(dlq)["restart"] >= len(symbols), 30, "one restart window per symbol")
    sim.stop()
    trades.poll(2.0)

    found = windows(dlq)
    by_symbol: dict[str, list[tuple[int, int]]] = {}
    for w in found:
        assert w["exchange"] == exchange and w["raw"] == "" and w["raw_length"] == 0
        loss = w["possible_loss"]
        assert loss["from_us"] < loss["to_us"] and loss["to_us"] - loss["from_us"] < 60_000_000, loss
        by_symbol.setdefault(loss["symbol"], []).append((loss["from_us"], loss["to_us"]))
    assert sorted(by_symbol) == symbols
    count = Counter(w["possible_loss"]["reason"] for w in found)
    assert count["restart"] == len(symbols) and count["restart"] < len(found), count  # and the disconnect's

    published = published_trades(sim.record_path, exchange)
    held = {(m["value"]["symbol"], m["value"]["trade_id"]) for m in trades.messages}
    assert held <= set(published), "Kafka holds a trade the market never published"
    # Up to each symbol's last trade in Kafka: what was in flight when the simulator
    # stopped is no interruption the worker could have reported (it never resumed).
    last_held: dict[str, int] = {}
    for m in trades.messages:
        v = m["value"]
        last_held[v["symbol"]] = max(last_held.get(v["symbol"], 0), v["timestamp"])
    lost = sorted(k for k in set(published) - held if published[k]["timestamp"] <= last_held.get(k[0], 0))
    assert lost, "the abort and the kill lost nothing: the test did not exercise a loss"
    outside = [(symbol, tid, published[(symbol, tid)]["timestamp"]) for symbol, tid in lost
               if not any(a <= published[(symbol, tid)]["timestamp"] <= b for a, b in by_symbol.get(symbol, ()))]
    assert not outside, (f"{len(outside)} of {len(lost)} lost trades lie in no reported window, e.g. {outside[:5]}; "
                         f"windows {by_symbol}")
    assert supervisor.stop() == 0
    trades.close()
    dlq.close()
