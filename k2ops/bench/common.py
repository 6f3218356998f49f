"""What the latency runs share: percentiles, Bronze's message ids, each stream's batch times.

``k2ops.bench.latency`` (an isolated pipeline) and ``k2ops.bench.platform`` (the running
platform) compute the same figures from the same sources; both import them from here
so the two methods cannot drift apart.
"""

from __future__ import annotations

import io
import json
import statistics
import threading
from collections.abc import Iterable

from k2.settings import PlatformSettings


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of ``values`` at
    or below it (no interpolation: every figure is a latency some trade really had)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def bronze_message_ids(rows: Iterable[dict]) -> dict[str, int]:
    """message_id -> Bronze commit ms, decoding each row's ``value`` (Confluent wire format:
    magic byte 0, 4-byte schema id, Avro body) with fastavro; ``_commit_ms`` is the row's
    commit time. The first commit of a message_id wins (a replay re-appends it later)."""
    import fastavro

    from k2.contracts import trade_schema_text

    schema = fastavro.parse_schema(json.loads(trade_schema_text()))
    out: dict[str, int] = {}
    for row in rows:
        value = row["value"]
        if not value or len(value) < 6 or value[0] != 0:
            continue
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        except Exception:  # noqa: BLE001 - invalid records are Silver's DLQ, not latency
            continue
        out.setdefault(record["message_id"], row["_commit_ms"])
    return out


class BatchSampler(threading.Thread):
    """Each stream's per-batch time breakdown (k2.streams progress), read every second:
    every batch that carried rows, once.

    ``settings`` says where the streams publish their progress (an isolated pipeline's
    checkpoint root or the platform's); batches published before ``since`` (epoch
    seconds: the end of a warm-up) are left out. ``pids`` keeps every process id each
    stream reported from, so a stream restarted during the run shows as two.
    """

    def __init__(self, settings: PlatformSettings, interval: float = 1.0, since: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.settings, self.interval, self.since = settings, interval, since
        self.batches: dict[tuple[str, int], dict[str, float]] = {}
        self.pids: dict[str, set[int]] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        from k2.contracts import STREAMS
        from k2.streams import read_progress

        while not self.stop_event.wait(self.interval):
            for stream in STREAMS:
                progress = read_progress(stream, self.settings)
                if progress is None or progress.updated_at < self.since:
                    continue
                self.pids.setdefault(stream, set()).add(progress.pid)
                if progress.rows_in and progress.breakdown:
                    self.batches.setdefault((stream, progress.batch_id), progress.breakdown)

    def summary(self) -> dict[str, dict]:
        """stream -> batches seen and the median of each phase over all of them (seconds):
        a phase only some batches run (Silver's registry lookups) counts 0 in the others,
        so a phase of the first batch alone does not show as the median batch's."""
        return summarize_breakdowns(self.batches)


def summarize_breakdowns(batches: dict[tuple[str, int], dict[str, float]]) -> dict[str, dict]:
    by_stream: dict[str, list[dict[str, float]]] = {}
    for (stream, _), phases in sorted(batches.items()):
        by_stream.setdefault(stream, []).append(phases)
    out: dict[str, dict] = {}
    for stream, seen in by_stream.items():
        names = list(dict.fromkeys(name for phases in seen for name in phases))
        out[stream] = {"batches": len(seen), "median_s": {
            name: round(statistics.median(phases.get(name, 0.0) for phases in seen), 3) for name in names}}
    return out
