"""Dead-letter queue: frames that could not become v3 records, kept with their error.

Record format on the DLQ topic (``k2.contracts.DLQ_TOPIC``), key = exchange name,
value = UTF-8 JSON object::

    {"exchange": "kraken",            # worker that received the frame
     "error_kind": "decimal_out_of_range",   # stable, countable kind
     "error": "data[1]: price 0.000000001 has more than 8 decimal places; ...",
     "raw": "<the frame exactly as received>",
     "raw_encoding": "utf-8",         # or "base64" for a binary frame that is not UTF-8
     "received_at_us": 1767225600123456,
     "endpoint": "wss://ws.kraken.com/v2"}

A frame with several trades of which only some failed is dead-lettered once per
failing trade (the error names the item index); its good trades are produced.
Nothing is dropped: each dead letter is counted by kind, logged (throttled per kind),
and produced through the same idempotent producer as the trades.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable

from workers.log import EventLog
from workers.normalize import NormalizeError


def dead_letter(
    exchange: str, error: NormalizeError, raw: str | bytes, received_us: int, endpoint: str
) -> bytes:
    """The DLQ record value for one rejected frame (or one rejected item of a frame)."""
    if isinstance(raw, bytes):
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    else:
        text, encoding = raw, "utf-8"
    record = {
        "exchange": exchange,
        "error_kind": error.kind,
        "error": str(error),
        "raw": text,
        "raw_encoding": encoding,
        "received_at_us": received_us,
        "endpoint": endpoint,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


class DeadLetters:
    """Counts, logs and produces dead letters for one exchange."""

    def __init__(self, exchange: str, produce: Callable[[bytes, bytes], None], log: EventLog):
        self.exchange = exchange
        self._produce = produce
        self._log = log
        self.by_kind: Counter[str] = Counter()

    def send(self, error: NormalizeError, raw: str | bytes, received_us: int, endpoint: str) -> None:
        self.by_kind[error.kind] += 1
        self._log.throttled(
            "warning",
            "frame_dead_lettered",
            error.kind,
            error=str(error),
            raw=(raw[:300] if isinstance(raw, str) else repr(raw[:300])),
            total_of_kind=self.by_kind[error.kind],
        )
        self._produce(
            self.exchange.encode(), dead_letter(self.exchange, error, raw, received_us, endpoint)
        )
