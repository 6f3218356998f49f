"""Which symbols go on which connection: the shard planner (pure) and the pacer.

A venue caps what one WebSocket connection may carry (Binance 1,024 streams, Bybit a
21,000-character ``args`` array...) and how fast a client may connect and send control
messages. Each venue declares those figures as its :class:`~workers.base.ConnectionLimits`
and how much of a connection one symbol costs (:meth:`~workers.base.Exchange.symbol_weight`);
this module splits a symbol list into shards within them and paces what is sent. The
shards themselves (one connection manager each, one select loop) are :mod:`workers.shards`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from k2.errors import K2Error

Weight = Callable[[str], int]


class ShardingError(K2Error, ValueError):
    """The symbols cannot be placed within the venue's limits (names the limit)."""


def plan_shards(symbols: Sequence[str], weight: Weight, capacity: int, max_symbols: int | None = None) -> list[list[str]]:
    """``symbols`` split, in order, into the fewest consecutive groups whose weights each
    sum to at most ``capacity`` and that hold at most ``max_symbols`` symbols (no cap:
    None). Raises :class:`ShardingError` for a symbol heavier than a whole connection."""
    shards: list[list[str]] = []
    load = 0  # of shards[-1]
    for symbol in symbols:
        cost = _cost(symbol, weight, capacity)
        if not shards or load + cost > capacity or (max_symbols is not None and len(shards[-1]) >= max_symbols):
            shards.append([])
            load = 0
        shards[-1].append(symbol)
        load += cost
    return shards


def place(shards: Sequence[Sequence[str]], new: Iterable[str], weight: Weight, capacity: int,
          max_symbols: int | None = None) -> tuple[dict[int, list[str]], list[list[str]]]:
    """Where listed symbols go without moving any already placed: each into the first
    existing shard with room (``{shard index: symbols added}``), the rest into new shards
    (returned second, planned like :func:`plan_shards`)."""
    loads = [sum(weight(s) for s in shard) for shard in shards]
    counts = [len(shard) for shard in shards]
    added: dict[int, list[str]] = {}
    rest: list[str] = []
    for symbol in new:
        cost = _cost(symbol, weight, capacity)
        for index, load in enumerate(loads):
            if load + cost <= capacity and (max_symbols is None or counts[index] < max_symbols):
                loads[index] += cost
                counts[index] += 1
                added.setdefault(index, []).append(symbol)
                break
        else:
            rest.append(symbol)
    return added, plan_shards(rest, weight, capacity, max_symbols)


def _cost(symbol: str, weight: Weight, capacity: int) -> int:
    cost = weight(symbol)
    if cost > capacity:
        raise ShardingError(f"symbol {symbol!r} costs {cost} of a connection that carries {capacity}")
    return cost


class SlidingWindow:
    """At most ``count`` events in any ``window_s`` seconds, as venues state their limits
    ("300 connections every 5 minutes"): a token bucket would let a burst of ``count``
    follow a refill and exceed the figure over a rolling window."""

    def __init__(self, count: int, window_s: float):
        if count < 1 or window_s <= 0:
            raise ValueError(f"a rate needs count >= 1 and window > 0, got {count} in {window_s}s")
        self.count = count
        self.window_s = window_s
        self._times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event is allowed (0: now)."""
        times = self._times
        while times and times[0] + self.window_s <= now:
            times.popleft()
        # A microsecond over, so that now + wait is past the window despite float rounding.
        return 0.0 if len(times) < self.count else times[0] + self.window_s - now + 1e-6

    def take(self, now: float) -> bool:
        """Record an event at ``now`` if allowed; False (nothing recorded) when not."""
        if self.wait(now) > 0:
            return False
        self._times.append(now)
        return True
