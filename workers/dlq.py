"""Dead-letter queue: frames that could not become v3 records, kept with their error.

Record format on the DLQ topic (``k2.contracts.DLQ_TOPIC``), key = exchange name,
value = UTF-8 JSON object::

    {"exchange": "kraken",            # worker that received the frame
     "error_kind": "decimal_out_of_range",   # stable, countable kind
     "error": "data[1]: price 0.000000001 has more than 8 decimal places; ...",
     "raw": "<the frame as received, its first RAW_LIMIT_BYTES bytes>",
     "raw_encoding": "utf-8",         # or "base64" for a binary frame that is not UTF-8
     "raw_length": 123,               # bytes of the whole frame
     "raw_sha256": "9f86d0...",       # of the whole frame; null when it was not read whole
     "raw_truncated": false,          # true when "raw" holds only the frame's first bytes
     "received_at_us": 1767225600123456,
     "endpoint": "wss://ws.kraken.com/v2"}

A record stays far below Kafka's 1 MB default message size whatever the frame: the raw
frame is cut at ``RAW_LIMIT_BYTES`` (64 KiB; JSON escaping at most six-folds it) and the
error at ``ERROR_LIMIT_CHARS``, while length and hash still identify the whole frame.

A frame with several trades of which only some failed is dead-lettered once per
failing trade (the error names the item index); its good trades are produced.

**Trades the exchange no longer serves** go to the same topic, as one record per range
(:func:`lost_range`): ``error_kind`` ``unrecoverable_range``, an empty ``raw``, and a
``lost_range`` object ``{"symbol", "first_id", "last_id"}`` (ids both included). The
completeness ledger reads them (k2/ledger_store.py) to call those hours unrecoverable
rather than gaps a backfill may still fill.

**Times no connection covered a symbol** on a venue that can neither detect nor refetch
missing trades (:mod:`workers.loss_window`) go there too, one record per window and
symbol (:func:`possible_loss_window`): ``error_kind`` ``possible_loss_window``, an empty
``raw``, and a ``possible_loss`` object ``{"symbol", "from_us", "to_us", "reason"}``: µs
since the epoch, both included, already widened by ``K2_WORKERS_LOSS_WINDOW_MARGIN_MS``
so that they can be compared with the venue's trade timestamps. Trades of the symbol
timestamped inside may be missing; the completeness ledger calls those hours
``possibly_incomplete`` (k2/loss_windows.py).
Nothing is dropped: each dead letter is counted by kind, logged (throttled per kind),
and produced through the same idempotent producer as the trades.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable

from k2.log import EventLog
from workers.normalize import NormalizeError

RAW_LIMIT_BYTES = 64 * 1024
ERROR_LIMIT_CHARS = 1000


def dead_letter(
    exchange: str, error: NormalizeError, raw: str | bytes, received_us: int, endpoint: str,
    *, declared_length: int | None = None,
) -> bytes:
    """The DLQ record value for one rejected frame (or one rejected item of a frame).

    ``declared_length`` is for a frame refused before it was read whole (over the size
    limit): ``raw`` is then the part received, and there is no hash of the whole.
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    kept = data[:RAW_LIMIT_BYTES]
    truncated = len(kept) < (len(data) if declared_length is None else declared_length)
    text, encoding = _as_text(kept, truncated)
    message = str(error)
    if len(message) > ERROR_LIMIT_CHARS:
        message = f"{message[:ERROR_LIMIT_CHARS]}... ({len(message)} chars)"
    record = {
        "exchange": exchange,
        "error_kind": error.kind,
        "error": message.encode("utf-8", "replace").decode(),  # lone surrogates cannot be UTF-8
        "raw": text,
        "raw_encoding": encoding,
        "raw_length": len(data) if declared_length is None else declared_length,
        "raw_sha256": hashlib.sha256(data).hexdigest() if declared_length is None else None,
        "raw_truncated": truncated,
        "received_at_us": received_us,
        "endpoint": endpoint,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


UNRECOVERABLE_RANGE = "unrecoverable_range"
POSSIBLE_LOSS_WINDOW = "possible_loss_window"


def lost_range(exchange: str, symbol: str, first_id: int, last_id: int, reason: str, received_us: int,
               endpoint: str) -> bytes:
    """The DLQ record value for trades ``first_id..last_id`` of ``symbol`` that the exchange
    no longer serves (see the module doc)."""
    return _loss_record(exchange, UNRECOVERABLE_RANGE,
                        f"{reason}: {symbol} trades {first_id}..{last_id} ({last_id - first_id + 1} trades)",
                        received_us, endpoint,
                        lost_range={"symbol": symbol, "first_id": first_id, "last_id": last_id})


def possible_loss_window(exchange: str, symbol: str, from_us: int, to_us: int, reason: str, received_us: int,
                         endpoint: str) -> bytes:
    """The DLQ record value for a time ``[from_us, to_us]`` in which no connection covered
    ``symbol`` on a venue that can neither detect nor refetch what it missed (see the
    module doc)."""
    return _loss_record(exchange, POSSIBLE_LOSS_WINDOW,
                        f"{reason}: {symbol} not covered for {(to_us - from_us) / 1e6:.3f} s; trades published "
                        "then may be missing and cannot be fetched again",
                        received_us, endpoint,
                        possible_loss={"symbol": symbol, "from_us": from_us, "to_us": to_us, "reason": reason})


def _loss_record(exchange: str, kind: str, error: str, received_us: int, endpoint: str, **detail: dict) -> bytes:
    """A loss report: a dead letter with no frame (empty ``raw``) and its ``detail`` object."""
    record = {
        "exchange": exchange,
        "error_kind": kind,
        "error": error,
        "raw": "",
        "raw_encoding": "utf-8",
        "raw_length": 0,
        "raw_sha256": None,
        "raw_truncated": False,
        "received_at_us": received_us,
        "endpoint": endpoint,
        **detail,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _as_text(kept: bytes, truncated: bool) -> tuple[str, str]:
    """(text, "utf-8") when the bytes are UTF-8, else (base64, "base64"). A cut may split
    the last character of a UTF-8 frame: that character is dropped rather than the frame
    being stored as base64."""
    try:
        return kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(kept) - 3 and exc.reason == "unexpected end of data":
            return kept[: exc.start].decode("utf-8"), "utf-8"
        return base64.b64encode(kept).decode("ascii"), "base64"


class DeadLetters:
    """Counts, logs and produces dead letters for one exchange."""

    def __init__(self, exchange: str, produce: Callable[[bytes, bytes], None], log: EventLog):
        self.exchange = exchange
        self._produce = produce
        self._log = log
        self.by_kind: Counter[str] = Counter()

    def send(self, error: NormalizeError, raw: str | bytes, received_us: int, endpoint: str,
             *, declared_length: int | None = None) -> None:
        self.by_kind[error.kind] += 1
        self._log.throttled(
            "warning",
            "frame_dead_lettered",
            error.kind,
            error=str(error)[:ERROR_LIMIT_CHARS],
            raw=(raw[:300] if isinstance(raw, str) else repr(raw[:300])),
            total_of_kind=self.by_kind[error.kind],
        )
        self._produce(
            self.exchange.encode(),
            dead_letter(self.exchange, error, raw, received_us, endpoint, declared_length=declared_length),
        )

    def lost_range(self, symbol: str, first_id: int, last_id: int, reason: str, received_us: int,
                   endpoint: str) -> None:
        """Record trades the exchange no longer serves (counted under their kind; the
        caller has logged the loss)."""
        self.by_kind[UNRECOVERABLE_RANGE] += 1
        self._produce(self.exchange.encode(),
                      lost_range(self.exchange, symbol, first_id, last_id, reason, received_us, endpoint))

    def possible_loss_window(self, symbol: str, from_us: int, to_us: int, reason: str, received_us: int,
                             endpoint: str) -> bytes:
        """Record a possible-loss window (counted under its kind; the caller logs it).
        Returns the record's value, so the caller can tell when Kafka acknowledged it."""
        self.by_kind[POSSIBLE_LOSS_WINDOW] += 1
        value = possible_loss_window(self.exchange, symbol, from_us, to_us, reason, received_us, endpoint)
        self._produce(self.exchange.encode(), value)
        return value
