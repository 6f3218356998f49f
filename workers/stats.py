"""Live counters of one worker process, cheap enough to bump per trade.

The hot path increments plain attributes; :mod:`workers.metrics` exposes them to
Prometheus at scrape time and :mod:`workers.run` logs the periodic summary from them,
so the receive loop never pays for a metrics library call per trade.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class LatencyHistogram:
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total_s: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total_s += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.bucket_counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class ShardState:
    """One connection shard of the worker (workers.shards), for its metrics."""

    symbols: int = 0  # symbols it is subscribed to
    connected: bool = False  # a WebSocket of it is open


@dataclass
class WorkerStats:
    exchange: str
    started_at: float = field(default_factory=time.time)
    frames: int = 0
    trades: int = 0  # normalized trades handed to the producer
    delivered: int = 0  # acknowledged by Kafka (acks=all)
    delivery_failures: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by error kind
    errors: Counter[str] = field(default_factory=Counter)  # non-frame errors by kind
    reconnects: Counter[str] = field(default_factory=Counter)  # by reason
    backpressure_waits: int = 0
    produce_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    connected: bool = False
    last_data_at: float = 0.0  # wall time of the last trade or heartbeat
    last_trade_at: float = 0.0
    last_trade_lag_us: int = 0  # ingestion - exchange timestamp of the last trade
    queue_depth: int = 0  # producer messages awaiting delivery, refreshed by the loop
    gaps: int = 0  # missing trade-id ranges detected (stream skips, reconnects, restarts)
    backfill_trades: int = 0  # trades fetched over REST and handed to the producer
    backfill_requests: int = 0  # REST requests made (each costs exchange weight)
    backfill_throttled: int = 0  # 429/418 answers
    backfill_failures: int = 0  # backfill rounds that failed (retried, then given up)
    backfill_lost: int = 0  # trades given up: too old, beyond the cap, or REST kept failing
    backfill_pending: int = 0  # gaps being filled and probes not yet settled, refreshed by the loop
    shards: dict[int, ShardState] = field(default_factory=dict)  # by shard id
    possible_loss_windows: int = 0  # times no connection covered a symbol (venues without gap detection)
    possible_loss_seconds: float = 0.0  # their total extent, summed over symbols

    def last_message_age_s(self, now: float | None = None) -> float:
        if not self.last_data_at:
            return float("inf")
        return (now or time.time()) - self.last_data_at

    def all_errors(self) -> Counter[str]:
        return self.dead_letters + self.errors
