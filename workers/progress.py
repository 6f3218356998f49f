"""Where a worker stands per symbol: trade ids seen, acknowledged by Kafka, still missing.

On venues whose trade ids are consecutive per symbol (the exchange's ``sequential_ids``,
its registry line's ``contiguous_ids``) a worker can tell what it lacks:

* a trade whose id is more than one past the last seen opens a **gap** (the stream
  skipped trades, or they passed while the worker was reconnecting or dead);
* the **watermark** of a symbol is the highest id below which nothing is lacking:
  everything up to it was acknowledged by Kafka (``acks=all``). It is
  ``min(highest acknowledged, lowest in-flight - 1, lowest open gap - 1)``, so it never
  passes a trade that could still be lost.

The watermarks are written to a small JSON file (atomically, about once a second and on
shutdown). A restarted process (kill -9, OOM, crash) starts from them: its first trade
per symbol opens the gap that covers what the dead process held unacknowledged and
what the exchange sent while nobody listened. Being behind only costs duplicates
(same message_id, deduplicated downstream); being ahead would lose trades, which the
min() above rules out.

Everything here runs on the worker's main thread (frames, delivery callbacks, the
backfill results), so there are no locks.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from k2.log import EventLog

STATE_VERSION = 1


@dataclass(frozen=True)
class Gap:
    id: int
    symbol: str
    first: int  # first missing trade id
    last: int  # last missing trade id
    cause: str  # restart (first trade after loading the state file) | stream

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class Progress:
    def __init__(self, floors: dict[str, int] | None = None):
        floors = dict(floors or {})
        self.last_seen: dict[str, int] = dict(floors)
        self.max_acked: dict[str, int] = dict(floors)
        self.pending: dict[str, dict[int, int]] = {}  # symbol -> trade id -> copies in flight
        self.open_gaps: dict[int, Gap] = {}
        self.new_gaps: list[Gap] = []  # opened, not yet taken by the backfill
        self._restarting = set(floors)  # symbols whose next trade closes the restart gap
        self._ids = count(1)

    # hot path ----------------------------------------------------------------------

    def seen(self, symbol: str, trade_id: str) -> None:
        """A trade from the stream, about to be produced."""
        tid = int(trade_id)
        last = self.last_seen.get(symbol)
        if last is None or tid > last:
            if last is not None and tid > last + 1:
                self._open(symbol, last + 1, tid - 1)
            self.last_seen[symbol] = tid
            self._restarting.discard(symbol)
        pending = self.pending.get(symbol)
        if pending is None:
            pending = self.pending[symbol] = {}
        pending[tid] = pending.get(tid, 0) + 1

    def produced(self, symbol: str, trade_id: str) -> None:
        """A backfilled trade, about to be produced (it fills a gap, opens none)."""
        tid = int(trade_id)
        if tid > self.last_seen.get(symbol, tid - 1):
            self.last_seen[symbol] = tid
        pending = self.pending.setdefault(symbol, {})
        pending[tid] = pending.get(tid, 0) + 1

    def acked(self, symbol: str, trade_id: str) -> None:
        """Kafka acknowledged one copy of the trade."""
        tid = int(trade_id)
        pending = self.pending.get(symbol)
        if pending is not None:
            left = pending.get(tid, 0) - 1
            if left > 0:
                pending[tid] = left
            else:
                pending.pop(tid, None)
        if tid > self.max_acked.get(symbol, tid - 1):
            self.max_acked[symbol] = tid

    def probed(self, symbol: str, latest: int) -> bool:
        """REST says ``latest`` is the symbol's newest trade (the connect probe): what lies
        between the last one seen and it is a gap now, not when the next trade comes (a
        quiet symbol may not trade for hours). True when that opened a gap."""
        last = self.last_seen.get(symbol)
        if last is None or latest <= last:
            return False
        self._open(symbol, last + 1, latest)
        self.last_seen[symbol] = latest
        self._restarting.discard(symbol)
        return True

    # gaps --------------------------------------------------------------------------

    def _open(self, symbol: str, first: int, last: int) -> None:
        cause = "restart" if symbol in self._restarting else "stream"
        gap = Gap(next(self._ids), symbol, first, last, cause)
        self.open_gaps[gap.id] = gap
        self.new_gaps.append(gap)

    def take_new_gaps(self) -> list[Gap]:
        gaps, self.new_gaps = self.new_gaps, []
        return gaps

    def narrow(self, gap: Gap, first: int) -> Gap:
        """Give up on the part of ``gap`` below ``first`` (too old to backfill)."""
        narrowed = Gap(gap.id, gap.symbol, first, gap.last, gap.cause)
        self.open_gaps[gap.id] = narrowed
        return narrowed

    def close(self, gap_id: int) -> None:
        """The gap's trades were produced (they are in flight now) or given up."""
        self.open_gaps.pop(gap_id, None)

    # watermarks ----------------------------------------------------------------------

    def watermark(self, symbol: str) -> int | None:
        mark = self.max_acked.get(symbol)
        if mark is None:
            return None
        pending = self.pending.get(symbol)
        if pending:
            mark = min(mark, min(pending) - 1)
        for gap in self.open_gaps.values():
            if gap.symbol == symbol:
                mark = min(mark, gap.first - 1)
        return mark

    def watermarks(self) -> dict[str, int]:
        marks = {s: self.watermark(s) for s in self.max_acked}
        return {s: m for s, m in marks.items() if m is not None}


class StateFile:
    """``<state dir>/<exchange>/last_acked.json``: the watermarks of one worker.

    The file names the topic and the REST source it belongs to; a file written for a
    different topic or source (a simulator run, a test prefix) is ignored at start,
    because its ids mean nothing for this stream. ``key`` names the file's per-symbol
    integers (``last_acked`` here; :mod:`workers.loss_window` keeps ``covered_until``
    times in a file of its own the same way).
    """

    def __init__(self, path: Path, identity: dict[str, str], log: EventLog, key: str = "last_acked"):
        self.path = path
        self.identity = identity
        self.log = log
        self.key = key
        self._written: dict[str, int] | None = None

    def load(self) -> dict[str, int]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.log.info("progress_state_absent", path=str(self.path),
                          detail="first start: trades before the first one received are not backfilled")
            return {}
        except (OSError, ValueError) as exc:
            self.log.error("progress_state_unreadable", path=str(self.path), error=str(exc),
                           action="starting without backfill of the downtime; delete the file if it persists")
            return {}
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION or not isinstance(doc.get(self.key), dict):
            self.log.error("progress_state_unreadable", path=str(self.path), error="unexpected format",
                           action="starting without backfill of the downtime")
            return {}
        theirs = {k: doc.get(k) for k in self.identity}
        if theirs != self.identity:
            self.log.warning("progress_state_ignored", path=str(self.path), file_identity=theirs,
                             identity=self.identity, reason="written for another topic or REST source")
            return {}
        marks = {str(s): int(v) for s, v in doc[self.key].items() if isinstance(v, int)}
        self._written = dict(marks)
        self.log.info("progress_state_loaded", path=str(self.path), **{self.key: marks},
                      updated_at=doc.get("updated_at"))
        return marks

    def save(self, marks: dict[str, int]) -> bool:
        """Write ``marks`` (merged over what the file held) if they changed; atomic."""
        merged = {**(self._written or {}), **marks}
        if merged == self._written:
            return False
        doc = {"version": STATE_VERSION, **self.identity, self.key: merged,
               "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump(doc, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # readers see the old file or the new one, never half
        except OSError as exc:
            self.log.throttled("error", "progress_state_write_failed", "os_error", 60.0, path=str(self.path),
                               error=str(exc), action="check K2_WORKERS_STATE_DIR is writable")
            return False
        self._written = merged
        return True
