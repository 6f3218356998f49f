"""The health page's figures, shaped from what each source returned: pure functions.

Every function here takes plain values (Prometheus text, progress records, rows read
from a table, DAG runs) and returns JSON-ready dicts; :mod:`.sources` does the reading
and the page (page.html) only lays the dicts out. So each rule of the page (a worker's
rate from two scrapes, which hours the heat map covers, what "top reasons" counts) is
tested on fixtures, without a service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

HEAT_HOURS = 24  # the heat map's window: the current UTC hour and the 23 before it
TOP_REASONS = 8  # reasons listed per DLQ; the rest are summed as "other"


# -- Prometheus text ----------------------------------------------------------------


Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> [(labels, value)]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by sample name (a counter's samples
    end in ``_total``); raises ValueError on text that is not the exposition format."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return samples


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, ()))


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples.get(name, ()):
        key = labels.get(label, "")
        out[key] = out.get(key, 0.0) + value
    return out


# -- workers --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSample:
    """One scrape of a worker's /metrics (workers/metrics.py), at ``at`` (epoch seconds)."""

    at: float
    messages: float  # trades normalized and handed to Kafka
    delivered: float
    delivery_failures: float
    connected: bool
    last_message_age_s: float | None  # None before the first trade or heartbeat
    reconnects: dict[str, float] = field(default_factory=dict)  # by reason
    errors: dict[str, float] = field(default_factory=dict)  # by kind


def worker_sample(text: str, at: float) -> WorkerSample:
    s = parse_metrics(text)
    age = _total(s, "k2_worker_last_message_age_seconds") if "k2_worker_last_message_age_seconds" in s else -1.0
    return WorkerSample(
        at=at,
        messages=_total(s, "k2_worker_messages_total"),
        delivered=_total(s, "k2_worker_delivered_total"),
        delivery_failures=_total(s, "k2_worker_delivery_failures_total"),
        connected=_total(s, "k2_worker_connected") >= 1,
        last_message_age_s=None if age < 0 else age,
        reconnects=_by_label(s, "k2_worker_reconnects_total", "reason"),
        errors=_by_label(s, "k2_worker_errors_total", "kind"),
    )


def worker_rate(current: WorkerSample, previous: WorkerSample | None) -> float | None:
    """Trades per second between two scrapes of the same worker; None with one scrape
    only, or when the counter went down (the worker restarted in between)."""
    if previous is None or current.at <= previous.at or current.messages < previous.messages:
        return None
    return (current.messages - previous.messages) / (current.at - previous.at)


def worker_row(exchange: str, url: str, current: WorkerSample | None, previous: WorkerSample | None,
               down_reason: str | None = None) -> dict:
    """One worker's line: ``down`` (with why) when its endpoint did not answer."""
    if current is None:
        return {"exchange": exchange, "url": url, "state": "down", "reason": down_reason or "no answer"}
    return {
        "exchange": exchange,
        "url": url,
        "state": "connected" if current.connected else "disconnected",
        "rate": worker_rate(current, previous),
        "messages": int(current.messages),
        "delivered": int(current.delivered),
        "delivery_failures": int(current.delivery_failures),
        "reconnects": int(sum(current.reconnects.values())),
        "reconnects_by_reason": _ints(current.reconnects),
        "errors_by_kind": _ints(current.errors),
        "last_message_age_s": current.last_message_age_s,
    }


def _ints(values: Mapping[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])) if v}


# -- streams --------------------------------------------------------------------------


def stream_row(stream: str, pid: int | None, progress: Mapping | None, now: float) -> dict:
    """One stream's line from its run lock and its last published progress (what
    ``k2 streams status`` shows): state, last batch, rows/s and lag.

    Lag is Kafka records behind the latest offsets (Bronze); the Iceberg-fed streams
    have no record lag, so their last batch's age says how far behind they are.
    """
    row: dict = {"stream": stream, "state": "running" if pid else "stopped", "pid": pid or None,
                 "batch_id": None, "batch_time": None, "batch_age_s": None, "rows_in": None,
                 "rows_per_second": None, "lag_records": None, "lost_offsets": 0}
    if progress:
        row.update(batch_id=progress.get("batch_id"), batch_time=progress.get("batch_timestamp"),
                   rows_in=progress.get("rows_in"), rows_per_second=progress.get("rows_per_second"),
                   lag_records=progress.get("source_lag"),
                   lost_offsets=int(progress.get("lost_offsets_total") or 0))
        updated = progress.get("updated_at")
        if isinstance(updated, (int, float)):
            row["batch_age_s"] = max(0.0, now - updated)
    return row


# -- dead letters ---------------------------------------------------------------------


def top_reasons(counts: Mapping[str, int], limit: int = TOP_REASONS) -> list[dict]:
    """``[{"reason", "count"}]``, most frequent first (ties by name), at most ``limit``
    rows: when there are more reasons, the last row is ``other`` with the rest's sum."""
    ordered = sorted(((r, int(n)) for r, n in counts.items() if n), key=lambda rn: (-rn[1], rn[0]))
    if len(ordered) <= limit:
        return [{"reason": r, "count": n} for r, n in ordered]
    shown = ordered[: limit - 1]
    rest = sum(n for _, n in ordered[limit - 1:])
    return [*({"reason": r, "count": n} for r, n in shown), {"reason": "other", "count": rest}]


def dlq_kinds(values: Iterable[bytes | None]) -> Counter:
    """``error_kind`` of each DLQ topic record (JSON, workers/dlq.py); a record that is not
    such JSON counts as ``unreadable`` (the page must show it, not fail on it)."""
    import json

    kinds: Counter = Counter()
    for value in values:
        try:
            record = json.loads(value or b"")
            kind = record.get("error_kind") if isinstance(record, dict) else None
        except (ValueError, UnicodeDecodeError):
            kind = None
        kinds[str(kind) if kind else "unreadable"] += 1
    return kinds


def kafka_dlq_summary(topic: str, watermarks: Mapping[int, tuple[int, int]], kinds: Mapping[str, int]) -> dict:
    """The DLQ topic: records Kafka still holds (from each partition's low/high
    watermarks) and the reasons among the newest ones read (``sampled`` of them)."""
    return {"topic": topic, "records": sum(max(0, high - low) for low, high in watermarks.values()),
            "sampled": sum(kinds.values()), "reasons": top_reasons(kinds)}


def silver_dlq_summary(table: str, total_records: int, recent: Mapping[str, int], window_h: int) -> dict:
    """``silver_dlq``: all its rows (from the snapshot summary) and the reasons of the rows
    rejected in the last ``window_h`` hours."""
    return {"table": table, "records": total_records, "window_hours": window_h,
            "recent": sum(recent.values()), "reasons": top_reasons(recent)}


# -- completeness heat map ------------------------------------------------------------


def heat_hours(now: datetime, hours: int = HEAT_HOURS) -> list[datetime]:
    """The map's columns: the start of the current UTC hour and the ``hours - 1`` before, oldest first."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def _hour_of(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def heatmap(cells: Iterable[Mapping], now: datetime, source: str, hours: int = HEAT_HOURS) -> dict:
    """Rows of (exchange, symbol), columns of UTC hours; a cell per row and hour, None
    where the source has nothing. ``cells`` are dicts with ``exchange``, ``symbol``,
    ``hour`` (a datetime) and the cell's own fields (``status``, ``trades``, ``missing``);
    those outside the window are left out. ``source`` says what the cells are:
    ``ledger`` (completeness statuses) or ``gold`` (trade counts only)."""
    columns = heat_hours(now, hours)
    index = {h: i for i, h in enumerate(columns)}
    rows: dict[tuple[str, str], list] = {}
    for cell in cells:
        at = index.get(_hour_of(cell["hour"]))
        if at is None:
            continue
        key = (str(cell["exchange"]), str(cell["symbol"]))
        line = rows.setdefault(key, [None] * len(columns))
        line[at] = {k: v for k, v in cell.items() if k not in ("exchange", "symbol", "hour")}
    return {"source": source, "hours": [h.isoformat() for h in columns],
            "rows": [{"exchange": e, "symbol": s, "cells": rows[(e, s)]} for e, s in sorted(rows)]}


def ledger_cells(rows: Iterable[Mapping]) -> list[dict]:
    """Ledger rows (k2/ledger_store.py columns) as heat map cells."""
    cells = []
    for r in rows:
        cell = {"exchange": r["exchange"], "symbol": r["symbol"], "hour": r["hour"], "status": r["status"],
                "trades": r["gold_trades"], "missing": r.get("missing_ids")}
        if r.get("possible_loss_seconds"):  # the worker was not listening for part of the hour
            cell["possible_loss_s"] = round(r["possible_loss_seconds"], 1)
        cells.append(cell)
    return cells


def gold_cells(timestamps: Iterable[tuple[str, str, datetime]]) -> list[dict]:
    """Gold trades ``(exchange, symbol, timestamp)`` counted per UTC hour, as heat map cells
    (no status: the ledger is empty, so nothing says whether an hour is complete)."""
    counts: Counter = Counter((e, s, _hour_of(t)) for e, s, t in timestamps)
    return [{"exchange": e, "symbol": s, "hour": h, "status": "counted", "trades": n, "missing": None}
            for (e, s, h), n in sorted(counts.items())]


# -- maintenance DAG runs -----------------------------------------------------------------


def _seconds(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    return max(0.0, ((end or now) - start).total_seconds())


def dag_runs(runs: Iterable[Mapping], dag_ids: Iterable[str], now: datetime, per_dag: int = 3) -> list[dict]:
    """The newest ``per_dag`` runs of each of ``dag_ids`` (in that order): state, start and
    duration (so far, for a run still going); a DAG without runs gets an empty list."""
    by_dag: dict[str, list[Mapping]] = {d: [] for d in dag_ids}
    for run in runs:
        if run["dag_id"] in by_dag:
            by_dag[run["dag_id"]].append(run)
    epoch = datetime.min.replace(tzinfo=UTC)
    out = []
    for dag_id, found in by_dag.items():
        newest = sorted(found, key=lambda r: r.get("start_date") or r.get("logical_date") or epoch, reverse=True)
        out.append({"dag_id": dag_id, "runs": [
            {"run_id": r["run_id"], "state": r["state"],
             "start": r["start_date"].isoformat() if r.get("start_date") else None,
             "duration_s": _seconds(r.get("start_date"), r.get("end_date"), now)}
            for r in newest[:per_dag]]})
    return out
