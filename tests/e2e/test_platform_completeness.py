"""Completeness end to end: trades the live streams leave out reach Gold through REST
backfill, and the completeness ledger says every hour is complete.

A phase of the e2e tier's shared pipeline (tests/e2e/shared_pipeline.py) with symbols of
its own (SOLUSDT, SOL/USD), so the ledger's id arithmetic sees this market only:

- **live-stream gaps only:** both exchanges' WebSockets skip trades at random, REST
  serves them all;
- **Kraken kill -9 at speed:** at 40 trades/s the 50-trade snapshot Kraken sends on
  subscribe spans barely a second, less than a worker restart: what the snapshot no
  longer holds must come from REST, from the killed worker's acknowledged watermark.

Afterwards Gold holds every trade the market published, once each, and the ledger
(k2/ledger_store.py) has each hour of each symbol ``complete``, its counts adding up to
what was published and what came from REST.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from k2 import ledger_store
from k2.pipeline import wait_for
from shared_pipeline import SharedPipeline, child_pid, connected_after, worker_events
from simulator_expectations import published_trades
from workers.simulator import SimulatorConfig, SimulatorThread, read_record

pytestmark = pytest.mark.e2e

PHASE = "completeness"
SYMBOLS = {"binance": "SOLUSDT", "kraken": "SOL/USD"}


@pytest.fixture(scope="module")
def run(stack, shared: SharedPipeline):
    pipe = shared.pipe
    record = pipe.workdir / "simulator-completeness.jsonl"
    sim = SimulatorThread(SimulatorConfig(rate=40, seed=23, record=str(record), drop_rate=0.02,
                                          kraken_drop_rate=0.02, binance_symbols=(SYMBOLS["binance"],),
                                          kraken_symbols=(SYMBOLS["kraken"],)))
    try:
        pipe.start_workers(sim.urls(), phase=PHASE, K2_KRAKEN_REST_URL=f"http://127.0.0.1:{sim.port}",
                           K2_BINANCE_SYMBOLS=SYMBOLS["binance"], K2_KRAKEN_SYMBOLS=SYMBOLS["kraken"])
        wait_for(lambda: any(e.get("event") == "stream_summary" and e.get("exchange") == "kraken"
                             and e.get("delivered", 0) > 0 for e in worker_events(pipe)), 90, "kraken deliveries")
        killed = child_pid(pipe, "kraken")
        os.kill(killed, signal.SIGKILL)
        restarted = wait_for(lambda: (p := child_pid(pipe, "kraken")) != killed and p, 60, "kraken restart")
        wait_for(lambda: connected_after(pipe, "kraken", restarted), 60, "kraken reconnected")
        time.sleep(15)  # the market runs on; the restart's gap is filled meanwhile
        # What was published so far reaches Gold while REST is still there to serve it.
        published = {}
        for exchange in SYMBOLS:
            published.update({v["message_id"]: v for v in published_trades(str(record), exchange).values()})
        wait_for(lambda: set(published) <= set(pipe.gold().column("message_id").to_pylist()), 600,
                 "Gold to hold every trade published so far", interval=5)
        sim.stop()
        assert pipe.stop_workers() == 0
        expected = {}
        for exchange in SYMBOLS:
            expected.update({v["message_id"]: v for v in published_trades(str(record), exchange).values()})
        shared.expect(PHASE, expected)
        wait_for(lambda: set(expected) <= set(pipe.gold().column("message_id").to_pylist()), 600,
                 "Gold to hold every trade of this phase", interval=5)
        ledger_store.update(pipe.namespace, log=lambda _: None)
        yield {"pipe": pipe, "expected": expected, "record": str(record)}
    finally:
        sim.stop()
        pipe.stop_workers()


def test_gold_holds_every_trade_the_market_published(run, shared: SharedPipeline):
    problems = shared.gold_problems(PHASE, run["pipe"].gold().to_pylist())
    assert problems == {"duplicated": [], "missing": [], "unexpected": []}, {
        k: (len(v), v[:10]) for k, v in problems.items()}


def test_the_faults_happened(run):
    """Guards the test itself: the streams left trades out, and the kill opened a gap
    wider than Kraken's snapshot, filled over REST."""
    dropped = Counter(e["exchange"] for e in read_record(run["record"]) if e.get("ev") == "dropped")
    assert dropped["binance"] > 0 and dropped["kraken"] > 0, dropped
    done = [e for e in worker_events(run["pipe"]) if e.get("event") == "backfill_done"]
    assert any(e.get("exchange") == "kraken" and e.get("cause") == "restart" and e.get("trades", 0) > 0
               for e in done), done


def test_ledger_says_every_hour_complete_and_counts_live_and_backfilled(run):
    rows = catalog_rows(run["pipe"].namespace)
    dropped = Counter(e["exchange"] for e in read_record(run["record"]) if e.get("ev") == "dropped")
    for exchange, symbol in SYMBOLS.items():
        mine = [r for r in rows if (r["exchange"], r["symbol"]) == (exchange, symbol)]
        published = sum(1 for e in run["expected"].values() if e["symbol"] == symbol)
        assert mine and {r["status"] for r in mine} == {"complete"}, mine
        assert sum(r["missing_ids"] for r in mine) == 0
        assert sum(r["gold_trades"] for r in mine) == published
        assert sum(r["live_trades"] + r["backfill_trades"] for r in mine) == published
        # Binance resends nothing: each dropped trade came over REST. Kraken's snapshot
        # after the restart may carry some again, but the kill's gap came over REST.
        backfilled = sum(r["backfill_trades"] for r in mine)
        assert backfilled >= dropped[exchange] if exchange == "binance" else backfilled > 0


def catalog_rows(namespace: str) -> list[dict]:
    from k2.catalog import catalog

    return catalog().load_table(ledger_store.identifier(namespace)).scan().to_arrow().to_pylist()
