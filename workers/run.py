"""One worker process: an exchange's WebSocket stream into its Kafka topic.

``python -m workers.run <exchange>`` (the supervisor starts it this way). Exit codes
(:mod:`workers.exits`): 0 after a clean shutdown (SIGTERM/SIGINT: stop reading, flush,
close), 78 for a configuration error (the supervisor does not restart it), 3 when the
RSS ceiling was reached (flushed first; the supervisor restarts the worker), 1 for
anything else.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from k2 import contracts
from k2.config import SettingsError, check_unknown_variables
from k2.kafka_client import client_config
from k2.log import EventLog
from k2.schema_registry import register_trade_schema, registry_client
from k2.settings import PlatformSettings, load_platform
from workers.avro import TradeEncoder
from workers.base import Control, Exchange, UnknownSymbolError
from workers.connection import Link
from workers.dlq import DeadLetters
from workers.exchanges import exchange_class
from workers.exits import EXIT_CONFIG, EXIT_ERROR, EXIT_MEMORY, EXIT_OK, EXIT_UNAVAILABLE
from workers.listing import FETCH_TIMEOUT_S, Listing, StartListingError, start_listing
from workers.loss_window import LossWindows, needs_loss_windows
from workers.metrics import serve
from workers.normalize import NormalizeError
from workers.producer import KafkaSink, ProducerFatalError, check_topic_exists, producer_config
from workers.progress import Progress
from workers.recovery import Recovery
from workers.settings import WorkerSettings, worker_settings
from workers.shard_plan import ShardingError
from workers.shards import ShardSet
from workers.stats import WorkerStats
from workers.symbols import SymbolTable, fetch_listing, fetch_pairs


def topics(settings: WorkerSettings, exchange: str) -> tuple[str, str]:
    """(trade topic, DLQ topic) for ``exchange``, with the optional isolation prefix."""
    prefix = settings.topic_prefix
    return prefix + contracts.trade_topic(exchange), prefix + contracts.DLQ_TOPIC


def symbol_table(settings: WorkerSettings, exchange: str, log: EventLog) -> SymbolTable:
    table = SymbolTable.shipped()
    if not settings.refresh_symbols:
        return table
    try:
        pairs = fetch_pairs(exchange_class(exchange), settings.rest_url(exchange), settings.symbols(exchange), 5.0)
    except (OSError, ValueError) as exc:
        log.warning("symbols_refresh_failed", error=str(exc),
                    action=f"using the shipped workers/exchanges/{exchange}_symbols.json")
        return table
    log.info("symbols_refreshed", source=settings.rest_url(exchange), pairs=len(pairs))
    return table.updated(exchange, pairs)


def build_exchange(settings: WorkerSettings, name: str, table: SymbolTable) -> Exchange:
    try:
        return exchange_class(name)(settings.symbols(name), table)
    except UnknownSymbolError as exc:
        raise SettingsError(f"K2_{name.upper()}_SYMBOLS: {exc}") from None


def captured_exchange(settings: WorkerSettings, name: str, log: EventLog) -> Exchange:
    """The venue with the symbols to capture: the configured ones, or with ``=all`` every
    one its listing holds now (StartListingError when it cannot be read)."""
    if not settings.captures_all(name):
        return build_exchange(settings, name, symbol_table(settings, name, log))
    pairs = start_listing(exchange_class(name), settings.rest_url(name), log)
    return exchange_class(name)([p.symbol for p in pairs], SymbolTable.shipped().updated(name, pairs))


class FrameHandler:
    """Parse one frame, produce its trades, dead-letter what failed. The hot path.

    Every frame ends as trades, a control event or a dead letter: a frame over
    ``max_frame_bytes`` is dead-lettered unparsed, a parser's typed reject with its kind,
    and anything else the parse or the encoding raises (a bug: the parsers are total and
    fuzzed) as ``parser_bug``, counted, logged once per exception site, and the worker
    keeps reading. Errors of the Kafka producer itself propagate: they are not the frame's.
    """

    def __init__(self, exchange: Exchange, encoder: TradeEncoder, sink: KafkaSink, topic: str,
                 dead_letters: DeadLetters, stats: WorkerStats, progress: Progress | LossWindows | None = None,
                 *, max_frame_bytes: int, log: EventLog):
        self.parse = exchange.parse
        # gap detection (Progress) or, for venues without it, coverage (LossWindows)
        self.track = progress.seen if progress is not None else None
        self.coverage = progress if isinstance(progress, LossWindows) else None
        self.encode = encoder.encode
        self.produce = sink.produce
        self.topic = topic
        self.dead_letters = dead_letters
        self.stats = stats
        self.max_frame_bytes = max_frame_bytes
        self.log = log
        self._keys: dict[str, bytes] = {}

    def __call__(self, frame: bytes, link: Link) -> tuple[int, Control | None]:
        received_us = time.time_ns() // 1000
        stats = self.stats
        stats.frames += 1
        if len(frame) > self.max_frame_bytes:
            self.dead_letters.send(self._too_large(len(frame)), frame, received_us, link.endpoint)
            return 0, None
        try:
            parsed = self.parse(frame, received_us)
            trades = parsed.trades
            # Encoded before anything is produced, so a frame is produced whole or dead-lettered whole.
            encoded = [self.encode(record) for record in trades] if trades else ()
        except NormalizeError as exc:
            self.dead_letters.send(exc, frame, received_us, link.endpoint)
            return 0, None
        except Exception as exc:  # noqa: BLE001 - the last-resort guard: no frame may stop the worker
            self._parser_bug(exc, frame, received_us, link)
            return 0, None
        if self.coverage is not None:
            self.coverage.frame(link, received_us, trades, parsed.control)
        if trades:
            keys, topic, produce, track = self._keys, self.topic, self.produce, self.track
            for record, value in zip(trades, encoded, strict=True):
                symbol = record["symbol"]
                key = keys.get(symbol)
                if key is None:
                    key = keys[symbol] = symbol.encode()
                if track is not None:
                    track(symbol, record["trade_id"])
                produce(topic, key, value)
            stats.trades += len(trades)
            stats.last_trade_lag_us = received_us - trades[-1]["timestamp"]
        for reject in parsed.rejects:
            self.dead_letters.send(reject, frame, received_us, link.endpoint)
        return len(trades), parsed.control

    def oversize(self, link: Link, declared_length: int, prefix: bytes) -> None:
        """A frame the connection refused to read (its header announced more than the limit)."""
        self.stats.frames += 1
        self.dead_letters.send(self._too_large(declared_length), prefix, time.time_ns() // 1000, link.endpoint,
                               declared_length=declared_length)

    def _too_large(self, length: int) -> NormalizeError:
        return NormalizeError("frame_too_large", f"frame of {length} bytes exceeds K2_WORKERS_MAX_FRAME_BYTES="
                                                 f"{self.max_frame_bytes}; raise it if the exchange really sends such frames")

    def _parser_bug(self, exc: Exception, frame: bytes, received_us: int, link: Link) -> None:
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        site = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
        error = f"{type(exc).__name__} at {site}: {exc}"[:300]
        self.log.throttled("error", "parser_bug", f"{type(exc).__name__}@{site}", 3600.0, error=error,
                           action="the frame is in the DLQ as parser_bug; report it with that record")
        self.dead_letters.send(NormalizeError("parser_bug", error), frame, received_us, link.endpoint)


@dataclass
class Summary:
    """The periodic one-line summary per stream."""

    interval_s: float
    log: EventLog
    stats: WorkerStats
    next_at: float = 0.0
    last_trades: int = 0
    last_at: float = 0.0

    def maybe_log(self, now: float, force: bool = False) -> None:
        if not force and now < self.next_at:
            return
        s = self.stats
        elapsed = max(1e-9, now - self.last_at) if self.last_at else max(1e-9, time.time() - s.started_at)
        rate = (s.trades - self.last_trades) / elapsed
        age = s.last_message_age_s()
        self.log.info(
            "stream_summary",
            trades_per_s=round(rate, 1),
            trades=s.trades,
            delivered=s.delivered,
            lag_ms=round(s.last_trade_lag_us / 1000, 1),
            last_message_age_s=None if age == float("inf") else round(age, 2),
            queue_depth=s.queue_depth,
            reconnects=sum(s.reconnects.values()),
            reconnects_by_reason=dict(s.reconnects),
            errors=sum(s.all_errors().values()),
            errors_by_kind=dict(s.all_errors()),
            delivery_failures=s.delivery_failures,
            gaps=s.gaps,
            backfilled=s.backfill_trades,
            backfill_lost=s.backfill_lost,
            backfill_pending=s.backfill_pending,
            possible_loss_windows=s.possible_loss_windows,
            possible_loss_s=round(s.possible_loss_seconds, 3),
            connected=s.connected,
            shards_connected=sum(1 for shard in s.shards.values() if shard.connected),
            shards=len(s.shards),
        )
        self.last_trades, self.last_at, self.next_at = s.trades, now, now + self.interval_s


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def run_worker(name: str, settings: WorkerSettings, plat: PlatformSettings, log: EventLog) -> int:
    stats = WorkerStats(name)
    exchange = captured_exchange(settings, name, log)
    topic, dlq_topic = topics(settings, name)
    schema_id = register_trade_schema(registry_client(plat.registry_url), topic, plat.registry_url)
    encoder = TradeEncoder(contracts.trade_schema(), schema_id)
    kafka = client_config(plat)
    if not check_topic_exists(kafka, topic):
        log.warning("topic_missing", topic=topic, bootstrap=plat.kafka_bootstrap,
                    action="create it (bootstrap DAG) unless the broker auto-creates topics")
    sink = KafkaSink(
        producer_config(kafka, f"k2-worker-{name}", settings.linger_ms,
                        settings.compression, settings.queue_max_messages),
        stats, log,
    )
    sink.give_up_after_stop_s = settings.flush_timeout_s
    dead_letters = DeadLetters(name, lambda key, value: sink.produce(dlq_topic, key, value), log)
    dead_letters.by_kind = stats.dead_letters
    recovery = None
    if exchange.sequential_ids:
        recovery = Recovery(
            exchange, settings, topic,
            lambda record: sink.produce(topic, record["symbol"].encode(), encoder.encode(record)),
            dead_letters, stats, log,
        )
        sink.on_acked = recovery.on_acked
    windows = None
    if needs_loss_windows(exchange):
        windows = LossWindows(exchange, settings, topic, dlq_topic, dead_letters, stats, log)
        sink.on_acked = windows.on_acked
    handler = FrameHandler(exchange, encoder, sink, topic, dead_letters, stats,
                           recovery.progress if recovery else windows,
                           max_frame_bytes=settings.max_frame_bytes, log=log)
    try:
        shards = ShardSet(exchange, settings, handler, stats, log, on_oversize=handler.oversize,
                          on_reconnected=recovery.filler.probe if recovery else None,
                          max_symbols=settings.shard_max_symbols, observer=windows)
    except ShardingError as exc:
        raise SettingsError(f"K2_{name.upper()}_SYMBOLS: {exc}") from None
    listing = None
    if settings.captures_all(name):
        listing = Listing(exchange, shards, lambda: fetch_listing(type(exchange), settings.rest_url(name), FETCH_TIMEOUT_S),
                          settings.symbols_refresh_s, log, time.monotonic(), ThreadPoolExecutor(1, "listing"))

    stop_metrics = None
    port = settings.metrics_port(name)
    if port:
        _, stop_metrics = serve(stats, plat.bind_host, port, stale_after_s=settings.watchdog_s * 2)

    stopping: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signal.Signals(signum).name)
        sink.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    summary = Summary(settings.summary_interval_s, log, stats)
    summary.next_at = time.monotonic() + settings.summary_interval_s
    memory_check_at = 0.0
    exit_code = EXIT_OK

    def after_turn() -> None:
        nonlocal memory_check_at, exit_code
        sink.poll()
        now = time.monotonic()
        if recovery is not None:
            recovery.turn(now)
        if listing is not None:
            listing.turn(now)
        if windows is not None:
            windows.turn(now)
        stats.queue_depth = sink.pending()
        summary.maybe_log(now)
        if settings.memory_limit_mb and now >= memory_check_at:
            memory_check_at = now + 5.0
            rss = rss_mb()
            if rss > settings.memory_limit_mb:
                log.error("memory_ceiling", rss_mb=round(rss, 1), limit_mb=settings.memory_limit_mb,
                          action="flushing and exiting with code 3 for the supervisor to restart")
                exit_code = EXIT_MEMORY
                stopping.append("memory")

    log.info("worker_started", pid=os.getpid(), topic=topic, dlq_topic=dlq_topic, schema_id=schema_id,
             symbols=len(exchange.symbols), shards=len(shards.shards), endpoints=list(settings.urls(name)))
    try:
        shards.run(lambda: bool(stopping), after_turn)
    except ProducerFatalError as exc:
        log.error("producer_fatal_exit", error=str(exc))
        exit_code = EXIT_ERROR
    finally:
        if listing is not None:
            listing.stop()
        shards.close_all()
        if recovery is not None:
            recovery.stop()
        remaining = sink.flush(settings.flush_timeout_s)
        if recovery is not None:
            recovery.save()
        if windows is not None:
            windows.save()
        stats.queue_depth = remaining
        summary.maybe_log(time.monotonic(), force=True)
        (log.info if remaining == 0 else log.error)(
            "worker_stopped", reason=",".join(stopping) or "error", undelivered=remaining,
            delivered=stats.delivered, trades=stats.trades,
        )
        if stop_metrics:
            stop_metrics()
    return exit_code


def warn_unknown_settings(log: EventLog) -> None:
    """One warning line per ``K2_*`` variable no setting declares: a typo would otherwise
    fall back to the default without a word. The worker's own log says it, whoever started
    it (`k2 workers` also warns once on its stderr). Raises SettingsError in strict mode."""

    def warn(variable: str, closest: str | None, message: str) -> None:
        if variable:
            log.warning("unknown_setting", variable=variable, did_you_mean=closest, message=message)
        else:
            log.warning("settings_unchecked", error=message)

    check_unknown_variables("worker", warn=warn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.run",
        description="Run one exchange worker (normally started by `k2 workers`). Settings: `k2 config`.",
    )
    parser.add_argument("exchange", choices=sorted(e.name for e in contracts.EXCHANGES))
    parser.add_argument("--exit-reason-file", type=Path,
                        help="on a configuration error, write its message here (the supervisor reads it)")
    args = parser.parse_args(argv)
    log = EventLog(exchange=args.exchange, stream=contracts.trade_topic(args.exchange))
    try:
        warn_unknown_settings(log)
        return run_worker(args.exchange, worker_settings(), load_platform(), log)
    except StartListingError as exc:
        log.error("symbols_listing_unavailable", error=str(exc), exit_code=EXIT_UNAVAILABLE,
                  action="the supervisor restarts the worker after its backoff; fix the URL if it is wrong")
        return EXIT_UNAVAILABLE
    except SettingsError as exc:
        log.error("configuration_error", error=str(exc), exit_code=EXIT_CONFIG,
                  action="fix the setting named in the error (`k2 config` lists them); restarting will not help")
        if args.exit_reason_file is not None:
            try:
                args.exit_reason_file.write_text(str(exc))
            except OSError as write_error:
                log.warning("exit_reason_unwritten", path=str(args.exit_reason_file), error=str(write_error))
        return EXIT_CONFIG
    except Exception as exc:  # the supervisor restarts us; say why first
        log.error("worker_crashed", error=f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
