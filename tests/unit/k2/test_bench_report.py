"""`k2 bench`'s markdown summary: every measured figure beside its SPEC §8 target."""

from __future__ import annotations

from k2.bench.cli import markdown


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
    assert "| recovery after kill -9 | recovery_s [21.0, 19.5] | < 30 s, no loss, no duplicates |" in text
    assert "- **gold_query**: `RuntimeError: catalog unreachable`" in text
    assert "Machine: 2 CPUs, load 0.3 at start." in text
