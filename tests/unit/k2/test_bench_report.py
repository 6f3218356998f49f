"""`k2 bench`'s markdown summary: every measured figure beside its SPEC §8 target."""

from __future__ import annotations

from k2ops.bench.cli import markdown


def test_markdown_lists_each_figure_with_its_target_and_failures():
    report = {
        "started": "2026-11-22T19:00:00+00:00", "machine": {"cpus": 2, "load_1m": 0.3},
        "results": {
            "workers": {"runs": [{"exchange": "binance", "trades_per_s": 85227, "worker_cpu_cores": 1.02,
                                  "cpu_core_seconds_per_1000_trades_per_s": 0.0119,
                                  "projected_trades_per_s_per_core": 83745, "rss_mb_max": 74.9}]},
            "bronze": {"runs": [{"bench": "bronze", "bronze_msg_s_slowest_minute": 51234.56}]},
            "recovery": {"runs": [{"bench": "recovery", "recovery_s": [21.04, 19.5]}]},
        },
        "errors": {"gold_query": "Traceback ...\nRuntimeError: catalog unreachable\n"},
    }
    text = markdown(report)
    assert "| worker throughput (binance) | 85,227 trades/s acked at 1.02 cores" in text
    assert "| Bronze ingest | bronze_msg_s_slowest_minute 51,235 | >= 50,000 msg/s sustained |" in text
    assert "| recovery after kill -9 | recovery_s [21.0, 19.5] | < 20 s, no loss, no duplicates |" in text
    assert "- **gold_query**: `RuntimeError: catalog unreachable`" in text
    assert "Machine: 2 CPUs, load 0.3 at start." in text


def test_a_gap_opens_when_the_next_sent_trade_of_its_symbol_arrives():
    import uuid

    from k2ops.bench.latency import gap_openings

    def ev(kind: str, symbol: str, tid: int) -> dict:
        return {"ev": kind, "exchange": "kraken", "symbol": symbol, "trade_id": str(tid)}

    record = [{**ev("published", s, i), "time_us": i * 1_000_000 + (500_000 if s == "ETH/USD" else 0)}
              for s in ("BTC/USD", "ETH/USD") for i in range(1, 7)]
    record += [ev("trade", "BTC/USD", 1), ev("dropped", "BTC/USD", 2), ev("dropped", "BTC/USD", 3),
               ev("trade", "ETH/USD", 1), ev("trade", "ETH/USD", 2), ev("dropped", "ETH/USD", 3),
               ev("trade", "BTC/USD", 5), ev("trade", "ETH/USD", 6), ev("dropped", "BTC/USD", 6)]
    ns = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the v3 contract's, restated

    def mid(symbol: str, tid: int) -> str:
        return str(uuid.uuid5(ns, f"KRAKEN:{symbol}:{tid}"))

    # BTC 2 and 3 are revealed by BTC 5 (at 5 s), ETH 3 by ETH 6 (6.5 s); BTC 6 by nothing.
    assert gap_openings(record) == {mid("BTC/USD", 2): ("kraken", 5.0), mid("BTC/USD", 3): ("kraken", 5.0),
                                    mid("ETH/USD", 3): ("kraken", 6.5)}
