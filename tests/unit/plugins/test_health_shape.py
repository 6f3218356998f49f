"""The health page's figures from fixtures: worker metrics text, progress records, DLQ
records, ledger and Gold rows, DAG runs (plugins/k2_airflow/health/shape.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from k2_airflow.health import shape

# What a worker's /metrics serves (workers/metrics.py), trimmed to the series the page reads.
WORKER_METRICS = """\
# HELP k2_worker_messages_total Trades normalized and handed to Kafka.
# TYPE k2_worker_messages_total counter
k2_worker_messages_total{exchange="binance"} 1200.0
# HELP k2_worker_delivered_total Trades and dead letters acknowledged by Kafka.
# TYPE k2_worker_delivered_total counter
k2_worker_delivered_total{exchange="binance"} 1195.0
# HELP k2_worker_delivery_failures_total Deliveries Kafka failed (each is produced again).
# TYPE k2_worker_delivery_failures_total counter
k2_worker_delivery_failures_total{exchange="binance"} 3.0
# HELP k2_worker_errors_total Errors by kind (dead letters and others).
# TYPE k2_worker_errors_total counter
k2_worker_errors_total{exchange="binance",kind="decimal_out_of_range"} 2.0
k2_worker_errors_total{exchange="binance",kind="bad_json"} 5.0
k2_worker_errors_total{exchange="binance",kind="stale"} 0.0
# HELP k2_worker_reconnects_total Connections replaced, by reason.
# TYPE k2_worker_reconnects_total counter
k2_worker_reconnects_total{exchange="binance",reason="rotation"} 1.0
k2_worker_reconnects_total{exchange="binance",reason="watchdog"} 2.0
# HELP k2_worker_connected 1 while a WebSocket connection is open.
# TYPE k2_worker_connected gauge
k2_worker_connected{exchange="binance"} 1.0
# HELP k2_worker_last_message_age_seconds Seconds since the last trade or heartbeat (-1 before the first).
# TYPE k2_worker_last_message_age_seconds gauge
k2_worker_last_message_age_seconds{exchange="binance"} 0.25
"""


def _later(text: str, messages: float) -> str:
    return text.replace('k2_worker_messages_total{exchange="binance"} 1200.0',
                        f'k2_worker_messages_total{{exchange="binance"}} {messages}')


def test_worker_row_from_one_scrape_has_counts_but_no_rate_yet():
    row = shape.worker_row("binance", "http://h:9101/metrics", shape.worker_sample(WORKER_METRICS, 100.0), None)
    assert row == {
        "exchange": "binance", "url": "http://h:9101/metrics", "state": "connected", "rate": None,
        "messages": 1200, "delivered": 1195, "delivery_failures": 3, "reconnects": 3,
        "reconnects_by_reason": {"watchdog": 2, "rotation": 1},
        "errors_by_kind": {"bad_json": 5, "decimal_out_of_range": 2},  # most first; zero kinds left out
        "last_message_age_s": 0.25,
    }


def test_worker_rate_is_the_message_count_difference_over_the_scrapes_interval():
    first = shape.worker_sample(WORKER_METRICS, 100.0)
    second = shape.worker_sample(_later(WORKER_METRICS, 1450.0), 110.0)
    assert shape.worker_rate(second, first) == 25.0  # 250 trades in 10 s
    assert shape.worker_row("binance", "u", second, first)["rate"] == 25.0


def test_a_restarted_worker_has_no_rate_rather_than_a_negative_one():
    first = shape.worker_sample(WORKER_METRICS, 100.0)
    restarted = shape.worker_sample(_later(WORKER_METRICS, 40.0), 110.0)
    assert shape.worker_rate(restarted, first) is None


def test_a_worker_that_does_not_answer_is_down_with_the_reason():
    row = shape.worker_row("kraken", "http://h:9102/metrics", None, None, down_reason="[Errno 111] Connection refused")
    assert row == {"exchange": "kraken", "url": "http://h:9102/metrics", "state": "down",
                   "reason": "[Errno 111] Connection refused"}


def test_a_worker_before_its_first_message_has_no_age_and_a_closed_socket_is_disconnected():
    text = (WORKER_METRICS.replace('k2_worker_connected{exchange="binance"} 1.0', 'k2_worker_connected{exchange="binance"} 0.0')
            .replace("last_message_age_seconds{exchange=\"binance\"} 0.25", "last_message_age_seconds{exchange=\"binance\"} -1.0"))
    row = shape.worker_row("binance", "u", shape.worker_sample(text, 1.0), None)
    assert (row["state"], row["last_message_age_s"]) == ("disconnected", None)


def test_stream_row_from_progress_and_lock():
    progress = {"stream": "bronze_ingestion", "batch_id": 41, "batch_timestamp": "2026-03-01T10:00:00.000Z",
                "rows_in": 300, "rows_per_second": 150.5, "source_lag": 12, "pid": 77, "updated_at": 1000.0,
                "lost_offsets_total": 4}
    assert shape.stream_row("bronze_ingestion", 77, progress, now=1030.0) == {
        "stream": "bronze_ingestion", "state": "running", "pid": 77, "batch_id": 41,
        "batch_time": "2026-03-01T10:00:00.000Z", "batch_age_s": 30.0, "rows_in": 300,
        "rows_per_second": 150.5, "lag_records": 12, "lost_offsets": 4}


def test_stream_without_lock_or_progress_is_stopped_with_nothing_published():
    row = shape.stream_row("gold_aggregation", None, None, now=5.0)
    assert (row["state"], row["batch_id"], row["lag_records"], row["batch_age_s"]) == ("stopped", None, None, None)


def test_top_reasons_most_first_ties_by_name_and_the_rest_summed_as_other():
    counts = {"a": 1, "b": 5, "c": 5, "d": 2, "e": 0}
    assert shape.top_reasons(counts, limit=3) == [
        {"reason": "b", "count": 5}, {"reason": "c", "count": 5}, {"reason": "other", "count": 3}]
    assert shape.top_reasons(counts, limit=4) == [
        {"reason": "b", "count": 5}, {"reason": "c", "count": 5}, {"reason": "d", "count": 2}, {"reason": "a", "count": 1}]
    assert shape.top_reasons({}) == []


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 1000), max_size=20), st.integers(1, 10))
def test_top_reasons_keep_every_count_within_the_limit(counts, limit):
    rows = shape.top_reasons(counts, limit)
    assert len(rows) <= limit
    assert sum(r["count"] for r in rows) == sum(counts.values())
    assert all(r["count"] > 0 for r in rows)


def test_dlq_kinds_count_the_error_kind_and_unreadable_records():
    values = [json.dumps({"exchange": "kraken", "error_kind": "bad_json"}).encode(),
              json.dumps({"error_kind": "bad_json"}).encode(),
              json.dumps({"error_kind": "unrecoverable_range", "lost_range": {}}).encode(),
              b"\xff not json", None, b"[1, 2]", json.dumps({"error": "no kind"}).encode()]
    assert shape.dlq_kinds(values) == {"bad_json": 2, "unrecoverable_range": 1, "unreadable": 4}


def test_kafka_dlq_summary_counts_held_records_from_the_watermarks():
    summary = shape.kafka_dlq_summary("t.dlq", {0: (10, 25), 1: (0, 0), 2: (3, 4)}, {"bad_json": 7})
    assert summary == {"topic": "t.dlq", "records": 16, "sampled": 7, "reasons": [{"reason": "bad_json", "count": 7}]}


def test_silver_dlq_summary():
    summary = shape.silver_dlq_summary("silver_dlq", 120, {"decode_error": 3, "non_positive_price": 9}, 24)
    assert summary == {"table": "silver_dlq", "records": 120, "window_hours": 24, "recent": 12,
                       "reasons": [{"reason": "non_positive_price", "count": 9}, {"reason": "decode_error", "count": 3}]}


NOW = datetime(2026, 3, 2, 10, 42, 7, tzinfo=UTC)


def test_heat_hours_are_the_current_hour_and_the_23_before_oldest_first():
    hours = shape.heat_hours(NOW)
    assert len(hours) == 24
    assert hours[-1] == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert hours[0] == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert all(b - a == timedelta(hours=1) for a, b in zip(hours, hours[1:], strict=False))


def test_heatmap_from_ledger_rows_places_each_cell_in_its_hour_and_leaves_the_rest_empty():
    rows = [
        {"exchange": "binance", "symbol": "BTCUSDT", "hour": datetime(2026, 3, 2, 10, tzinfo=UTC), "status": "complete",
         "gold_trades": 50, "missing_ids": 0},
        {"exchange": "binance", "symbol": "BTCUSDT", "hour": datetime(2026, 3, 2, 8, tzinfo=UTC), "status": "gaps",
         "gold_trades": 40, "missing_ids": 3},
        {"exchange": "kraken", "symbol": "BTC/USD", "hour": datetime(2026, 3, 1, 11), "status": "complete",  # naive: UTC
         "gold_trades": 7, "missing_ids": 0},
        {"exchange": "kraken", "symbol": "BTC/USD", "hour": datetime(2026, 3, 1, 10, tzinfo=UTC), "status": "gaps",
         "gold_trades": 1, "missing_ids": 1},  # 25 hours ago: outside the map
    ]
    heat = shape.heatmap(shape.ledger_cells(rows), NOW, "ledger")
    assert heat["source"] == "ledger"
    assert heat["hours"][0] == "2026-03-01T11:00:00+00:00" and heat["hours"][-1] == "2026-03-02T10:00:00+00:00"
    assert [(r["exchange"], r["symbol"]) for r in heat["rows"]] == [("binance", "BTCUSDT"), ("kraken", "BTC/USD")]
    btc = heat["rows"][0]["cells"]
    assert btc[23] == {"status": "complete", "trades": 50, "missing": 0}
    assert btc[21] == {"status": "gaps", "trades": 40, "missing": 3}
    assert [i for i, c in enumerate(btc) if c] == [21, 23]
    kraken = heat["rows"][1]["cells"]
    assert [i for i, c in enumerate(kraken) if c] == [0]


def test_a_possibly_incomplete_hour_says_how_long_the_worker_was_not_listening():
    rows = [{"exchange": "bybit", "symbol": "BTCUSDT", "hour": datetime(2026, 3, 2, 10, tzinfo=UTC),
             "status": "possibly_incomplete", "gold_trades": 0, "missing_ids": None, "possible_loss_seconds": 12.345}]
    (cell,) = [c for c in shape.heatmap(shape.ledger_cells(rows), NOW, "ledger")["rows"][0]["cells"] if c]
    assert cell == {"status": "possibly_incomplete", "trades": 0, "missing": None, "possible_loss_s": 12.3}


def test_heatmap_from_gold_counts_trades_per_symbol_and_hour():
    stamps = [("binance", "BTCUSDT", datetime(2026, 3, 2, 9, 59, 59, tzinfo=UTC)),
              ("binance", "BTCUSDT", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
              ("binance", "BTCUSDT", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
              ("kraken", "ETH/USD", datetime(2026, 3, 2, 10, 5))]
    heat = shape.heatmap(shape.gold_cells(stamps), NOW, "gold")
    cells = {(r["symbol"], i): c for r in heat["rows"] for i, c in enumerate(r["cells"]) if c}
    assert cells == {("BTCUSDT", 22): {"status": "counted", "trades": 2, "missing": None},
                     ("BTCUSDT", 23): {"status": "counted", "trades": 1, "missing": None},
                     ("ETH/USD", 23): {"status": "counted", "trades": 1, "missing": None}}


def test_dag_runs_newest_first_per_dag_with_durations_and_dags_without_runs():
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    runs = [
        {"dag_id": "retention", "run_id": "r1", "state": "success", "start_date": t, "end_date": t + timedelta(seconds=90)},
        {"dag_id": "retention", "run_id": "r2", "state": "running", "start_date": t + timedelta(hours=1), "end_date": None},
        {"dag_id": "streaming_babysitter", "run_id": "b0", "state": "queued", "start_date": None, "end_date": None},
        {"dag_id": "other", "run_id": "x", "state": "failed", "start_date": t, "end_date": t},
    ]
    out = shape.dag_runs(runs, ("retention", "compaction", "streaming_babysitter"), NOW, per_dag=3)
    assert out == [
        {"dag_id": "retention", "runs": [
            {"run_id": "r2", "state": "running", "start": "2026-03-02T10:00:00+00:00", "duration_s": 2527.0},
            {"run_id": "r1", "state": "success", "start": "2026-03-02T09:00:00+00:00", "duration_s": 90.0}]},
        {"dag_id": "compaction", "runs": []},
        {"dag_id": "streaming_babysitter", "runs": [{"run_id": "b0", "state": "queued", "start": None, "duration_s": None}]},
    ]
