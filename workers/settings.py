"""Worker settings: endpoints, symbols, resilience timings, producer tuning, ports.

Live exchanges are the default; to use the local simulator point the ``*_URLS`` at
it (``k2 workers --simulator`` does that for you).

The settings of each venue are generated from the registry (:mod:`k2.exchanges`) and the
defaults its module declares (:class:`workers.base.Exchange`): ``K2_<NAME>_URLS``,
``_SYMBOLS``, ``_REST_URL``, ``_METRICS_PORT`` (9101 for the first venue registered, then
one more per venue) and, for venues with an application ping,
``K2_WORKERS_<NAME>_PING_INTERVAL_S``. Read them with :meth:`WorkerSettings.urls` and the
other per-exchange lookups, or as attributes ``<name>_urls`` etc.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

from k2.config import load, register, require, setting
from k2.exchanges import VENUES, names
from k2.settings import PlatformSettings
from workers.exchanges import exchange_class

EXCHANGE_NAMES = names()
ALL = "all"  # K2_<EXCHANGE>_SYMBOLS=all
FIRST_METRICS_PORT = 9101  # the first registered venue's; each next venue's is one more
# Below 4 KiB a Kraken snapshot (50 trades) would not fit; above 64 MiB one frame could
# take a good part of the worker's memory ceiling.
MIN_FRAME_BYTES, MAX_FRAME_BYTES = 4096, 64 * 1024 * 1024


def venue_fields(name: str, index: int) -> list[tuple[str, Any, Any]]:
    """The generated settings of one registered venue, as ``make_dataclass`` fields."""
    cls, up = exchange_class(name), name.upper()
    label = cls.label()
    fields = [
        (f"{name}_urls", "tuple[str, ...]", setting(
            f"{up}_URLS", cls.default_urls,
            cls.urls_doc or f"{label} WebSocket URLs, comma separated, tried in order on failure (failover).")),
        (f"{name}_symbols", "tuple[str, ...]", setting(
            f"{up}_SYMBOLS", cls.default_symbols,
            (cls.symbols_doc or f"{label} symbols to capture (must be in workers/exchanges/{name}_symbols.json).")
            + f" Or all: every symbol {label} trades, from its REST metadata at K2_{up}_REST_URL at start "
              "(the worker exits with code 69 when it cannot be read) and again every "
              "K2_WORKERS_SYMBOLS_REFRESH_S, sharded over connections within the venue's limits.")),
        (f"{name}_rest_url", "str", setting(
            f"{up}_REST_URL", cls.default_rest_url,
            cls.rest_url_doc or f"{label} REST base URL: symbol metadata at start and gap backfill.")),
        (f"{name}_metrics_port", "int", setting(
            f"{up}_METRICS_PORT", FIRST_METRICS_PORT + index,
            f"Prometheus /metrics and /health port of the {label} worker (0: off).")),
    ]
    if cls.ping_interval_s is not None:
        fields.append((f"{name}_ping_interval_s", "float", setting(
            f"WORKERS_{up}_PING_INTERVAL_S", cls.ping_interval_s,
            f"Interval of {label} application pings; venues without one only answer the server's pings.")))
    return fields


@dataclass(frozen=True)
class CommonWorkerSettings:
    """The settings every venue's worker shares (the venues' own are generated below)."""

    refresh_symbols: bool = setting(
        "WORKERS_REFRESH_SYMBOLS",
        True,
        "Refresh the shipped symbol table from the exchange's REST metadata at start when "
        "reachable (falls back to the shipped workers/exchanges/<exchange>_symbols.json, with a warning, "
        "when not).",
    )
    symbols_refresh_s: float = setting(
        "WORKERS_SYMBOLS_REFRESH_S",
        300.0,
        "With K2_<EXCHANGE>_SYMBOLS=all: re-read the venue's symbol listing this often; listed symbols "
        "are subscribed and delisted ones unsubscribed without a restart (a failed read keeps the set).",
    )
    shard_max_symbols: int = setting(
        "WORKERS_SHARD_MAX_SYMBOLS",
        0,
        "For tests and benchmarks: at most this many symbols per connection, below the venue's own "
        "limit, to run several shards with few symbols (0: the venue's limits only).",
    )
    connection_lifetime_s: float = setting(
        "WORKERS_CONNECTION_LIFETIME_S",
        23 * 3600.0,
        "Rotate a connection (make-before-break) after this many seconds; below every venue's own cut "
        "(24 h on the strictest, docs/exchanges.md).",
    )
    rotation_overlap_s: float = setting(
        "WORKERS_ROTATION_OVERLAP_S",
        3.0,
        "After the new connection delivers its first trade, keep reading the old one this long "
        "before closing it, so no trade falls between the two (duplicates are deduplicated).",
    )
    watchdog_s: float = setting(
        "WORKERS_WATCHDOG_S",
        60.0,
        "Reconnect when a connection delivers neither a trade nor a heartbeat for this long.",
    )
    connect_timeout_s: float = setting(
        "WORKERS_CONNECT_TIMEOUT_S", 10.0, "Timeout of one WebSocket connect + handshake."
    )
    backoff_base_s: float = setting(
        "WORKERS_BACKOFF_BASE_S", 0.5, "First reconnect delay; doubles per failed attempt (with jitter)."
    )
    backoff_cap_s: float = setting(
        "WORKERS_BACKOFF_CAP_S", 30.0, "Largest reconnect delay."
    )
    max_frame_bytes: int = setting(
        "WORKERS_MAX_FRAME_BYTES",
        1_048_576,
        "Largest inbound WebSocket message in bytes (4096 to 67108864). A frame announcing more is "
        "not read: it is dead-lettered as frame_too_large (with its length) and the connection is "
        "replaced; a fragmented message that grows past it is dead-lettered the same way.",
    )
    memory_limit_mb: int = setting(
        "WORKERS_MEMORY_LIMIT_MB",
        400,
        "RSS ceiling per worker process; above it the worker flushes and exits with code 3 "
        "so the supervisor restarts it (0 disables).",
    )
    queue_max_messages: int = setting(
        "WORKERS_QUEUE_MAX_MESSAGES",
        200_000,
        "Bound of the producer's local queue; when full the worker stops reading (backpressure), "
        "it never drops.",
    )
    read_interval_ms: int = setting(
        "WORKERS_READ_INTERVAL_MS",
        100,
        "Shortest time between two reads of the connections while they keep up (0 to 1000): "
        "what arrives meanwhile waits in the socket and is read in one go. Waking for every "
        "frame of a quiet venue cost a worker 0.038 cores at 50 trades/s against 0.012 at "
        "100 ms (issue 17: five workers share two cores with the streams). A connection with "
        "more than one turn's worth of frames waiting is read again at once, so throughput "
        "is not capped; 0 reads each frame as it arrives.",
    )
    linger_ms: int = setting("WORKERS_LINGER_MS", 20, "Kafka producer linger.ms (batching delay).")
    compression: str = setting(
        "WORKERS_COMPRESSION", "lz4", "Kafka producer compression.type (none, gzip, snappy, lz4, zstd)."
    )
    flush_timeout_s: float = setting(
        "WORKERS_FLUSH_TIMEOUT_S", 30.0, "How long shutdown waits for outstanding deliveries."
    )
    summary_interval_s: float = setting(
        "WORKERS_SUMMARY_INTERVAL_S", 30.0, "Interval of the one-line per-stream summary log."
    )
    topic_prefix: str = setting(
        "WORKERS_TOPIC_PREFIX",
        "",
        "Prefix for the trade and DLQ topic names (empty in production); isolates tests and demos.",
    )
    state_dir: str = setting(
        "WORKERS_STATE_DIR",
        # Under K2_HOME as the platform settings resolve it (a default cannot take them as
        # a parameter; reading them here keeps one definition of K2_HOME's default).
        lambda v: str(Path(load(PlatformSettings).home, "workers")),
        "Folder of the workers' progress files (<dir>/<exchange>/last_acked.json: the last trade id "
        "per symbol Kafka acknowledged, read at start to backfill what a killed worker missed; "
        "covered_until.json on venues without backfill: until when each symbol's trades are in Kafka, "
        "where a restarted worker's possible-loss window starts).",
    )
    backfill: bool = setting(
        "WORKERS_BACKFILL",
        True,
        "Fetch trades missing from the stream (gaps in trade ids, reconnects, restarts) over the "
        "venue's REST trade history at K2_<EXCHANGE>_REST_URL.",
    )
    backfill_max_trades: int = setting(
        "WORKERS_BACKFILL_MAX_TRADES",
        100_000,
        "Largest gap (trades per symbol) backfilled; older trades of a bigger gap are reported lost.",
    )
    backfill_page_limit: int = setting(
        "WORKERS_BACKFILL_PAGE_LIMIT",
        1000,
        "Trades per backfill request (1-1000): the page size of the venue's REST trade history.",
    )
    loss_window_margin_ms: int = setting(
        "WORKERS_LOSS_WINDOW_MARGIN_MS",
        1000,
        "Venues that can neither detect nor refetch missing trades report each time a symbol was "
        "covered by no connection (a possible-loss window, workers/loss_window.py); its bounds are "
        "widened by this much on each side so that they hold the venue's trade timestamps despite "
        "network latency and the offset between its clock and this host's.",
    )
    restart_backoff_base_s: float = setting(
        "SUPERVISOR_BACKOFF_BASE_S", 1.0, "Supervisor: first delay before restarting an exited worker."
    )
    restart_backoff_cap_s: float = setting(
        "SUPERVISOR_BACKOFF_CAP_S", 60.0, "Supervisor: largest restart delay."
    )

    def validate(self) -> None:
        for name in EXCHANGE_NAMES:
            self._validate_venue(name)
        positive = {
            "WORKERS_CONNECTION_LIFETIME_S": self.connection_lifetime_s,
            "WORKERS_WATCHDOG_S": self.watchdog_s,
            "WORKERS_CONNECT_TIMEOUT_S": self.connect_timeout_s,
            "WORKERS_BACKOFF_BASE_S": self.backoff_base_s,
            "WORKERS_QUEUE_MAX_MESSAGES": self.queue_max_messages,
            "WORKERS_SUMMARY_INTERVAL_S": self.summary_interval_s,
            "WORKERS_SYMBOLS_REFRESH_S": self.symbols_refresh_s,
            "SUPERVISOR_BACKOFF_BASE_S": self.restart_backoff_base_s,
        }
        for env, value in positive.items():
            require(value > 0, env, f"must be > 0, got {value}")
        require(self.rotation_overlap_s >= 0, "WORKERS_ROTATION_OVERLAP_S", "must be >= 0")
        require(self.backfill_max_trades > 0, "WORKERS_BACKFILL_MAX_TRADES", "must be > 0")
        require(1 <= self.backfill_page_limit <= 1000, "WORKERS_BACKFILL_PAGE_LIMIT",
                f"must be 1-1000 (the largest page every venue serves), got {self.backfill_page_limit}")
        require(self.linger_ms >= 0, "WORKERS_LINGER_MS", "must be >= 0")
        require(0 <= self.read_interval_ms <= 1000, "WORKERS_READ_INTERVAL_MS",
                f"must be 0-1000 ms, got {self.read_interval_ms}")
        require(self.shard_max_symbols >= 0, "WORKERS_SHARD_MAX_SYMBOLS", "must be >= 0 (0: the venue's limits)")
        require(self.loss_window_margin_ms >= 0, "WORKERS_LOSS_WINDOW_MARGIN_MS", "must be >= 0")
        require(MIN_FRAME_BYTES <= self.max_frame_bytes <= MAX_FRAME_BYTES, "WORKERS_MAX_FRAME_BYTES",
                f"must be {MIN_FRAME_BYTES}-{MAX_FRAME_BYTES} bytes, got {self.max_frame_bytes}")
        require(self.memory_limit_mb >= 0, "WORKERS_MEMORY_LIMIT_MB", "must be >= 0 (0 disables)")
        require(
            self.backoff_cap_s >= self.backoff_base_s,
            "WORKERS_BACKOFF_CAP_S",
            f"must be >= K2_WORKERS_BACKOFF_BASE_S ({self.backoff_base_s})",
        )
        require(
            self.restart_backoff_cap_s >= self.restart_backoff_base_s,
            "SUPERVISOR_BACKOFF_CAP_S",
            f"must be >= K2_SUPERVISOR_BACKOFF_BASE_S ({self.restart_backoff_base_s})",
        )
        require(
            self.compression in ("none", "gzip", "snappy", "lz4", "zstd"),
            "WORKERS_COMPRESSION",
            f"{self.compression!r} is not one of none, gzip, snappy, lz4, zstd",
        )

    def _validate_venue(self, name: str) -> None:
        up, cls = name.upper(), exchange_class(name)
        urls = self.urls(name)
        require(len(urls) > 0, f"{up}_URLS", "needs at least one ws:// or wss:// URL")
        for url in urls:
            require(url.startswith(("ws://", "wss://")), f"{up}_URLS", f"{url!r} is not a ws:// or wss:// URL")
        require(len(self.symbols(name)) > 0, f"{up}_SYMBOLS", "needs at least one symbol")
        if not self.captures_all(name):
            require(all(s.lower() != ALL for s in self.symbols(name)), f"{up}_SYMBOLS",
                    f"{ALL!r} stands alone (every symbol); do not mix it with symbols")
            for sym in self.symbols(name):
                problem = cls.symbol_problem(sym)
                require(problem is None, f"{up}_SYMBOLS", str(problem))
        rest = self.rest_url(name)
        require(rest.startswith(("http://", "https://")), f"{up}_REST_URL",
                f"{rest!r} is not an http:// or https:// URL")
        port = self.metrics_port(name)
        require(0 <= port < 65536, f"{up}_METRICS_PORT", f"port {port} is outside 0-65535 (0 disables)")
        interval = self.ping_interval(name)
        if interval is not None:
            require(interval > 0, f"WORKERS_{up}_PING_INTERVAL_S", f"must be > 0, got {interval}")

    def _of(self, exchange: str, name: str):
        """The setting ``<exchange>_<name>`` (KeyError for an exchange the workers do not run)."""
        if exchange not in EXCHANGE_NAMES:
            raise KeyError(exchange)
        return getattr(self, f"{exchange}_{name}")

    def urls(self, exchange: str) -> tuple[str, ...]:
        return self._of(exchange, "urls")

    def symbols(self, exchange: str) -> tuple[str, ...]:
        return self._of(exchange, "symbols")

    def captures_all(self, exchange: str) -> bool:
        """``K2_<EXCHANGE>_SYMBOLS=all``: every symbol the venue lists, followed while running."""
        return [s.lower() for s in self.symbols(exchange)] == [ALL]

    def metrics_port(self, exchange: str) -> int:
        return self._of(exchange, "metrics_port")

    def rest_url(self, exchange: str) -> str:
        return self._of(exchange, "rest_url")

    def ping_interval(self, exchange: str) -> float | None:
        """Seconds between application pings, None for a venue that has none."""
        return getattr(self, f"{exchange}_ping_interval_s", None) if exchange in EXCHANGE_NAMES else None


WorkerSettings = register(make_dataclass(
    "WorkerSettings",
    [field for index, v in enumerate(VENUES) for field in venue_fields(v.name, index)],
    bases=(CommonWorkerSettings,),
    frozen=True,
    namespace={"__doc__": "Exchange workers: endpoints, symbols, reconnect/rotation timings, Kafka producer."},
))
WorkerSettings.__module__ = __name__


@functools.cache
def worker_settings() -> WorkerSettings:
    """The process's worker settings (read once at start)."""
    return load(WorkerSettings)
