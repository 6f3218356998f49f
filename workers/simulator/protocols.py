"""What the venues' wire formats share: the malformed frames the simulator injects, times.

Each venue's frames are built in its protocol module (``workers/simulator/venues``).
"""

from __future__ import annotations

from datetime import UTC, datetime

BAD_FRAME_KINDS = ("truncated_json", "not_json", "oversize_decimal", "unknown_symbol")


def rfc3339(ts_us: int) -> str:
    dt = datetime.fromtimestamp(ts_us // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_us % 1_000_000:06d}Z"
