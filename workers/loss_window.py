"""Possible-loss windows: the loss accounting of venues that can neither detect nor
refetch a missing trade (neither ``sequential_ids`` nor ``backfills``).

Such a venue's trades published while the worker is not listening (a reconnect, a
watchdog stall, a gap between rotated connections, a killed or restarted worker) are
lost and nothing in the data shows it. What the worker knows is when it was not
listening: :mod:`workers.coverage` tracks, per symbol, the spans each connection covered
and the holes between them. Each hole becomes one **possible-loss window**:

* dead-lettered once (``possible_loss_window``, workers/dlq.py), with its bounds widened
  by ``K2_WORKERS_LOSS_WINDOW_MARGIN_MS`` (latency and clock offset: the bounds are
  compared with the venue's trade timestamps);
* counted (``k2_worker_possible_loss_windows_total``, ``..._seconds_total``, and in the
  periodic summary line) and logged as one ``possible_loss_window`` line.

**Across restarts.** Per symbol, "covered until" is saved to
``<K2_WORKERS_STATE_DIR>/<exchange>/covered_until.json`` about once a second and at
shutdown, like ``last_acked.json`` for trade ids. It never passes a trade Kafka has not
acknowledged (the receive time of the oldest trade in flight) nor the start of a window
whose own record is still in flight, so after ``kill -9`` the next process's first window
starts early enough to include whatever died unacknowledged with the old one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from k2.log import EventLog
from workers.avro import trade_id_of
from workers.base import Control, Exchange
from workers.connection import Link
from workers.coverage import RESTART, Coverage, Hole
from workers.dlq import DeadLetters
from workers.progress import StateFile
from workers.settings import WorkerSettings
from workers.stats import WorkerStats

SAVE_INTERVAL_S = 1.0
STATE_FILE = "covered_until.json"


def needs_loss_windows(exchange: type[Exchange] | Exchange) -> bool:
    """The rule: a venue whose gaps can be neither detected (contiguous ids) nor filled
    (REST history) reports the times it was not listening instead."""
    return not exchange.sequential_ids and not exchange.backfills


def state_path(settings: WorkerSettings, exchange: str) -> Path:
    return Path(settings.state_dir) / exchange / STATE_FILE


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LossWindows:
    """Wires :class:`~workers.coverage.Coverage` into one worker process: the frame
    handler calls :meth:`frame` and :meth:`seen`,
    :meth:`subscribing`, :meth:`unsubscribing` and :meth:`closed` (the shard set and its
    connection managers), the producer :meth:`on_acked`; the loop calls
    :meth:`turn`, and :meth:`save` runs after the final flush."""

    def __init__(self, exchange: Exchange, settings: WorkerSettings, topic: str, dlq_topic: str,
                 dead_letters: DeadLetters, stats: WorkerStats, log: EventLog):
        self.topic, self.dlq_topic = topic, dlq_topic
        self.dead_letters, self.stats, self.log = dead_letters, stats, log
        self.margin_us = settings.loss_window_margin_ms * 1000
        self.state = StateFile(state_path(settings, exchange.name), {"exchange": exchange.name, "topic": topic},
                               log, key="covered_until")
        saved = {s: t for s, t in self.state.load().items() if s in exchange.pairs}
        if saved:
            log.warning("coverage_resumed", symbols=len(saved), since=_iso(min(saved.values())),
                        detail="what was published since the last process stopped listening is a possible-loss "
                               "window, reported once each symbol's subscription is confirmed")
        self.coverage = Coverage(saved)
        self._endpoints: dict[Link, str] = {}
        self._link: Link | None = None  # the link and receive time of the frame being handled
        self._now_us = 0
        # symbol -> trade id -> [receive time, copies in flight]: Kafka has not acknowledged them yet
        self._inflight: dict[str, dict[str, list[int]]] = {}
        self._keys: dict[bytes, str] = {}
        self._windows_in_flight: dict[bytes, tuple[str, int]] = {}  # DLQ value -> (symbol, window start)
        self._save_at = 0.0

    # frame handler (hot path) ----------------------------------------------------------

    def frame(self, link: Link, received_us: int, trades: list[dict], control: Control | None) -> None:
        """One frame from ``link``: trades and heartbeats prove the stream, an ack
        confirms a subscribe request.

        The stream is known covered up to the venue's time of the frame's last trade
        rather than up to its receive time: a trade published after that one but lost
        with the connection may be older than the receive time by the whole network and
        queueing delay, which is not bounded. (Capped at the receive time, so a venue
        clock running ahead cannot stretch the coverage.)"""
        self._link = link
        if trades:
            self._now_us = min(received_us, trades[0]["timestamp"])
            self.coverage.data(link, min(received_us, trades[-1]["timestamp"]))
        else:
            self._now_us = received_us
            if control is not None and control.kind == "heartbeat":
                self.coverage.data(link, received_us)
        if control is not None and control.kind == "ack":
            self.coverage.acked(link, received_us)

    def seen(self, symbol: str, trade_id: str) -> None:
        """A trade of the current frame, about to be produced: it confirms its symbol's
        subscription, and until Kafka acknowledges it the symbol's saved covered-until
        time stays before the frame's first trade."""
        self.coverage.traded(self._link, symbol, self._now_us)
        pending = self._inflight.get(symbol)
        if pending is None:
            pending = self._inflight[symbol] = {}
        entry = pending.get(trade_id)
        if entry is None:
            pending[trade_id] = [self._now_us, 1]
        else:
            entry[1] += 1

    def on_acked(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Delivery callback: one record acknowledged by Kafka."""
        if topic == self.topic and key:
            symbol = self._keys.get(key)
            if symbol is None:
                symbol = self._keys[key] = key.decode()
            pending = self._inflight.get(symbol)
            tid = trade_id_of(value)
            entry = pending.get(tid) if pending else None
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del pending[tid]
        elif topic == self.dlq_topic:
            self._windows_in_flight.pop(value, None)

    # connections (workers.connection.LinkObserver) ---------------------------------------

    def subscribing(self, link: Link, symbols: list[str], requests: int) -> None:
        self._endpoints[link] = link.endpoint
        self.coverage.subscribing(link, symbols, requests)

    def unsubscribing(self, link: Link, symbols: list[str], requests: int) -> None:
        self.coverage.unsubscribing(link, symbols, requests)

    def closed(self, link: Link, reason: str) -> None:
        uncovered = self.coverage.closed(link, reason)
        endpoint = self._endpoints.pop(link, "")
        if uncovered and reason != "shutdown":
            self.log.warning("coverage_interrupted", link=link.id, endpoint=endpoint, reason=reason,
                             symbols=len(uncovered), examples=uncovered[:5],
                             detail="a possible-loss window is open; it is reported when the subscription is "
                                    "confirmed again")

    # loop --------------------------------------------------------------------------

    def turn(self, now: float) -> None:
        for hole in self.coverage.take_holes():
            self._report(hole)
        if now >= self._save_at:
            self._save_at = now + SAVE_INTERVAL_S
            self.state.save(self.marks())

    def save(self) -> None:
        """Final save, after the producer flushed (its callbacks cleared what was in flight)."""
        for hole in self.coverage.take_holes():
            self._report(hole)
        marks = self.marks()
        self.state.save(marks)
        self.log.info("coverage_saved", path=str(self.state.path), symbols=len(marks))

    def marks(self) -> dict[str, int]:
        """Per symbol, until when its trades are known covered *and* in Kafka."""
        out: dict[str, int] = {}
        for symbol in self.coverage.symbols():
            mark = self.coverage.covered_until(symbol)
            if mark is None:
                continue
            pending = self._inflight.get(symbol)
            if pending:
                mark = min(mark, min(entry[0] for entry in pending.values()) - 1)
            out[symbol] = mark
        for symbol, start in self._windows_in_flight.values():
            if symbol in out:
                out[symbol] = min(out[symbol], start)
        return out

    def _report(self, hole: Hole) -> None:
        from_us, to_us = hole.from_us - self.margin_us, hole.to_us + self.margin_us
        endpoint = self._endpoints.get(hole.link, "") if hole.link is not None else ""
        value = self.dead_letters.possible_loss_window(hole.symbol, from_us, to_us, hole.reason, hole.to_us, endpoint)
        self._windows_in_flight[value] = (hole.symbol, hole.from_us)
        self.stats.possible_loss_windows += 1
        self.stats.possible_loss_seconds += (to_us - from_us) / 1e6
        self.log.warning("possible_loss_window", symbol=hole.symbol, reason=hole.reason, from_us=from_us,
                         to_us=to_us, seconds=round((to_us - from_us) / 1e6, 3), uncovered_from=_iso(hole.from_us),
                         uncovered_to=_iso(hole.to_us), margin_ms=self.margin_us // 1000,
                         restart=hole.reason == RESTART,
                         action="trades of this symbol published in the window may be missing and cannot be "
                                "fetched again; the completeness ledger marks the hours possibly_incomplete")
