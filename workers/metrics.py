"""Prometheus metrics and a health endpoint for one worker process.

``GET /metrics`` renders :class:`~workers.stats.WorkerStats` at scrape time (a custom
collector, so the receive loop only bumps integers). ``GET /health`` answers 200 with
a JSON body while the worker is connected and data (trades or heartbeats) is fresh,
503 otherwise: compose health checks and the supervisor's operators read it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workers.stats import WorkerStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WorkerCollector(Collector):
    def __init__(self, stats: WorkerStats):
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s, ex = self.stats, [self.stats.exchange]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["exchange"])
            family.add_metric(ex, value)
            return family

        def by_label(name: str, doc: str, label: str, values: dict) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["exchange", label])
            for key, value in sorted(values.items()):
                family.add_metric([s.exchange, key], value)
            return family

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["exchange"])
            family.add_metric(ex, value)
            return family

        yield counter("k2_worker_frames", "WebSocket text frames received.", s.frames)
        yield counter("k2_worker_messages", "Trades normalized and handed to Kafka.", s.trades)
        yield counter("k2_worker_delivered", "Trades and dead letters acknowledged by Kafka.", s.delivered)
        yield counter(
            "k2_worker_delivery_failures", "Deliveries Kafka failed (each is produced again).", s.delivery_failures
        )
        yield by_label("k2_worker_errors", "Errors by kind (dead letters and others).", "kind", s.all_errors())
        yield by_label("k2_worker_dead_letters", "Frames sent to the DLQ topic by kind.", "kind", s.dead_letters)
        yield by_label("k2_worker_reconnects", "Connections replaced, by reason.", "reason", s.reconnects)
        yield counter(
            "k2_worker_backpressure_waits", "Times the producer queue was full and reading paused.", s.backpressure_waits
        )
        yield counter("k2_worker_gaps", "Missing trade-id ranges detected (skips, reconnects, restarts).", s.gaps)
        yield counter("k2_worker_backfilled", "Trades fetched over REST to fill gaps.", s.backfill_trades)
        yield counter("k2_worker_backfill_requests", "REST backfill requests (exchange weight).", s.backfill_requests)
        yield counter("k2_worker_backfill_throttled", "REST backfill answers 429/418 (rate limited).", s.backfill_throttled)
        yield counter("k2_worker_backfill_failures", "Backfill rounds that failed.", s.backfill_failures)
        yield counter("k2_worker_possible_loss_windows",
                      "Times a symbol was covered by no connection on a venue that cannot detect or refetch "
                      "missing trades (one per symbol and interruption, dead-lettered as possible_loss_window).",
                      s.possible_loss_windows)
        yield counter("k2_worker_possible_loss_seconds", "Extent of those windows, summed over symbols.",
                      s.possible_loss_seconds)
        yield counter("k2_worker_backfill_lost", "Trades given up by the backfill (too old, over the cap, REST failing).", s.backfill_lost)
        yield gauge("k2_worker_backfill_pending",
                    "Gaps being filled over REST plus reconnect probes not yet answered: 0 once the worker "
                    "has caught up with everything it knows it missed.", s.backfill_pending)
        yield gauge("k2_worker_queue_depth", "Records queued in the producer awaiting delivery.", s.queue_depth)
        age = s.last_message_age_s()
        yield gauge(
            "k2_worker_last_message_age_seconds",
            "Seconds since the last trade or heartbeat (-1 before the first).",
            -1.0 if age == float("inf") else age,
        )
        yield gauge("k2_worker_connected", "1 while a WebSocket connection is open.", 1.0 if s.connected else 0.0)
        shard_connected = GaugeMetricFamily(
            "k2_worker_shard_connected", "1 while the shard's WebSocket connection is open.", labels=["exchange", "shard"])
        shard_symbols = GaugeMetricFamily(
            "k2_worker_shard_symbols", "Symbols the shard's connection is subscribed to.", labels=["exchange", "shard"])
        for shard_id, shard in sorted(s.shards.items()):
            shard_connected.add_metric([s.exchange, str(shard_id)], 1.0 if shard.connected else 0.0)
            shard_symbols.add_metric([s.exchange, str(shard_id)], shard.symbols)
        yield shard_connected
        yield shard_symbols
        yield gauge("k2_worker_trade_lag_seconds", "Receive time minus exchange time of the last trade.", s.last_trade_lag_us / 1e6)
        hist = HistogramMetricFamily(
            "k2_worker_produce_latency_seconds", "produce() to Kafka acknowledgement.", labels=["exchange"]
        )
        hist.add_metric(ex, s.produce_latency.cumulative(), s.produce_latency.total_s)
        yield hist


def health(stats: WorkerStats, stale_after_s: float, now: float | None = None) -> tuple[int, dict]:
    """(HTTP status, body): healthy while connected and data is fresher than ``stale_after_s``."""
    now = now or time.time()
    age = stats.last_message_age_s(now)
    starting = now - stats.started_at < stale_after_s
    ok = stats.connected and (age < stale_after_s or (starting and age == float("inf")))
    body = {
        "status": "ok" if ok else ("starting" if starting else "unhealthy"),
        "exchange": stats.exchange,
        "connected": stats.connected,
        "last_message_age_s": None if age == float("inf") else round(age, 3),
        "trades": stats.trades,
        "delivered": stats.delivered,
        "queue_depth": stats.queue_depth,
        # [connected, total]: the worker is up while any shard is; a shard down shows here
        "shards_connected": [sum(1 for s in stats.shards.values() if s.connected), len(stats.shards)],
    }
    return (200 if ok or starting else 503), body


def serve(
    stats: WorkerStats, host: str, port: int, stale_after_s: float
) -> tuple[ThreadingHTTPServer, Callable[[], None]]:
    """Start the metrics/health server in a daemon thread; returns (server, stop)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(stats))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path.startswith("/metrics"):
                self._reply(200, generate_latest(registry), CONTENT_TYPE)
            elif self.path.startswith("/health"):
                status, body = health(stats, stale_after_s)
                self._reply(status, json.dumps(body).encode(), "application/json")
            else:
                self._reply(404, b"try /metrics or /health\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes are not events worth a log line
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server, stop
