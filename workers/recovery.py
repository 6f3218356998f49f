"""Wiring of loss recovery for exchanges with consecutive trade ids (``sequential_ids``).

Ties together :class:`~workers.progress.Progress` (fed by the frame handler and by
Kafka's delivery callbacks), the state file it is saved to, and the backfill
(:mod:`workers.backfill`), so :mod:`workers.run` only calls :meth:`Recovery.turn`
every loop turn and :meth:`Recovery.close` at the end. Exchanges with a REST trade
history (``backfills``) backfill over it; with backfill disabled, or without one, gaps
are still detected, across restarts too, and counted and logged as lost.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from k2.log import EventLog
from workers.avro import trade_id_of
from workers.backfill import Backfiller, GapFiller
from workers.base import Exchange
from workers.dlq import DeadLetters
from workers.progress import Progress, StateFile
from workers.settings import WorkerSettings
from workers.stats import WorkerStats

SAVE_INTERVAL_S = 1.0
STATE_FILE = "last_acked.json"


def state_path(settings: WorkerSettings, exchange: str) -> Path:
    return Path(settings.state_dir) / exchange / STATE_FILE


def _is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def backfill_blocker(settings: WorkerSettings, exchange: str) -> str:
    """Why backfill must not run with these settings ("" when it may)."""
    if not settings.backfill:
        return "backfill disabled (K2_WORKERS_BACKFILL=false)"
    streams, rest = settings.urls(exchange), settings.rest_url(exchange)
    if any(_is_local(u) for u in streams) != _is_local(rest):
        # A local simulator's ids mean nothing to the live exchange (and the reverse):
        # "filling" a gap from the other one would publish unrelated trades.
        return (f"K2_{exchange.upper()}_URLS ({','.join(streams)}) and K2_{exchange.upper()}_REST_URL ({rest}) "
                f"point at different venues; set K2_{exchange.upper()}_REST_URL to the simulator's http://127.0.0.1:PORT")
    return ""


class Recovery:
    def __init__(self, exchange: Exchange, settings: WorkerSettings, topic: str,
                 produce: Callable[[dict], None], dead_letters: DeadLetters, stats: WorkerStats, log: EventLog):
        name = exchange.name
        self.topic = topic
        self.log = log
        self.state = StateFile(state_path(settings, name),
                               {"exchange": name, "topic": topic, "rest_url": settings.rest_url(name)}, log)
        floors = {s: m for s, m in self.state.load().items() if s in exchange.pairs}
        self.progress = Progress(floors)
        blocker = backfill_blocker(settings, name) if exchange.backfills else f"{name} has no REST backfill"
        self.backfiller: Backfiller | None = None
        if blocker:
            log.warning("backfill_unavailable", reason=blocker,
                        detail="gaps are detected and counted as lost, not filled")
        else:
            self.backfiller = Backfiller(exchange, settings.rest_url(name), settings.backfill_page_limit, stats)
            self.backfiller.start()
        self.filler = GapFiller(self.progress, self.backfiller, produce, dead_letters, stats, log,
                                settings.backfill_max_trades, blocker,
                                url_setting=f"K2_{name.upper()}_REST_URL")
        self._symbols: dict[bytes, str] = {}
        self._save_at = 0.0
        self.stats = stats
        self._connected = False  # as of the last turn: a rise is a (re)connect, which probes

    def on_acked(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Delivery callback hook: one record acknowledged by Kafka."""
        if topic != self.topic or not key:
            return
        symbol = self._symbols.get(key)
        if symbol is None:
            symbol = self._symbols[key] = key.decode()
        self.progress.acked(symbol, trade_id_of(value))

    def turn(self, now: float) -> None:
        if self.stats.connected != self._connected:
            self._connected = self.stats.connected
            if self._connected:
                self.filler.probe(sorted(self.progress.last_seen))
        self.filler.pump()
        self.stats.backfill_pending = self.filler.pending
        if now >= self._save_at:
            self._save_at = now + SAVE_INTERVAL_S
            self.state.save(self.progress.watermarks())

    def stop(self) -> None:
        """Stop fetching (before the final flush): what is not produced stays an open gap."""
        if self.backfiller is not None:
            self.backfiller.stop()

    def save(self) -> None:
        """Final save, after the producer flushed (its callbacks moved the watermarks)."""
        self.state.save(self.progress.watermarks())
        self.log.info("progress_saved", path=str(self.state.path), last_acked=self.progress.watermarks(),
                      open_gaps=len(self.progress.open_gaps))
