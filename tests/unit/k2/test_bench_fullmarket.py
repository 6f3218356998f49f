"""The full-market benchmark's arithmetic: burst schedule and windows, losses from the
simulator's sent spans against Gold, latency split, and its report rows."""

from __future__ import annotations

import itertools
import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from k2ops.bench.common import percentile
from k2ops.bench.fullmarket import (
    _run_with_progress,
    burst_windows,
    default_bursts,
    losses,
    nearest_rank,
    progress_line,
    reported_losses,
    sent_spans,
    split_latencies,
    summary_lines,
)
from workers.simulator.schedule import Bursts


def test_thirty_minutes_have_three_one_minute_bursts_and_a_short_run_one_after_the_warmup():
    assert Bursts.parse(default_bursts(1800, 60)).windows(1800) == [(300, 360), (900, 960), (1500, 1560)]
    (start, end), = Bursts.parse(default_bursts(120, 20)).windows(120)
    assert (start, end) == (40, 80)


def test_burst_windows_come_from_the_records_rate_events():
    events = [{"ev": "rate", "multiplier": 10, "time_us": 5_000_000}, {"ev": "published"},
              {"ev": "rate", "multiplier": 1, "time_us": 65_000_000}, {"ev": "rate", "multiplier": 10, "time_us": 9e7}]
    assert burst_windows(events) == [(5.0, 65.0), (90.0, float("inf"))]


def test_losses_count_every_id_of_each_sent_span_missing_from_gold():
    spans = sent_spans([{"ev": "sent_span", "exchange": "okx", "symbol": "A-USDT", "first_id": 10, "last_id": 14},
                        {"ev": "sent_span", "exchange": "okx", "symbol": "B-USDT", "first_id": 1, "last_id": 2},
                        {"ev": "sent_span", "exchange": "bybit", "symbol": "CUSDT", "first_id": 7, "last_id": 7}])
    held = {("okx", "A-USDT"): {10, 11, 13, 14}, ("okx", "B-USDT"): {1, 2}, ("bybit", "CUSDT"): {7}}
    asked = []

    def ids_of(key):
        asked.append(key)
        return held[key]

    out = losses(spans, {k: len(v) for k, v in held.items()}, {"okx": 1}, ids_of)
    assert asked == [("okx", "A-USDT")]  # only a symbol with a loss is read id by id
    assert out["okx"] == {"expected": 7, "found": 6, "lost": 1, "examples": ["A-USDT:12"], "outside_spans": 1}
    assert out["bybit"] == {"expected": 1, "found": 1, "lost": 0, "examples": []}


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=300), st.sampled_from([50, 99, 1, 100]))
def test_nearest_rank_over_an_array_is_the_benches_percentile(values, q):
    assert nearest_rank(np.array(values), q) == percentile(values, q)


def test_latencies_split_into_steady_after_warmup_and_bursts():
    times = np.array([1.0, 2.0, 11.0, 12.0, 21.0, 22.0])
    lats = np.array([9.0, 9.0, 1.0, 2.0, 30.0, 40.0])
    out = split_latencies(times, lats, [(20.0, 30.0)], steady_from=10.0)
    assert out["steady"] == {"rows": 2, "p50_s": 1.0, "p99_s": 2.0}
    assert out["burst"] == {"rows": 2, "p50_s": 30.0, "p99_s": 40.0}
    assert split_latencies(times, lats, [], 10.0)["burst"] == {"rows": 0, "p50_s": None, "p99_s": None}


def test_report_rows_name_losses_latency_cpu_and_throughput():
    run = {"universe": {"okx": 500}, "seconds": 120.0, "total_rate": 5000.0, "bursts": "10:40:600:40",
           "trades_lost": 0, "by_venue": {"okx": {"expected": 1000, "found": 1000, "lost": 0}},
           "published_per_s": 4990.5, "worker_symbols": "all", "limit_violations": 0,
           "latency": {"steady": {"rows": 10, "p50_s": 3.1, "p99_s": 6.0}, "burst": {"rows": 5, "p50_s": 9.0, "p99_s": 21.5}},
           "workers": {"okx": {"cpu_cores": 0.4, "rss_mb_max": 90.1}},
           "simulator": {"cpu_cores": 0.2, "rss_mb_max": 120.0},
           "throughput": [{"exchange": "okx", "trades_per_s": 17552, "worker_cpu_cores": 0.63,
                           "simulator_cpu_cores": 0.22, "duration_s": 20.2}, {"exchange": "bybit", "error": "boom"}]}
    rows = {figure: (measured, target) for figure, measured, target in summary_lines(run)}
    lost = next(v for k, v in rows.items() if k.startswith("trades lost"))
    assert lost[0].startswith("0 of 1,000 sent (okx 0/1,000)") and lost[1] == "0"
    assert rows["end-to-end latency, full market, burst"] == ("p50 9.0 s, p99 21.5 s over 5 trades",
                                                             "p99 < 30 s during bursts")
    assert rows["losses the workers reported (log)"][0] == "okx: 0 given up, 0 gaps open at stop, 0 connections lost"
    assert rows["full market: okx worker"][0] == "CPU 0.4 cores, RSS max 90.1 MB"
    assert rows["simulator -> Kafka acked, okx worker alone"][0].startswith("17,552 trades/s acked")
    assert rows["simulator -> Kafka acked, bybit worker alone"][0] == "boom"


def test_the_workers_own_loss_reports_are_read_from_their_log(tmp_path):
    log = tmp_path / "workers.log"
    lines = [
        {"event": "backfill_failed", "exchange": "kraken", "symbol": "A/USD", "lost": 0, "will_retry_in_s": 30},
        {"event": "backfill_failed", "exchange": "kraken", "symbol": "A/USD", "lost": 120},
        {"event": "connection_closed", "exchange": "kraken", "reason": "rotated"},
        {"event": "connection_closed", "exchange": "kraken", "reason": "reset"},
        {"event": "progress_saved", "exchange": "kraken", "open_gaps": 2},
        {"event": "progress_saved", "exchange": "kraken", "open_gaps": 1},  # the last save counts
        {"event": "connected", "exchange": "okx"},
    ]
    log.write_text("\n".join(json.dumps(e) for e in lines) + "\nsupervisor: not a JSON line\n")
    assert reported_losses(log) == {
        "kraken": {"reported_lost": 120, "backfills_failed": 2, "gaps_open_at_stop": 1, "connections_lost": 1},
        "okx": {"reported_lost": 0, "backfills_failed": 0, "gaps_open_at_stop": 0, "connections_lost": 0},
    }
    assert reported_losses(tmp_path / "absent.log") == {}


def test_gold_found_counts_distinct_ids_inside_each_span_in_arrow():
    from types import SimpleNamespace

    import pyarrow as pa

    from k2ops.bench.fullmarket import gold_found

    gold = pa.table({"exchange": ["OKX", "OKX", "OKX", "OKX", "OKX", "BYBIT"],
                     "symbol": ["A-USDT", "A-USDT", "A-USDT", "A-USDT", "B-USDT", "CUSDT"],
                     "trade_id": ["10", "11", "11", "99", "1", "7"]})
    scan = SimpleNamespace(to_arrow=lambda: gold)
    pipe = SimpleNamespace(table=lambda name: SimpleNamespace(scan=lambda selected_fields: scan))
    spans = {("okx", "A-USDT"): (10, 12), ("bybit", "CUSDT"): (7, 7)}
    found, outside, ids_of = gold_found(pipe, spans)
    assert found == {("okx", "A-USDT"): 2, ("bybit", "CUSDT"): 1}  # 11 twice counts once
    assert outside == {"okx": 2}  # A-USDT 99, and B-USDT without a span
    assert ids_of(("okx", "A-USDT")) == {10, 11, 99}
    assert losses(spans, found, outside, ids_of)["okx"]["examples"] == ["A-USDT:12"]


# -- progress ---------------------------------------------------------------------------

def test_progress_line_says_where_the_run_is_and_what_is_on_its_way():
    line = progress_line(120.4, 1800, 60, published=612_000, published_before=300_000, interval=60.0,
                         gold=590_500, load=3.456)
    assert line == ("120/1800 s (measuring): published 612,000 trades (5,200/s), Gold holds 590,500, "
                    "21,500 on the way; load 3.46")
    assert "(warm-up)" in progress_line(30, 1800, 60, 10, 0, 30.0, 0, 1.0)
    assert "Gold holds 12, 0 on the way" in progress_line(90, 1800, 60, 10, 0, 30.0, 12, 1.0)  # never negative


def test_the_run_says_its_progress_and_survives_a_failing_figure(capsys):
    calls = itertools.chain([100, RuntimeError("simulator busy")], itertools.count(400, 100))

    def published() -> int:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    _run_with_progress(1.0, 0.0, published, lambda: 50, every=0.1)  # about ten lines: two at least on a slow machine
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2, lines
    assert all(line.startswith("[k2 bench fullmarket] ") for line in lines)
    assert "published 100 trades" in lines[0] and "Gold holds 50, 50 on the way" in lines[0]
    assert "no progress figures this time (RuntimeError('simulator busy'))" in lines[1]
