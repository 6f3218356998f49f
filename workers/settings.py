"""Worker settings: endpoints, symbols, resilience timings, producer tuning, ports.

Live exchanges are the default; to use the local simulator point the ``*_URLS`` at
it (``k2 workers --simulator`` does that for you).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from k2.config import load, register, require, setting
from k2.settings import PlatformSettings

EXCHANGE_NAMES = ("binance", "kraken")
# Below 4 KiB a Kraken snapshot (50 trades) would not fit; above 64 MiB one frame could
# take a good part of the worker's memory ceiling.
MIN_FRAME_BYTES, MAX_FRAME_BYTES = 4096, 64 * 1024 * 1024


def _metrics_port(exchange: str, port: int) -> int:
    """The setting ``K2_<EXCHANGE>_METRICS_PORT``: one worker's Prometheus port."""
    return setting(f"{exchange.upper()}_METRICS_PORT", port,
                   f"Prometheus /metrics and /health port of the {exchange.capitalize()} worker (0: off).")


@register
@dataclass(frozen=True)
class WorkerSettings:
    """Exchange workers: endpoints, symbols, reconnect/rotation timings, Kafka producer."""

    binance_urls: tuple[str, ...] = setting(
        "BINANCE_URLS",
        ("wss://stream.binance.com:9443", "wss://data-stream.binance.vision"),
        "Binance WebSocket base URLs, comma separated, tried in order on failure (failover). "
        "The worker appends /stream?streams=... itself.",
    )
    binance_symbols: tuple[str, ...] = setting(
        "BINANCE_SYMBOLS",
        ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"),
        "Binance spot symbols to capture (upper case, must be in workers/symbols.json).",
    )
    binance_rest_url: str = setting(
        "BINANCE_REST_URL",
        "https://api.binance.com",
        "Binance REST base URL: base/quote metadata (exchangeInfo) at start and gap backfill "
        "(historicalTrades). Must be the simulator's http://127.0.0.1:PORT when the streams are.",
    )
    kraken_urls: tuple[str, ...] = setting(
        "KRAKEN_URLS",
        ("wss://ws.kraken.com/v2",),
        "Kraken WebSocket v2 URLs, comma separated, tried in order on failure (failover).",
    )
    kraken_symbols: tuple[str, ...] = setting(
        "KRAKEN_SYMBOLS",
        ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD", "BTC/EUR"),
        "Kraken v2 pairs to capture as BASE/QUOTE (XBT/XDG are accepted and normalized).",
    )
    kraken_rest_url: str = setting(
        "KRAKEN_REST_URL",
        "https://api.kraken.com",
        "Kraken REST base URL: base/quote metadata (AssetPairs) at start and gap backfill "
        "(public Trades, paced to one request a second).",
    )
    refresh_symbols: bool = setting(
        "WORKERS_REFRESH_SYMBOLS",
        True,
        "Refresh the shipped symbol table from the exchange's REST metadata at start when "
        "reachable (falls back to workers/symbols.json, with a warning, when not).",
    )
    connection_lifetime_s: float = setting(
        "WORKERS_CONNECTION_LIFETIME_S",
        23 * 3600.0,
        "Rotate a connection (make-before-break) after this many seconds; below Binance's 24 h cut.",
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
    kraken_ping_interval_s: float = setting(
        "WORKERS_KRAKEN_PING_INTERVAL_S",
        30.0,
        "Interval of Kraken application pings ({'method':'ping'}); Binance pings are answered, not sent.",
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
    binance_metrics_port: int = _metrics_port("binance", 9101)
    kraken_metrics_port: int = _metrics_port("kraken", 9102)
    queue_max_messages: int = setting(
        "WORKERS_QUEUE_MAX_MESSAGES",
        200_000,
        "Bound of the producer's local queue; when full the worker stops reading (backpressure), "
        "it never drops.",
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
        "per symbol Kafka acknowledged), read at start to backfill what a killed worker missed.",
    )
    backfill: bool = setting(
        "WORKERS_BACKFILL",
        True,
        "Fetch trades missing from the stream (gaps in trade ids, reconnects, restarts) over REST: "
        "Binance historicalTrades from K2_BINANCE_REST_URL, Kraken Trades from K2_KRAKEN_REST_URL.",
    )
    backfill_max_trades: int = setting(
        "WORKERS_BACKFILL_MAX_TRADES",
        100_000,
        "Largest gap (trades per symbol) backfilled; older trades of a bigger gap are reported lost.",
    )
    backfill_page_limit: int = setting(
        "WORKERS_BACKFILL_PAGE_LIMIT",
        1000,
        "Trades per backfill request (1-1000): Binance historicalTrades limit (each costs REST weight), "
        "Kraken Trades count.",
    )
    restart_backoff_base_s: float = setting(
        "SUPERVISOR_BACKOFF_BASE_S", 1.0, "Supervisor: first delay before restarting an exited worker."
    )
    restart_backoff_cap_s: float = setting(
        "SUPERVISOR_BACKOFF_CAP_S", 60.0, "Supervisor: largest restart delay."
    )

    def validate(self) -> None:
        for env, urls in (("BINANCE_URLS", self.binance_urls), ("KRAKEN_URLS", self.kraken_urls)):
            require(len(urls) > 0, env, "needs at least one ws:// or wss:// URL")
            for url in urls:
                require(
                    url.startswith(("ws://", "wss://")), env, f"{url!r} is not a ws:// or wss:// URL"
                )
        require(len(self.binance_symbols) > 0, "BINANCE_SYMBOLS", "needs at least one symbol")
        require(len(self.kraken_symbols) > 0, "KRAKEN_SYMBOLS", "needs at least one symbol")
        for sym in self.kraken_symbols:
            require("/" in sym, "KRAKEN_SYMBOLS", f"{sym!r} is not BASE/QUOTE (e.g. BTC/USD)")
        positive = {
            "WORKERS_CONNECTION_LIFETIME_S": self.connection_lifetime_s,
            "WORKERS_WATCHDOG_S": self.watchdog_s,
            "WORKERS_CONNECT_TIMEOUT_S": self.connect_timeout_s,
            "WORKERS_BACKOFF_BASE_S": self.backoff_base_s,
            "WORKERS_KRAKEN_PING_INTERVAL_S": self.kraken_ping_interval_s,
            "WORKERS_QUEUE_MAX_MESSAGES": self.queue_max_messages,
            "WORKERS_SUMMARY_INTERVAL_S": self.summary_interval_s,
            "SUPERVISOR_BACKOFF_BASE_S": self.restart_backoff_base_s,
        }
        for env, value in positive.items():
            require(value > 0, env, f"must be > 0, got {value}")
        require(self.rotation_overlap_s >= 0, "WORKERS_ROTATION_OVERLAP_S", "must be >= 0")
        require(self.backfill_max_trades > 0, "WORKERS_BACKFILL_MAX_TRADES", "must be > 0")
        require(1 <= self.backfill_page_limit <= 1000, "WORKERS_BACKFILL_PAGE_LIMIT",
                f"must be 1-1000 (Binance's largest page), got {self.backfill_page_limit}")
        require(self.binance_rest_url.startswith(("http://", "https://")), "BINANCE_REST_URL",
                f"{self.binance_rest_url!r} is not an http:// or https:// URL")
        require(self.linger_ms >= 0, "WORKERS_LINGER_MS", "must be >= 0")
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
        for env, port in (
            ("BINANCE_METRICS_PORT", self.binance_metrics_port),
            ("KRAKEN_METRICS_PORT", self.kraken_metrics_port),
        ):
            require(0 <= port < 65536, env, f"port {port} is outside 0-65535 (0 disables)")

    def _of(self, exchange: str, name: str):
        """The setting ``<exchange>_<name>`` (KeyError for an exchange the workers do not run)."""
        if exchange not in EXCHANGE_NAMES:
            raise KeyError(exchange)
        return getattr(self, f"{exchange}_{name}")

    def urls(self, exchange: str) -> tuple[str, ...]:
        return self._of(exchange, "urls")

    def symbols(self, exchange: str) -> tuple[str, ...]:
        return self._of(exchange, "symbols")

    def metrics_port(self, exchange: str) -> int:
        return self._of(exchange, "metrics_port")

    def rest_url(self, exchange: str) -> str:
        return self._of(exchange, "rest_url")


@functools.cache
def worker_settings() -> WorkerSettings:
    """The process's worker settings (read once at start)."""
    return load(WorkerSettings)
