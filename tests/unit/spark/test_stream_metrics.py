"""A stream's Prometheus metrics, fed as the driver feeds them: Spark progress JSON
(recorded in the shape Spark 4.1 writes it, tests/unit/spark/progress/) through the
progress reporter, then read back from the registry and over HTTP."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from k2.config import SettingsError, load
from k2.log import events_named, job_log
from k2.settings import PlatformSettings
from k2.streams import LostRange, StreamProgress, metrics_url, record_losses
from ports import free_port
from spark_jobs.batch_timing import BatchTimings
from spark_jobs.stream_metrics import StreamMetrics, serve
from spark_jobs.streaming import ProgressReporter

RECORDED = Path(__file__).parent / "progress"
T = "market.crypto.trades.binance"


@pytest.fixture
def settings(tmp_path):
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})


def recorded(file: str, **changes) -> dict:
    return {**json.loads((RECORDED / f"{file}.json").read_text()), **changes}


def value(metrics: StreamMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"stream": metrics.stream, **labels})


def test_bronze_batches_rows_lag_and_phases(settings):
    metrics = StreamMetrics("bronze_ingestion", clock=lambda: 1000.0)
    reporter = ProgressReporter("bronze_ingestion", settings, metrics=metrics)
    assert value(metrics, "k2_stream_batches_total") == 0
    assert value(metrics, "k2_stream_started_timestamp_seconds") == 1000.0

    reporter.batch(recorded("bronze_batch"))
    reporter.batch(recorded("bronze_batch", batchId=42, numInputRows=30, timestamp="2026-12-03T12:00:04.000Z"))
    assert value(metrics, "k2_stream_batches_total") == 2
    assert value(metrics, "k2_stream_rows_in_total") == 150
    assert value(metrics, "k2_stream_last_batch_rows") == 30
    assert value(metrics, "k2_stream_last_batch_rows_per_second") == pytest.approx(91.6)
    assert value(metrics, "k2_stream_last_batch_id") == 42
    assert value(metrics, "k2_stream_last_batch_timestamp_seconds") == 1796299204.0  # 2026-12-03T12:00:04Z
    # Behind latest: binance p0 1060-1050, p1 0, kraken p0 537-530.
    assert value(metrics, "k2_stream_source_lag_records") == 17
    assert value(metrics, "k2_stream_batch_duration_seconds_count", phase="total") == 2
    assert value(metrics, "k2_stream_batch_duration_seconds_sum", phase="total") == pytest.approx(2.62)
    assert value(metrics, "k2_stream_batch_duration_seconds_bucket", phase="sink", le="1.0") == 0
    assert value(metrics, "k2_stream_batch_duration_seconds_bucket", phase="sink", le="2.5") == 2
    # The second batch began 0.69 s after the first ended (12:00:02 + 1.31 s).
    assert value(metrics, "k2_stream_batch_duration_seconds_sum", phase="trigger_wait") == pytest.approx(0.69)
    assert value(metrics, "k2_stream_batches_failed_total") == 0

    # The same batch reported again (Spark does after a restart's replay): nothing new ran.
    reporter.batch(recorded("bronze_batch", batchId=42, numInputRows=30))
    assert value(metrics, "k2_stream_batches_total") == 2
    assert value(metrics, "k2_stream_rows_in_total") == 150


def test_gold_counts_its_own_rows_and_phases_and_has_no_lag_series(settings):
    timings = BatchTimings(clock=iter([0.0, 0.5, 0.5, 1.75]).__next__)
    with timings.phase(7, "read"):
        pass
    with timings.phase(7, "merge gold"):
        pass
    metrics = StreamMetrics("gold_aggregation")
    reporter = ProgressReporter("gold_aggregation", settings, rows_in_of_batch=lambda batch: 44,
                                timings=timings, metrics=metrics)
    reporter.batch(recorded("gold_batch"))
    assert value(metrics, "k2_stream_rows_in_total") == 44  # not Spark's doubled 88
    assert value(metrics, "k2_stream_batch_duration_seconds_sum", phase="merge gold") == pytest.approx(1.25)
    assert value(metrics, "k2_stream_batch_duration_seconds_sum", phase="other") == pytest.approx(0.75)
    assert value(metrics, "k2_stream_source_lag_records") is None
    assert value(metrics, "k2_stream_lost_offsets_total") == 0


def test_losses_count_from_the_ledger_then_grow(settings):
    record_losses("bronze_ingestion", [LostRange(T, 0, 10, 15, 3)], settings)  # an earlier run's loss
    metrics = StreamMetrics("bronze_ingestion")
    reporter = ProgressReporter("bronze_ingestion", settings, metrics=metrics,
                                find_losses=lambda raw: [LostRange(T, 1, 100, 120, raw["batchId"])])
    assert (value(metrics, "k2_stream_lost_offsets_total"), value(metrics, "k2_stream_lost_ranges_total")) == (5, 1)
    reporter.batch(recorded("bronze_batch"))
    assert (value(metrics, "k2_stream_lost_offsets_total"), value(metrics, "k2_stream_lost_ranges_total")) == (25, 2)


def test_idle_refreshes_liveness_and_a_failed_query_counts(settings):
    now = iter([1.0, 2.0, 3.0])
    metrics = StreamMetrics("silver_transformation", clock=lambda: next(now))
    reporter = ProgressReporter("silver_transformation", settings, metrics=metrics)
    reporter.batch(recorded("gold_batch", name="silver_transformation"))
    assert value(metrics, "k2_stream_last_progress_timestamp_seconds") == 2.0
    reporter.idle()
    assert value(metrics, "k2_stream_last_progress_timestamp_seconds") == 3.0
    reporter.terminated("org.apache.spark.SparkException: boom")
    reporter.terminated(None)  # a clean stop is no failure
    assert value(metrics, "k2_stream_batches_failed_total") == 1




def test_served_over_http_and_a_busy_port_is_only_a_warning(capsys):
    metrics = StreamMetrics("bronze_ingestion")
    metrics.observe(StreamProgress("bronze_ingestion", 3, "2026-12-03T12:00:00Z", 7, 3.5, 0, 1))
    port = free_port()
    server = serve(metrics, "127.0.0.1", port, job_log("bronze_ingestion"))
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'k2_stream_batches_total{stream="bronze_ingestion"} 1.0' in text
        assert 'k2_stream_rows_in_total{stream="bronze_ingestion"} 7.0' in text
        assert "process_cpu_seconds_total" not in text  # a registry of its own

        assert serve(StreamMetrics("bronze_ingestion"), "127.0.0.1", port, job_log("bronze_ingestion")) is None
    finally:
        server.shutdown()
        server.server_close()
    (busy,) = events_named(capsys.readouterr().out, "metrics_not_served")
    assert (busy["level"], busy["port"]) == ("warning", port)
    assert "K2_BRONZE_INGESTION_METRICS_PORT" in busy["action"]
    assert serve(metrics, "127.0.0.1", 0, job_log("bronze_ingestion")) is None  # 0: off


def test_ports_settings_and_urls(tmp_path):
    base = {"K2_HOME": str(tmp_path)}
    s = load(PlatformSettings, base)
    assert [s.stream_metrics_port(x) for x in ("bronze_ingestion", "silver_transformation", "gold_aggregation")] \
        == [9111, 9112, 9113]
    assert metrics_url("silver_transformation", s) == "http://127.0.0.1:9112/metrics"
    off = load(PlatformSettings, {**base, "K2_GOLD_AGGREGATION_METRICS_PORT": "0", "K2_BIND_HOST": "0.0.0.0"})
    assert metrics_url("gold_aggregation", off) is None
    assert metrics_url("bronze_ingestion", off) == "http://localhost:9111/metrics"
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        load(PlatformSettings, {**base, "K2_SILVER_TRANSFORMATION_METRICS_PORT": "9111"})
    with pytest.raises(SettingsError, match="outside 0-65535"):
        load(PlatformSettings, {**base, "K2_BRONZE_INGESTION_METRICS_PORT": "70000"})
