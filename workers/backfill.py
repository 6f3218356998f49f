"""Backfill of trades the stream missed, over the exchange's REST trade history.

:class:`~workers.progress.Progress` opens a gap ``[first, last]`` when trade ids jump
(inside a connection, across a reconnect, or across a restart from the state file).
This module fills it:

* :func:`fetch_gap` pages through the exchange's :class:`~workers.rest_source.RestSource`
  (Binance ``historicalTrades?fromId=``, :mod:`workers.exchanges.binance`; Kraken
  ``Trades?since=``, :mod:`workers.exchanges.kraken_rest`) until ``last``, at most one request per
  the source's ``min_interval_s``. Throttled answers wait as told; other failures retry
  with backoff a few times, then the gap is reported failed. It only fetches and
  parses: it is a generator of events, unit-tested with a fake ``fetch``.
* :class:`Backfiller` runs it on a helper thread, so slow HTTP never delays the
  receive loop (and with it Binance's pong deadline). Results come back through a
  bounded queue.
* :class:`GapFiller` is the main-thread side: it hands new gaps to the thread (capped at
  ``K2_WORKERS_BACKFILL_MAX_TRADES``), produces returned trades exactly like stream
  trades (same message_id, so overlaps are harmless duplicates), dead-letters bad
  items, closes gaps, and logs ``backfill_started`` / ``backfill_done`` /
  ``backfill_failed`` with counts.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from k2.log import EventLog
from workers.dlq import DeadLetters
from workers.progress import Gap, Progress
from workers.rest_source import Again, Answer, Got, Problem, RestPage, RestSource, Throttled
from workers.rest_source import retry_after_s as retry_after_s  # re-exported for callers
from workers.stats import WorkerStats

MAX_ATTEMPTS = 5  # consecutive failed requests (not 429s) before a gap is given up
MAX_THROTTLED = 20  # 429/418 answers per gap before it is given up
MAX_AGAIN = 30  # cursor moves without trades (Kraken stepping back in time) per gap
MAX_RETRY_AFTER_S = 300.0  # a longer ban (418) fails the gap instead of blocking the thread
TIMEOUT_S = 10.0
RETRY_ROUNDS = 5  # a failed gap is submitted again this many times in all ...
RETRY_DELAY_S = 30.0  # ... this long apart, then given up and counted lost
STOPPING = "worker stopping"

class Backfills(Protocol):
    """An exchange with a REST trade history (Binance, Kraken)."""

    name: str

    def rest_source(self, rest_url: str, page_limit: int) -> RestSource: ...


Fetch = Callable[[str, dict[str, str], float], tuple[int, dict[str, str], bytes]]


def http_get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


# events of fetch_gap -------------------------------------------------------------------


@dataclass
class Page:
    gap: Gap
    page: RestPage
    received_us: int
    url: str


@dataclass
class Unavailable:
    """REST no longer has ``[first, last]`` (older than its history)."""

    gap: Gap
    first: int
    last: int
    received_us: int  # when the page that showed it arrived
    url: str


@dataclass
class Done:
    gap: Gap
    requests: int
    throttled: int
    seconds: float


@dataclass
class Failed:
    gap: Gap
    next_id: int  # first id of the part not fetched
    reason: str
    requests: int


@dataclass(frozen=True)
class Probe:
    """Ask REST for ``symbol``'s newest trade id (at connect)."""

    symbol: str


@dataclass
class Latest:
    """The probe's result: the newest id, or None and why not."""

    symbol: str
    trade_id: int | None
    reason: str = ""


Event = Page | Unavailable | Done | Failed | Latest
PROBE_ATTEMPTS = 3  # a failed probe costs little: the symbol's next trade still reveals the gap
# REST can list a trade before the stream has delivered it (it may still be in the socket
# or not yet read by a busy worker). A probe's answer is therefore compared with what the
# stream saw only this long after it arrived: trades the stream was about to deliver are
# then seen, not backfilled twice and counted as a gap that never was.
PROBE_SETTLE_S = 3.0


class Pacer:
    """When the last request left: shared by the gaps of one thread, so the venue's
    pace holds from one gap to the next too."""

    def __init__(self) -> None:
        self.sent_at = -1e9  # time.monotonic()

    def send(self, fetch: Fetch, url: str, headers: dict[str, str], min_interval_s: float,
             sleep: Callable[[float], bool], stats: WorkerStats) -> tuple[int, dict[str, str], bytes] | Problem | None:
        """One request, no sooner than ``min_interval_s`` after the last; None: the worker is stopping."""
        pause = min_interval_s - (time.monotonic() - self.sent_at)
        if pause > 0 and not sleep(pause):  # the venue's public rate limit
            return None
        stats.backfill_requests += 1
        self.sent_at = time.monotonic()
        try:
            return fetch(url, headers, TIMEOUT_S)
        # URLError, timeouts, refused, bad URL; a body cut short (IncompleteRead) or a
        # malformed status line or header is an HTTPException, which is neither.
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return Problem(f"{type(exc).__name__}: {exc}")


def fetch_gap(
    gap: Gap,
    exchange: Backfills,
    rest_url: str,
    page_limit: int,
    fetch: Fetch,
    sleep: Callable[[float], bool],
    stats: WorkerStats,
    pacer: Pacer | None = None,
) -> Iterator[Event]:
    """Fetch ``gap`` page by page from ``exchange``'s REST source. ``sleep(s)`` waits and
    returns False when stopping. Paging, pacing, throttling and retries are the same for
    every venue; what a request and an answer look like is the source's business."""
    started = time.monotonic()
    source = exchange.rest_source(rest_url, page_limit)
    cursor = source.start(gap)
    next_id, requests, throttled, failures, agains = gap.first, 0, 0, 0, 0
    early: dict[int, dict] = {}  # the gap's trades listed by answers before the cursor was placed
    pacer = pacer or Pacer()

    def failed(reason: str) -> Failed:
        return Failed(gap, next_id, reason, requests)

    while next_id <= gap.last:
        url, headers = source.request(gap, next_id, cursor)
        sent = pacer.send(fetch, url, headers, source.min_interval_s, sleep, stats)
        if sent is None:
            yield failed(STOPPING)
            return
        requests += 1
        answer: Answer = sent if isinstance(sent, Problem) else \
            source.answer(*sent, gap, next_id, cursor, time.time_ns() // 1000)
        if isinstance(answer, Throttled):
            throttled += 1
            stats.backfill_throttled += 1
            if throttled > MAX_THROTTLED or answer.wait_s > MAX_RETRY_AFTER_S:
                yield failed(f"{answer.problem} (wait {answer.wait_s:g}s, {throttled} throttled answers)")
                return
            if not sleep(answer.wait_s):
                yield failed(STOPPING)
                return
            continue
        if isinstance(answer, Again):
            agains += 1
            if answer.page is not None:  # the gap's trades it listed, in case the history is being cut
                early.update((int(r["trade_id"]), r) for r in answer.page.records
                             if next_id <= int(r["trade_id"]) <= gap.last)
            if agains > MAX_AGAIN:
                yield failed(f"{answer.reason} ({agains} times)")
                return
            cursor = answer.cursor
            continue
        if isinstance(answer, Problem):
            failures += 1
            if failures >= MAX_ATTEMPTS:
                yield failed(f"{answer.problem} ({failures} attempts)")
                return
            if not sleep(min(30.0, 0.5 * 2 ** (failures - 1))):
                yield failed(STOPPING)
                return
            continue
        failures, page, cursor = 0, answer.page, answer.cursor
        if page.ids:  # a page may hold only trades below next_id (Kraken's cursor is a time)
            first, last = min(page.ids), max(page.ids)  # no reliance on the order REST lists them in
            if first > next_id:  # REST no longer lists [next_id, first): what an earlier answer did is kept
                kept = [early[i] for i in sorted(early) if next_id <= i < first]
                if kept:
                    yield Page(gap, RestPage(records=kept, ids=[int(r["trade_id"]) for r in kept]),
                               time.time_ns() // 1000, url)
                for lo, hi in _missing(next_id, min(gap.last, first - 1), set(early)):
                    yield Unavailable(gap, lo, hi, time.time_ns() // 1000, url)
            page.records = [r for r in page.records if next_id <= int(r["trade_id"]) <= gap.last]
            next_id = max(next_id, last + 1)
        yield Page(gap, page, time.time_ns() // 1000, url)
    yield Done(gap, requests, throttled, round(time.monotonic() - started, 3))


def _missing(first: int, last: int, held: set[int]) -> list[tuple[int, int]]:
    """``[first, last]`` without the ids in ``held``, as ranges."""
    ranges: list[tuple[int, int]] = []
    lo = first
    for tid in sorted(i for i in held if first <= i <= last):
        if tid > lo:
            ranges.append((lo, tid - 1))
        lo = tid + 1
    if lo <= last:
        ranges.append((lo, last))
    return ranges


def probe_latest(symbol: str, exchange: Backfills, rest_url: str, fetch: Fetch, sleep: Callable[[float], bool],
                 stats: WorkerStats, pacer: Pacer) -> Latest:
    """The newest trade id of ``symbol`` over REST, paced and retried like a gap's pages."""
    source = exchange.rest_source(rest_url, 1)
    reason = ""
    for attempt in range(1, PROBE_ATTEMPTS + 1):
        url, headers = source.latest_request(symbol)
        sent = pacer.send(fetch, url, headers, source.min_interval_s, sleep, stats)
        if sent is None:
            return Latest(symbol, None, STOPPING)
        answer: Answer = sent if isinstance(sent, Problem) else \
            source.latest_answer(*sent, symbol, time.time_ns() // 1000)
        if isinstance(answer, Got) and answer.page.ids:
            return Latest(symbol, max(answer.page.ids))
        if isinstance(answer, Throttled):
            stats.backfill_throttled += 1
            reason, wait = answer.problem, answer.wait_s
        else:
            reason, wait = getattr(answer, "problem", "no trade id in the answer"), 0.5 * 2 ** (attempt - 1)
        if attempt < PROBE_ATTEMPTS and (wait > MAX_RETRY_AFTER_S or not sleep(wait)):
            break
    return Latest(symbol, None, f"{reason} ({attempt} attempts)")


class Backfiller:
    """Runs :func:`fetch_gap` for each submitted gap on one helper thread, in order."""

    def __init__(self, exchange: Backfills, rest_url: str, page_limit: int, stats: WorkerStats,
                 fetch: Fetch = http_get):
        self.exchange = exchange
        self.rest_url = rest_url
        self.page_limit = page_limit
        self.stats = stats
        self.fetch = fetch
        self._gaps: queue.Queue[Gap | Probe | None] = queue.Queue()
        # Bounded: at most this many pages wait for the main thread (memory stays small).
        self.results: queue.Queue[Event] = queue.Queue(maxsize=16)
        self._pacer = Pacer()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backfill", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, gap: Gap) -> None:
        self._gaps.put(gap)

    def probe(self, symbol: str) -> None:
        self._gaps.put(Probe(symbol))

    def stop(self) -> None:
        self._stop.set()
        self._gaps.put(None)
        self._thread.join(TIMEOUT_S + 1.0)

    def _sleep(self, seconds: float) -> bool:
        return not self._stop.wait(seconds)

    def _put(self, event: Event) -> bool:
        while not self._stop.is_set():
            try:
                self.results.put(event, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._gaps.get()
            if item is None:
                return
            if not (self._probe(item) if isinstance(item, Probe) else self._fill(item)):
                return

    def _probe(self, probe: Probe) -> bool:
        try:
            latest = probe_latest(probe.symbol, self.exchange, self.rest_url, self.fetch, self._sleep, self.stats,
                                  self._pacer)
        except Exception as exc:  # noqa: BLE001 - the thread's last-resort guard, as in _fill
            self.stats.errors["backfill_bug"] += 1
            latest = Latest(probe.symbol, None, f"backfill_bug: {type(exc).__name__}: {exc}"[:300])
        return latest.reason == STOPPING or self._put(latest)

    def _fill(self, gap: Gap) -> bool:
        """Fetch one gap; False when stopping. An unexpected exception must not end the
        thread silently (every later gap would wait forever): it fails this gap, which
        the main thread logs, counts and retries after its backoff like any failure."""
        next_id = gap.first
        try:
            for event in fetch_gap(gap, self.exchange, self.rest_url, self.page_limit, self.fetch,
                                   self._sleep, self.stats, self._pacer):
                if isinstance(event, Page) and event.page.ids:
                    next_id = max(next_id, max(event.page.ids) + 1)
                if not self._put(event):
                    return False
        except Exception as exc:  # noqa: BLE001 - the thread's last-resort guard
            self.stats.errors["backfill_bug"] += 1
            reason = f"backfill_bug: {type(exc).__name__}: {exc}"[:300]
            return self._put(Failed(gap, min(next_id, gap.last), reason, 0))
        return True


class GapFiller:
    """Main-thread side of the backfill: submit gaps, produce results, account for them."""

    def __init__(self, progress: Progress, backfiller: Backfiller | None, produce: Callable[[dict], None],
                 dead_letters: DeadLetters, stats: WorkerStats, log: EventLog, max_trades: int,
                 disabled_reason: str = "", url_setting: str = "K2_<EXCHANGE>_REST_URL",
                 clock: Callable[[], float] = time.monotonic, probe_settle_s: float = PROBE_SETTLE_S):
        self.progress = progress
        self.backfiller = backfiller
        self.produce = produce
        self.dead_letters = dead_letters
        self.stats = stats
        self.log = log
        self.max_trades = max_trades
        self.disabled_reason = disabled_reason
        self.url_setting = url_setting  # named in the advice when requests keep failing
        self._produced: dict[int, int] = {}  # gap id -> trades produced
        self._rounds: dict[int, int] = {}  # gap id -> failed rounds so far
        self._retry: list[tuple[float, Gap]] = []  # (due, gap) to submit again
        self._probes: dict[str, tuple[float, Latest]] = {}  # symbol -> (settled at, probe answer)
        self._probing: set[str] = set()  # symbols asked for and not settled yet
        self.clock = clock
        self.probe_settle_s = probe_settle_s

    @property
    def pending(self) -> int:
        """Gaps open (being fetched or waiting for a retry) plus probes not settled yet."""
        return len(self.progress.open_gaps) + len(self._probing)

    def pump(self, max_events: int = 4) -> None:
        """Called every loop turn: cheap when nothing is missing."""
        if self.progress.new_gaps:
            for gap in self.progress.take_new_gaps():
                self._start(gap)
        if self.backfiller is None:
            return
        if self._probes:
            self._settle_probes()
        if self._retry:
            now = self.clock()
            due = [gap for at, gap in self._retry if at <= now]
            self._retry = [(at, gap) for at, gap in self._retry if at > now]
            for gap in due:
                self.log.info("backfill_started", symbol=gap.symbol, from_id=gap.first, to_id=gap.last,
                              cause=gap.cause, trades=gap.size, round=self._rounds.get(gap.id, 0) + 1)
                self.backfiller.submit(gap)
        results = self.backfiller.results
        for _ in range(max_events):
            try:
                event = results.get_nowait()
            except queue.Empty:
                return
            self._on(event)

    def _start(self, gap: Gap) -> None:
        stats, log = self.stats, self.log
        stats.gaps += 1
        fields = {"symbol": gap.symbol, "from_id": gap.first, "to_id": gap.last, "cause": gap.cause}
        if self.backfiller is None:
            self.progress.close(gap.id)
            self._lost(gap.size)
            log.error("backfill_failed", **fields, reason=self.disabled_reason, lost=gap.size)
            return
        if gap.size > self.max_trades:
            first = gap.last - self.max_trades + 1
            skipped = first - gap.first
            self._lost(skipped)
            log.error("backfill_failed", **fields, lost=skipped, reason=(
                f"gap of {gap.size} trades exceeds K2_WORKERS_BACKFILL_MAX_TRADES={self.max_trades}: "
                f"trades {gap.first}..{first - 1} are not fetched"))
            gap = self.progress.narrow(gap, first)
            fields["from_id"] = first
        self._produced[gap.id] = 0
        log.info("backfill_started", **fields, trades=gap.size)
        self.backfiller.submit(gap)

    def probe(self, symbols: list[str]) -> None:
        """At connect: ask REST for each symbol's newest id, so a symbol that stays quiet
        is backfilled from its watermark now, not at its next trade."""
        if self.backfiller is None:
            return
        for symbol in symbols:
            if symbol in self.progress.last_seen:  # nothing to backfill from otherwise
                self._probing.add(symbol)
                self.backfiller.probe(symbol)

    def _on(self, event: Event) -> None:
        if isinstance(event, Latest):
            self._probed(event)
            return
        gap = event.gap
        if isinstance(event, Page):
            page = event.page
            produced = self.progress.produced
            for record in page.records:
                produced(record["symbol"], record["trade_id"])
                self.produce(record)
            self.stats.backfill_trades += len(page.records)
            self.stats.trades += len(page.records)
            self._produced[gap.id] = self._produced.get(gap.id, 0) + len(page.records)
            for error, raw in page.rejects:
                self.dead_letters.send(error, raw, event.received_us, event.url)
        elif isinstance(event, Unavailable):
            lost = event.last - event.first + 1
            self._lost(lost)
            reason = "REST history no longer holds these trades"
            self.log.error("backfill_failed", symbol=gap.symbol, from_id=event.first, to_id=event.last,
                           cause=gap.cause, lost=lost, reason=reason)
            # Recorded where the completeness ledger reads it: these hours are unrecoverable.
            self.dead_letters.lost_range(gap.symbol, event.first, event.last, reason, event.received_us, event.url)
        elif isinstance(event, Done):
            self.progress.close(gap.id)
            self._rounds.pop(gap.id, None)
            self.log.info("backfill_done", symbol=gap.symbol, from_id=gap.first, to_id=gap.last, cause=gap.cause,
                          trades=self._produced.pop(gap.id, 0), requests=event.requests,
                          throttled=event.throttled, seconds=event.seconds)
        elif isinstance(event, Failed):
            self._failed(event)

    def _failed(self, event: Failed) -> None:
        if event.reason == STOPPING:
            return  # the gap stays open, so the saved watermark stays below it: the next start retries
        gap = self.progress.narrow(event.gap, event.next_id)
        rounds = self._rounds.get(gap.id, 0) + 1
        self.stats.backfill_failures += 1
        fields = {"symbol": gap.symbol, "from_id": gap.first, "to_id": gap.last, "cause": gap.cause,
                  "trades": self._produced.get(gap.id, 0), "requests": event.requests, "reason": event.reason}
        if rounds < RETRY_ROUNDS:
            self._rounds[gap.id] = rounds
            self._retry.append((self.clock() + RETRY_DELAY_S, gap))
            self.log.error("backfill_failed", **fields, lost=0, will_retry_in_s=RETRY_DELAY_S, round=rounds,
                           action=f"check {self.url_setting} and the network")
            return
        self.progress.close(gap.id)
        self._rounds.pop(gap.id, None)
        self._produced.pop(gap.id, None)
        self._lost(gap.size)
        self.log.error("backfill_failed", **fields, lost=gap.size, round=rounds,
                       action=f"giving up on these trades; check {self.url_setting} and the network")

    def _probed(self, event: Latest) -> None:
        if event.trade_id is None:
            self._probing.discard(event.symbol)
            self.log.warning("probe_failed", symbol=event.symbol, reason=event.reason,
                             detail="the symbol's next trade reveals any gap instead")
            return
        self._probes[event.symbol] = (self.clock() + self.probe_settle_s, event)

    def _settle_probes(self) -> None:
        """Probe answers that have waited out :data:`PROBE_SETTLE_S`: what the stream has
        still not delivered up to the answered id is a gap now."""
        now = self.clock()
        for symbol, (due, event) in list(self._probes.items()):
            if due > now:
                continue
            del self._probes[symbol]
            self._probing.discard(symbol)
            assert event.trade_id is not None
            last_seen = self.progress.last_seen.get(symbol)
            opened = self.progress.probed(symbol, event.trade_id)
            self.log.info("probed", symbol=symbol, latest=event.trade_id, last_seen=last_seen, gap=opened)
            if opened:
                for gap in self.progress.take_new_gaps():
                    self._start(gap)

    def _lost(self, trades: int) -> None:
        self.stats.backfill_lost += trades
