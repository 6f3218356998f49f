"""A lean reader of one Iceberg table's current snapshot, for a command that must answer
within a second, process start included (`k2 query`, issue 15).

pyiceberg's ``SqlCatalog`` and scan import SQLAlchemy, pydantic, pandas (through
``pyarrow.dataset``) and more: seconds before the first byte is read. This module does
the common case with psycopg2 (the catalog row), json (the metadata), fastavro (the
manifests) and pyarrow.parquet (the data):

- the catalog row gives the metadata file; its current snapshot's manifests are read,
  and manifests then data files are pruned by partition (identity, hour, day, month and
  year transforms) against the conditions;
- each data file left is read (the columns asked and those filtered, matched by
  Iceberg field id) and its rows are filtered with ``pyarrow.compute``.

Anything outside that case returns None, and the caller reads through pyiceberg
(:mod:`k2.lake` does): a warehouse not on local disk, a table format other than v2,
delete files, a data file without a column by its field id (schema evolution), a type
without an Arrow mapping here, a non-Parquet file. The result (rows and Arrow types) is
pyiceberg's; tests/integration/query/test_iceberg_read.py compares the two.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from k2.errors import K2Error
from k2.settings import PlatformSettings

if TYPE_CHECKING:
    import pyarrow as pa

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPS = ("=", ">=", "<")


@dataclass(frozen=True)
class Condition:
    """``column op value``; conditions of a scan are ANDed. Timestamps are aware datetimes."""

    column: str
    op: str  # one of OPS
    value: Any


class Missing(K2Error, LookupError):
    """The catalog has no such table."""


def metadata_location(s: PlatformSettings, namespace: str, table: str) -> str:
    """The table's current metadata file, from the catalog tables Spark's JdbcCatalog and
    pyiceberg's SqlCatalog share (``iceberg_tables``); :class:`Missing` if there is none."""
    import psycopg2

    conn = psycopg2.connect(host=s.pg_host, port=s.pg_port, user=s.pg_user, password=s.pg_password.reveal(),
                            dbname=s.catalog_db, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT metadata_location FROM iceberg_tables "
                        "WHERE catalog_name = %s AND table_namespace = %s AND table_name = %s",
                        (s.catalog_name, namespace, table))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None or not row[0]:
        raise Missing(f"{namespace}.{table}")
    return row[0]


def scan(s: PlatformSettings, namespace: str, table: str, conditions: Sequence[Condition],
         columns: Sequence[str]) -> pa.Table | None:
    """The rows of the table's current snapshot matching every condition, ``columns`` only
    (in the table's schema order, as pyiceberg returns them); None when this reader does not
    cover the table (see the module doc). :class:`Missing` if the table does not exist."""
    if s.warehouse_on_s3:
        return None
    location = metadata_location(s, namespace, table)
    path = _local_path(location)
    if path is None:
        return None
    with open(path, "rb") as fh:
        metadata = json.load(fh)
    if metadata.get("format-version") != 2:
        return None
    schema = next(x for x in metadata["schemas"] if x["schema-id"] == metadata["current-schema-id"])
    fields = {f["name"]: f for f in schema["fields"]}
    wanted = [f for f in schema["fields"] if f["name"] in columns]
    read = [f for f in schema["fields"] if f["name"] in columns or any(c.column == f["name"] for c in conditions)]
    if len(wanted) != len(set(columns)) or any(c.column not in fields or c.op not in OPS for c in conditions):
        return None
    out_schema = _arrow_schema(wanted)
    read_schema = _arrow_schema(read)
    if out_schema is None or read_schema is None:
        return None
    snapshot_id = metadata.get("current-snapshot-id")
    snapshot = next((x for x in metadata.get("snapshots", []) if x["snapshot-id"] == snapshot_id), None)
    if snapshot is None:
        return empty_table(out_schema)
    specs = {spec["spec-id"]: spec["fields"] for spec in metadata["partition-specs"]}
    by_id = {f["id"]: f for f in schema["fields"]}
    files = _data_files(snapshot["manifest-list"], specs, by_id, conditions)
    if files is None:
        return None
    tables = []
    for file_path in files:
        part = _read_file(file_path, read, read_schema, conditions)
        if part is None:
            return None
        tables.append(part.select([f["name"] for f in wanted]))
    import pyarrow as pa

    return pa.concat_tables(tables).cast(out_schema) if tables else empty_table(out_schema)


# Planning --------------------------------------------------------------------------
def _data_files(manifest_list: str, specs: dict[int, list[dict]], by_id: dict[int, dict],
                conditions: Sequence[Condition]) -> list[str] | None:
    """Paths of the live data files whose partition can match; None if the snapshot has
    delete files or a file this reader cannot read."""
    paths = []
    for manifest in _avro(manifest_list):
        if manifest is None:
            return None
        live = (manifest.get("added_files_count") or 0) + (manifest.get("existing_files_count") or 0)
        if manifest.get("content", 0) != 0:
            if live:
                return None  # delete files: pyiceberg applies them
            continue
        spec = specs.get(manifest["partition_spec_id"])
        if spec is None:
            return None
        ranges = _partition_ranges(spec, by_id, conditions)
        if ranges is None:
            return None
        if not _summaries_match(manifest.get("partitions") or [], spec, ranges):
            continue
        for entry in _avro(manifest["manifest_path"]):
            if entry is None:
                return None
            if entry["status"] == 2:  # deleted in this snapshot
                continue
            data_file = entry["data_file"]
            if data_file.get("content", 0) != 0 or data_file["file_format"].upper() != "PARQUET":
                return None
            partition = data_file.get("partition") or {}
            if all(_in_range(_as_int(partition.get(f["name"])), ranges.get(f["name"])) for f in spec):
                paths.append(data_file["file_path"])
    return paths


def _avro(location: str) -> Iterator[dict | None]:
    """The records of an Avro file (a manifest list or manifest); None once if it is not local."""
    import fastavro

    path = _local_path(location)
    if path is None:
        yield None
        return
    with open(path, "rb") as fh:
        yield from fastavro.reader(fh)


# Partition values of the time transforms, as Iceberg defines them (spec, "Partition Transforms").
def _hours(t: datetime) -> int:
    return (t - EPOCH) // timedelta(hours=1)


def _days(t: datetime) -> int:
    return (t - EPOCH) // timedelta(days=1)


def _months(t: datetime) -> int:
    t = t.astimezone(UTC)
    return (t.year - 1970) * 12 + t.month - 1


def _years(t: datetime) -> int:
    return t.astimezone(UTC).year - 1970


TIME_TRANSFORMS = {"hour": _hours, "day": _days, "month": _months, "year": _years}
Range = tuple[Any, Any]  # inclusive (low, high); None: unbounded


def _partition_ranges(spec: list[dict], by_id: dict[int, dict],
                      conditions: Sequence[Condition]) -> dict[str, Range] | None:
    """Partition field name -> the inclusive range of its values that can hold matching rows;
    None if a filtered column is partitioned by a transform not handled here."""
    ranges: dict[str, Range] = {}
    for pf in spec:
        source = by_id.get(pf["source-id"])
        transform = pf["transform"]
        for c in conditions:
            if source is None or c.column != source["name"]:
                continue
            if transform == "identity":
                if c.op == "=":
                    low, high = c.value, c.value
                else:
                    continue  # ranges on identity partitions: left to the row filter
            elif transform in TIME_TRANSFORMS and isinstance(c.value, datetime):
                of = TIME_TRANSFORMS[transform]
                low, high = {"=": (of(c.value), of(c.value)), ">=": (of(c.value), None),
                             "<": (None, of(c.value - timedelta(microseconds=1)))}[c.op]
            elif transform in ("void",) or transform.startswith(("bucket", "truncate")):
                continue  # no pruning; the row filter still applies
            else:
                return None
            old_low, old_high = ranges.get(pf["name"], (None, None))
            ranges[pf["name"]] = (_tighter(old_low, low, max), _tighter(old_high, high, min))
    return ranges


def _tighter(a, b, pick):
    return b if a is None else a if b is None else pick(a, b)


def _in_range(value, bounds: Range | None) -> bool:
    if bounds is None:
        return True
    if value is None:
        return False  # a null partition value matches no comparison
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


def _as_int(value):
    """A partition value as the transform's integer (fastavro turns a day into a date)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return (value - date(1970, 1, 1)).days
    return value


def _summaries_match(summaries: list[dict], spec: list[dict], ranges: dict[str, Range]) -> bool:
    """False if a manifest's partition summary shows that none of its files can match."""
    for pf, summary in zip(spec, summaries, strict=False):
        bounds = ranges.get(pf["name"])
        if bounds is None or not summary.get("lower_bound") or not summary.get("upper_bound"):
            continue
        if pf["transform"] not in TIME_TRANSFORMS:
            continue  # identity summaries are typed by the source column: not decoded here
        lower = struct.unpack("<i", summary["lower_bound"][:4])[0]
        upper = struct.unpack("<i", summary["upper_bound"][:4])[0]
        low, high = bounds
        if (low is not None and upper < low) or (high is not None and lower > high):
            return False
    return True


# Reading ---------------------------------------------------------------------------
def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of no rows: ``schema.empty_table()`` imports pandas (pyarrow's pandas shim)."""
    import pyarrow as pa

    return pa.Table.from_batches([], schema=schema)


def _read_file(location: str, fields: list[dict], schema: pa.Schema,
               conditions: Sequence[Condition]) -> pa.Table | None:
    """The file's rows matching the conditions, its columns matched to ``fields`` by field id
    and named as the table names them now; None if a field is not in the file."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = _local_path(location)
    if path is None:
        return None
    pf = pq.ParquetFile(path)
    names = {}
    for field in pf.schema_arrow:
        field_id = (field.metadata or {}).get(b"PARQUET:field_id")
        if field_id is not None:
            names[int(field_id)] = field.name
    if any(f["id"] not in names for f in fields):
        return None
    data = pf.read(columns=[names[f["id"]] for f in fields], use_threads=False)
    data = data.rename_columns([f["name"] for f in fields]).cast(schema)
    mask = None
    for c in conditions:
        column = data[c.column]
        value = arrow_scalar(c.value, column.type)
        if value is None:
            return None
        test = {"=": pc.equal, ">=": pc.greater_equal, "<": pc.less}[c.op](column, value)
        mask = test if mask is None else pc.and_(mask, test)
    return data.filter(mask) if mask is not None else data


def arrow_scalar(value, arrow_type):
    """``value`` as an Arrow scalar of ``arrow_type``, built from its bytes: ``pa.scalar`` of a
    Python value makes pyarrow import pandas to check for array-likes (seconds). None if the
    type is not one built here."""
    import pyarrow as pa

    if pa.types.is_string(arrow_type) and isinstance(value, str):
        data = value.encode()
        buffers = [None, pa.py_buffer(struct.pack("<ii", 0, len(data))), pa.py_buffer(data)]
    elif pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us" and isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        buffers = [None, pa.py_buffer(struct.pack("<q", (aware - EPOCH) // timedelta(microseconds=1)))]
    elif pa.types.is_int64(arrow_type) and isinstance(value, int):
        buffers = [None, pa.py_buffer(struct.pack("<q", value))]
    else:
        return None
    return pa.Array.from_buffers(arrow_type, 1, buffers)[0]


def _local_path(location: str) -> str | None:
    """The path of a ``file:`` URI or plain path; None for any other scheme (s3, ...)."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return parsed.path
    return None


def _arrow_schema(fields: Iterable[dict]) -> pa.Schema | None:
    """The Arrow schema pyiceberg reads these Iceberg fields as; None if a type is not mapped here."""
    import pyarrow as pa

    simple = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(),
              "double": pa.float64(), "float": pa.float32(), "date": pa.date32(),
              "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us")}
    out = []
    for f in fields:
        kind = f["type"]
        if not isinstance(kind, str):
            return None  # nested types
        if kind in simple:
            arrow = simple[kind]
        elif kind.startswith("decimal("):
            precision, scale = (int(x) for x in kind[len("decimal("):-1].split(","))
            arrow = pa.decimal128(precision, scale)
        else:
            return None
        out.append(pa.field(f["name"], arrow, nullable=not f.get("required", False)))
    return pa.schema(out)
