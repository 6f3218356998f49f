"""Frames that batch several trades (Kraken, Bybit, ...): each item is its own record or reject.

One bad trade must not drop its neighbours, and its dead letter must say which item it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec

from workers.base import Parsed
from workers.normalize import NormalizeError

T = TypeVar("T")
S = TypeVar("S")


def parse_items(items: Iterable[T], record: Callable[[T], dict]) -> Parsed:
    """``record(item)`` for each item; a :class:`NormalizeError` rejects that item alone,
    its message prefixed with the item's index (``data[2]: ...``)."""
    parsed = Parsed()
    for index, item in enumerate(items):
        try:
            parsed.trades.append(record(item))
        except NormalizeError as exc:
            parsed.rejects.append(NormalizeError(exc.kind, f"data[{index}]: {exc}"))
    return parsed


def convert_item(item: object, struct: type[S], mismatch: str) -> S:
    """``item`` (one decoded element of a batch) as ``struct``, or ``NormalizeError("bad_trade",
    "<mismatch>: <msgspec's reason>")``, the reject :func:`parse_items` files under its index."""
    try:
        return msgspec.convert(item, struct)
    except msgspec.ValidationError as exc:
        raise NormalizeError("bad_trade", f"{mismatch}: {exc}") from None
