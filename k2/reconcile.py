"""Reconciliation across layers (issue 12, item 4): for a window of Kafka time, does every
record a trade topic received reach Bronze, then Silver or ``silver_dlq``, then Gold?

Per topic-partition, the window is the offsets ``[lo, hi)`` Kafka gives for its start and
end times (``offsets_for_times``). Then:

- **Bronze** must hold each of those offsets (it keeps Kafka's coordinates);
- each Bronze record must be in ``silver_dlq`` (by its coordinates) or its trade in the
  exchange's Silver table (by ``message_id``, decoded from the record's Avro body);
- each such trade must be in Gold (by ``message_id``: Gold holds one row per trade, so
  replays and duplicates count once).

Every record that stops somewhere is reported with its topic, partition, offset and
message id and the layer it did not reach. The ``data_quality`` DAG runs it hourly over a
window that ended ``grace`` ago and fails when anything is missing, so a loss shows red in
the UI. ``k2 reconcile`` runs it by hand.

**Possibly incomplete is not missing.** Venues that can neither detect nor refetch a
missing trade report when they were not listening (possible-loss windows,
k2/loss_windows.py); trades published then never reached Kafka, so no layer can miss
them. The report lists the windows (as copied by the completeness ledger's last update)
that overlap its time range, so a reader knows which symbols' trades may be incomplete
there; they do not count as missing.

**In flight is not missing.** A grace period alone cannot tell a lost record from one a
stream has not reached yet: after an outage the streams catch up for a while, and a check
run meanwhile (Airflow's catch-up runs do exactly that) would report every record of the
backlog as lost. So each layer is checked only as far as the stream feeding it has
committed, read from its checkpoint (k2/checkpoint.py):

- Bronze, up to the Kafka offsets of ``bronze_ingestion``'s newest committed batch;
- Silver and ``silver_dlq``, for the Bronze records of the Bronze snapshot
  ``silver_transformation`` has consumed in full (a time-travel scan of Bronze);
- Gold, for the trades of the Silver snapshots ``gold_aggregation`` has consumed.

What lies beyond is counted as *in flight*, not checked, and reported as such. When a
stream's checkpoint is missing, or names other topics or tables than the ones checked (a
checkpoint root of another deployment), that layer is checked in full as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from k2 import contracts
from k2.catalog import catalog
from k2.checkpoint import committed_offsets, iceberg_positions, kafka_positions
from k2.kafka_client import KafkaTarget, as_config, client_config
from k2.settings import PlatformSettings
from k2.streams import checkpoint_dir

EXAMPLES = 5  # missing records named per layer and partition (the counts are always complete)


@dataclass
class PartitionReport:
    topic: str
    partition: int
    first_offset: int  # the window: [first_offset, end_offset)
    end_offset: int
    bronze: int = 0
    dlq: int = 0
    silver: int = 0
    gold: int = 0
    not_in_bronze: list[tuple[int, int]] = field(default_factory=list)  # offset ranges, both included
    not_in_silver: list[tuple[int, str]] = field(default_factory=list)  # (offset, message_id)
    not_in_gold: list[tuple[int, str]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)  # stream -> records it has not reached

    @property
    def produced(self) -> int:
        return self.end_offset - self.first_offset

    @property
    def missing(self) -> int:
        return sum(b - a + 1 for a, b in self.not_in_bronze) + len(self.not_in_silver) + len(self.not_in_gold)

    @property
    def pending(self) -> int:
        return sum(self.in_flight.values())

    def lines(self) -> list[str]:
        where = f"{self.topic}[{self.partition}] offsets {self.first_offset}..{self.end_offset - 1}"
        flying = "".join(f", {n} not yet read by {stream}" for stream, n in self.in_flight.items() if n)
        out = [f"{where}: produced {self.produced}, bronze {self.bronze}, silver {self.silver} + silver_dlq "
               f"{self.dlq}, gold {self.gold} trades{flying}" + ("" if self.missing else ": ok")]
        if self.not_in_bronze:
            ranges = ", ".join(f"{a}..{b}" for a, b in self.not_in_bronze[:EXAMPLES])
            out.append(f"  MISSING in bronze: offsets {ranges}")
        for layer, lost in (("silver (nor silver_dlq)", self.not_in_silver), ("gold", self.not_in_gold)):
            if lost:
                named = ", ".join(f"offset {o} message_id {m}" for o, m in lost[:EXAMPLES])
                out.append(f"  MISSING in {layer}: {len(lost)} record(s), e.g. {named}")
        return out


@dataclass
class Report:
    start: datetime
    end: datetime
    partitions: list[PartitionReport]
    unknown: list[str] = field(default_factory=list)  # streams whose position could not be read
    possible_loss: list[dict] = field(default_factory=list)  # windows overlapping [start, end)

    @property
    def missing(self) -> int:
        return sum(p.missing for p in self.partitions)

    @property
    def in_flight(self) -> int:
        return sum(p.pending for p in self.partitions)

    def lines(self) -> list[str]:
        head = (f"reconciliation of Kafka time [{self.start.isoformat()}, {self.end.isoformat()}): "
                f"{sum(p.produced for p in self.partitions)} records in {len(self.partitions)} partitions, "
                f"{self.missing} missing, {self.in_flight} in flight (not checked yet)")
        notes = [f"  {stream}: no committed position matching these topics/tables; its layer is checked in "
                 "full (records it has not reached yet count as missing)" for stream in self.unknown]
        return [head, *notes, *(line for p in self.partitions if p.produced for line in p.lines()),
                *self._possible_loss_lines()]

    def _possible_loss_lines(self) -> list[str]:
        if not self.possible_loss:
            return []
        symbols = sorted({(w["exchange"], w["symbol"]) for w in self.possible_loss})
        named = ", ".join(f"{w['exchange']} {w['symbol']} {w['from_ts']:%H:%M:%S.%f}..{w['to_ts']:%H:%M:%S.%f} "
                          f"({w['reason']})" for w in self.possible_loss[:EXAMPLES])
        return [f"POSSIBLY INCOMPLETE: {len(self.possible_loss)} possible-loss window(s) of {len(symbols)} symbol(s) "
                f"overlap this range (the worker was not listening; trades then may never have reached Kafka), "
                f"e.g. {named}"]


def _offset_ranges(first: int, end: int, held: set[int]) -> list[tuple[int, int]]:
    """The offsets of ``[first, end)`` not in ``held``, as (first, last) ranges."""
    out: list[tuple[int, int]] = []
    for offset in range(first, end):
        if offset in held:
            continue
        if out and out[-1][1] == offset - 1:
            out[-1] = (out[-1][0], offset)
        else:
            out.append((offset, offset))
    return out


class _Decoder:
    """message_id and trade time of a Confluent-framed v3 record (the registry client's
    deserializer: framing, schema lookups and their cache); None when it does not decode."""

    def __init__(self, registry_url: str) -> None:
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        from k2.schema_registry import registry_client

        self.deserialize = AvroDeserializer(registry_client(registry_url))

    def __call__(self, topic: str, value: bytes) -> tuple[str, int] | None:
        from confluent_kafka.serialization import MessageField, SerializationContext

        try:
            record = self.deserialize(value, SerializationContext(topic, MessageField.VALUE))
        except Exception:  # noqa: BLE001 - an undecodable record belongs in silver_dlq, checked there
            return None
        return record["message_id"], record["timestamp"]


def _window_offsets(kafka: KafkaTarget, topics: list[str], start: datetime, end: datetime) -> dict:
    """(topic, partition) -> (lo, hi): the offsets Kafka received in [start, end)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**as_config(kafka), "group.id": "k2-reconcile", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(timeout=30)
        parts = [TopicPartition(t, p) for t in topics if t in meta.topics for p in sorted(meta.topics[t].partitions)]
        out = {}
        for bound, ms in (("lo", int(start.timestamp() * 1000)), ("hi", int(end.timestamp() * 1000))):
            found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, ms) for tp in parts], timeout=30)
            for tp in found:
                offset = tp.offset
                if offset < 0:  # nothing at or after that time: the partition's end
                    offset = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)[1]
                out.setdefault((tp.topic, tp.partition), {})[bound] = offset
        return {k: (v["lo"], v["hi"]) for k, v in out.items()}
    finally:
        consumer.close()


BRONZE, SILVER, GOLD = contracts.STREAMS  # the streams that feed each layer


def consumed_snapshot(table, entry: dict) -> int | None:
    """The newest snapshot of ``table`` whose rows a reader has consumed in full, given its
    checkpoint entry; None when it has consumed nothing. Raises KeyError when the entry's
    snapshot is not one of ``table``'s (the entry is another table's position)."""
    snap = table.snapshot_by_id(int(entry["snapshot_id"]))
    if snap is None:
        raise KeyError(entry["snapshot_id"])
    key = "total-data-files" if entry.get("scan_all_files") else "added-data-files"
    if int(entry.get("position", 0)) >= int((snap.summary.get(key) if snap.summary else None) or 0):
        return snap.snapshot_id
    # Part way through: the snapshot's own rows are partly unread, its parent's are read
    # (an initial full scan part way through has read nothing for sure).
    return None if entry.get("scan_all_files") else snap.parent_snapshot_id


def _iceberg_positions(s: PlatformSettings, stream: str) -> list[dict]:
    """``stream``'s committed positions in the Iceberg tables it reads (none: unknown)."""
    return iceberg_positions(committed_offsets(checkpoint_dir(stream, s)) or [])


def _reader_snapshot(positions: list[dict], table) -> tuple[bool, int | None]:
    """(known, snapshot): how far a reader at ``positions`` has read ``table`` (see
    consumed_snapshot); unknown when none of them is a snapshot of ``table``."""
    for entry in positions:
        try:
            return True, consumed_snapshot(table, entry)
        except KeyError:
            continue
    return False, None


def _coordinates(table, where, snapshot_id: int | None = None) -> set[tuple[str, int, int]]:
    scan = table.scan(row_filter=where, selected_fields=("topic", "partition", "offset"), snapshot_id=snapshot_id)
    return {(r["topic"], r["partition"], r["offset"]) for r in scan.to_arrow().to_pylist()}


def reconcile(s: PlatformSettings, start: datetime, end: datetime, namespace: str = contracts.NAMESPACE,
              topic_prefix: str = "", log: Callable[[str], None] = print) -> Report:
    """Follow every record Kafka received in [start, end) through the layers, and list the
    possible-loss windows that overlap it (module doc)."""
    from k2 import loss_windows

    report = _follow(s, start, end, namespace, topic_prefix, log)
    cat = catalog(s)
    if cat.table_exists(loss_windows.identifier(namespace)):
        report.possible_loss = loss_windows.overlapping(cat.load_table(loss_windows.identifier(namespace)), start, end)
    return report


def _follow(s: PlatformSettings, start: datetime, end: datetime, namespace: str, topic_prefix: str,
            log: Callable[[str], None]) -> Report:
    """Follow every record Kafka received in [start, end) through the layers."""
    from pyiceberg.expressions import (
        AlwaysFalse,
        And,
        EqualTo,
        GreaterThanOrEqual,
        In,
        LessThan,
        LessThanOrEqual,
        Or,
    )

    cat = catalog(s)
    topics = {topic_prefix + contracts.trade_topic(e.name): e.name for e in contracts.EXCHANGES}
    windows = _window_offsets(client_config(s), list(topics), start, end)
    reports = {key: PartitionReport(key[0], key[1], lo, hi) for key, (lo, hi) in sorted(windows.items())}
    unknown: list[str] = []

    # Bronze is checked up to what bronze_ingestion has committed; the rest is in flight.
    read_by_bronze = kafka_positions(committed_offsets(checkpoint_dir(BRONZE, s)) or [])
    if not any(key in read_by_bronze for key in windows):
        unknown.append(BRONZE)
    checked: dict[tuple[str, int], tuple[int, int]] = {}
    for key, report in reports.items():
        hi = report.end_offset
        if key in read_by_bronze:
            hi = max(report.first_offset, min(hi, read_by_bronze[key]))
            report.in_flight[BRONZE] = report.end_offset - hi
        checked[key] = (report.first_offset, hi)
    busy = [(t, p, lo, hi) for (t, p), (lo, hi) in checked.items() if hi > lo]
    if not busy:
        return Report(start, end, list(reports.values()), unknown)

    def coordinates(t: str, p: int, lo: int, hi: int):
        return And(EqualTo("topic", t), EqualTo("partition", p), GreaterThanOrEqual("offset", lo), LessThan("offset", hi))

    def any_of(exprs):
        out = exprs[0]
        for e in exprs[1:]:
            out = Or(out, e)
        return out

    where = any_of([coordinates(*b) for b in busy])
    bronze_table = cat.load_table(f"{namespace}.{contracts.BRONZE_TABLE}")
    bronze = bronze_table.scan(row_filter=where, selected_fields=("topic", "partition", "offset", "value")).to_arrow().to_pylist()
    dlq = _coordinates(cat.load_table(f"{namespace}.{contracts.SILVER_DLQ_TABLE}"), where)
    log(f"reconcile: {len(bronze)} bronze records, {len(dlq)} in silver_dlq")

    # Silver and silver_dlq are checked for the Bronze records silver_transformation has read.
    known, snapshot = _reader_snapshot(_iceberg_positions(s, SILVER), bronze_table)
    if not known:
        unknown.append(SILVER)
    read_by_silver = None if not known else _coordinates(bronze_table, where, snapshot) if snapshot else set()

    decode = _Decoder(s.registry_url)
    held: dict[tuple[str, int], set[int]] = defaultdict(set)
    trades: dict[str, list[tuple[tuple[str, int], int, str]]] = defaultdict(list)  # exchange -> records
    times: dict[str, list[int]] = defaultdict(list)
    for r in bronze:
        key, coords = (r["topic"], r["partition"]), (r["topic"], r["partition"], r["offset"])
        held[key].add(r["offset"])
        if read_by_silver is not None and coords not in read_by_silver:
            reports[key].in_flight[SILVER] = reports[key].in_flight.get(SILVER, 0) + 1
            continue
        if coords in dlq:
            reports[key].dlq += 1
            continue
        decoded = decode(r["topic"], r["value"])
        exchange = topics[r["topic"]]
        if decoded is None:  # neither decodable nor dead-lettered: Silver lost it
            reports[key].not_in_silver.append((r["offset"], "(undecodable)"))
            continue
        trades[exchange].append((key, r["offset"], decoded[0]))
        times[exchange].append(decoded[1])
    for key, report in reports.items():
        report.bronze = len(held[key])
        report.not_in_bronze = _offset_ranges(*checked[key], held[key])

    # Gold is checked for the Silver trades gold_aggregation has read.
    gold_table = cat.load_table(f"{namespace}.{contracts.GOLD_TABLE}")
    read_by_gold_at = _iceberg_positions(s, GOLD)  # one read of its checkpoint for every Silver table
    gold_unknown = False
    for exchange, records in trades.items():
        first_us, last_us = min(times[exchange]), max(times[exchange])
        span = And(GreaterThanOrEqual("timestamp", first_us), LessThanOrEqual("timestamp", last_us))
        ids = {m for _, _, m in records}
        silver_table = cat.load_table(f"{namespace}.{contracts.silver_table(exchange)}")

        def silver_ids(snapshot_id: int | None = None, table=silver_table, span=span, ids=ids) -> set[str]:
            scan = table.scan(row_filter=span, selected_fields=("message_id",), snapshot_id=snapshot_id)
            return set(scan.to_arrow().column("message_id").to_pylist()) & ids

        silver = silver_ids()
        known, snapshot = _reader_snapshot(read_by_gold_at, silver_table)
        gold_unknown |= not known
        read_by_gold = silver if not known else silver_ids(snapshot) if snapshot else set()
        gold_filter = And(span, In("message_id", ids)) if len(ids) < 10_000 else span
        gold = set(gold_table.scan(row_filter=gold_filter if ids else AlwaysFalse(),
                                   selected_fields=("message_id",)).to_arrow().column("message_id").to_pylist())
        for key, offset, message_id in records:
            if message_id not in silver:
                reports[key].not_in_silver.append((offset, message_id))
                continue
            reports[key].silver += 1
            if message_id not in read_by_gold:
                reports[key].in_flight[GOLD] = reports[key].in_flight.get(GOLD, 0) + 1
            elif message_id in gold:
                reports[key].gold += 1
            else:
                reports[key].not_in_gold.append((offset, message_id))
    if gold_unknown:
        unknown.append(GOLD)
    return Report(start, end, list(reports.values()), unknown)


def default_window(now: datetime, grace: timedelta, length: timedelta = timedelta(hours=1)) -> tuple[datetime, datetime]:
    """The last whole ``length`` of Kafka time that ended at least ``grace`` before ``now``."""
    end = now - grace
    step = int(length.total_seconds())
    end = datetime.fromtimestamp(int(end.timestamp()) // step * step, tz=end.tzinfo)
    return end - length, end
