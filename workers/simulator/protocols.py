"""What the venues' wire formats share: the malformed frames the simulator injects, times.

Each venue's frames are built in its protocol module (``workers/simulator/venues``).
"""

from __future__ import annotations

from datetime import UTC, datetime

BAD_FRAME_KINDS = ("truncated_json", "not_json", "oversize_decimal", "unknown_symbol")
NOT_JSON = "<html><body>502 Bad Gateway</body></html>"  # what a proxy in front of a venue answers


def malformed(kind: str, good: str, price: tuple[str, str], symbol: tuple[str, str]) -> str:
    """The bad frame of ``kind`` (one of :data:`BAD_FRAME_KINDS`) made from the trade frame
    ``good``: cut in half, not JSON at all, or with the first ``price`` / ``symbol`` text
    (each ``(as in good, replacement)``) replaced by a price too precise for decimal(18,8)
    or a symbol the venue does not list."""
    if kind == "truncated_json":
        return good[: len(good) // 2]
    if kind == "not_json":
        return NOT_JSON
    if kind == "oversize_decimal":
        return good.replace(*price, 1)
    if kind == "unknown_symbol":
        return good.replace(*symbol, 1)
    raise ValueError(f"unknown bad frame kind {kind!r}; known: {', '.join(BAD_FRAME_KINDS)}")


def rfc3339(ts_us: int) -> str:
    dt = datetime.fromtimestamp(ts_us // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_us % 1_000_000:06d}Z"
