"""The Confluent wire format on the JVM, and the writer schemas its ids point to.

Byte 1 is the magic ``0x00``, bytes 2-5 the big-endian registry schema id, the rest the
Avro body. Every part is a column expression, so nothing on the row path runs Python,
and every expression is total under ANSI mode: any byte sequence (null, empty, short,
any header value) gives a value or null, never a runtime error.

Writer schemas are fetched from the registry by id on the driver. Registered schemas
never change, so usable ones are kept for the process; answers that make an id unusable
(not registered, not a trade schema) are kept for a short while only, because an id a
hostile record named before it was registered may become a real schema later.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from k2.contracts import trade_schema
from k2.schema_registry import fetch_schema_by_id

HEADER_BYTES = 5
MAGIC = bytes([0])
UINT32_SPAN = 1 << 32
INT32_MAX = (1 << 31) - 1

# Avro's Java decoder allocates a string/bytes/collection of the size a length prefix
# declares before it reads a byte of it, so a 15-byte record declaring a 2 GB string
# throws OutOfMemoryError in the executor, which kills the JVM (PERMISSIVE mode only
# catches non-fatal errors). These Avro system limits turn such a prefix into an
# ordinary decode error. No real trade comes near them: a Kafka value is ~1 MB at most.
AVRO_LIMITS = {
    "org.apache.avro.limits.string.maxLength": 16 * 1024 * 1024,
    "org.apache.avro.limits.bytes.maxLength": 16 * 1024 * 1024,
    "org.apache.avro.limits.collectionItems.maxLength": 1024 * 1024,
}


def frame_length() -> Column:
    """Bytes in ``value``; a null value (a Kafka tombstone) counts as 0."""
    return F.coalesce(F.length("value"), F.lit(0))


def magic_ok() -> Column:
    """True when byte 1 is 0x00; false (never null) for null or empty values."""
    return F.coalesce((frame_length() >= 1) & (F.substring("value", 1, 1) == F.lit(MAGIC)), F.lit(False))


def header_ok() -> Column:
    """A whole 5-byte header with the right magic byte: the id in bytes 2-5 is meaningful."""
    return magic_ok() & (frame_length() >= HEADER_BYTES)


def schema_id() -> Column:
    """Bytes 2-5 as a signed big-endian int32, as Java's ``ByteBuffer.getInt`` (and so
    Confluent's deserializer) reads them: 0xFFFFFFFF is -1. Null for a frame shorter
    than a header.

    ``conv`` gives the unsigned value as text (0..2^32-1); casting that straight to int
    is what failed every batch under ANSI mode for ids >= 2^31. Through bigint and a
    two's-complement fold it always fits an int.
    """
    unsigned = F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).try_cast("bigint")
    signed = F.when(unsigned > INT32_MAX, unsigned - UINT32_SPAN).otherwise(unsigned)
    return F.when(frame_length() >= HEADER_BYTES, signed.try_cast("int"))


def body() -> Column:
    return F.expr(f"substring(value, {HEADER_BYTES + 1})")


def cap_avro_allocations(spark: SparkSession) -> None:
    """Set :data:`AVRO_LIMITS` in this JVM (idempotent).

    Avro reads the properties once, when its ``SystemLimitException`` class loads, so
    they are re-read through its package-private ``resetLimits`` in case something
    loaded it first. This reaches the executors of a ``local[*]`` master (the driver's
    JVM); separate executor JVMs need the same ``-D`` flags in
    ``spark.executor.extraJavaOptions``.
    """
    jvm = spark.sparkContext._jvm
    system = jvm.java.lang.System
    for key, value in AVRO_LIMITS.items():
        system.setProperty(key, str(value))
    gateway = spark.sparkContext._gateway
    reset = jvm.java.lang.Class.forName("org.apache.avro.SystemLimitException").getDeclaredMethod(
        "resetLimits", gateway.new_array(jvm.java.lang.Class, 0))
    reset.setAccessible(True)
    reset.invoke(None, gateway.new_array(jvm.java.lang.Object, 0))


@dataclass(frozen=True)
class WriterSchema:
    schema_id: int
    text: str | None  # Avro schema JSON; None when the id is unusable
    problem: str | None  # why it is unusable (unknown id, not a trade schema)

    @property
    def fields(self) -> set[str]:
        return {f["name"] for f in json.loads(self.text)["fields"]} if self.text else set()

    @property
    def usable(self) -> bool:
        return self.text is not None


def _full_name(schema: dict) -> str:
    return f"{schema.get('namespace', '')}.{schema.get('name', '')}".lstrip(".")


def type_signature(avro_type: object) -> object:
    """What a decoded field's Spark type depends on: enum symbols, names and docs do not
    matter (an enum decodes to a string), primitive, logical type, precision and scale
    do. Anything unrecognised signs as itself, so it only matches an identical type."""
    if isinstance(avro_type, list):
        return tuple(type_signature(t) for t in avro_type)
    if isinstance(avro_type, str):
        return avro_type
    if not isinstance(avro_type, dict):
        return repr(avro_type)
    kind = avro_type.get("type")
    if kind == "enum":
        return "enum"
    if kind == "map":
        return ("map", type_signature(avro_type.get("values")))
    if kind == "array":
        return ("array", type_signature(avro_type.get("items")))
    if kind == "record":
        return ("record", tuple((f.get("name"), type_signature(f.get("type")))
                                for f in avro_type.get("fields", []) if isinstance(f, dict)))
    if "logicalType" in avro_type:
        return (kind, avro_type["logicalType"], avro_type.get("precision"), avro_type.get("scale"))
    return type_signature(kind) if isinstance(kind, str | dict | list) else repr(avro_type)


def trade_schema_problem(text: object, expected: dict) -> str | None:
    """Why a registry schema cannot be decoded as a trade record, or None when it can.

    Every v3 field it has must have the contract's type (fields it lacks decode as null
    and are caught by validation); a same-named record with, say, ``price`` as a string
    would otherwise reach Silver's typed columns.
    """
    try:
        schema = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        schema = None
    if not isinstance(schema, dict) or schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        return "is not an Avro record schema"
    if _full_name(schema) != _full_name(expected):
        return f"is {_full_name(schema)}, not {_full_name(expected)}"
    want = {f["name"]: type_signature(f["type"]) for f in expected["fields"]}
    for f in schema["fields"]:
        name = f.get("name") if isinstance(f, dict) else None
        if name in want and type_signature(f.get("type")) != want[name]:
            return f"has field {name} of type {json.dumps(f.get('type'))[:200]}, which does not decode as v3's"
    return None


def decode_schema(text: str) -> str:
    """The writer schema as given to ``from_avro``: decimals widened to precision 38.

    Spark's Avro reader builds a decimal of precision <= 18 from the low 64 bits of the
    unscaled value, so a hostile 9-byte ``price`` would silently wrap to a small
    number. Read at precision 38 (same scale, same bytes) it is exact, and Silver's
    cast to decimal(18,8) rejects it as out of range instead (SPEC §3: never rounded).
    """
    schema = json.loads(text)
    for f in schema["fields"]:
        t = f.get("type") if isinstance(f, dict) else None
        if isinstance(t, dict) and t.get("logicalType") == "decimal" and t.get("type") == "bytes":
            f["type"] = {**t, "precision": 38}
    return json.dumps(schema)


def spark_problem(spark: SparkSession, text: str) -> str | None:
    """Why Spark's Avro reader refuses a schema the registry accepted (None if it takes it).

    Resolving ``from_avro`` over an empty frame parses the schema without decoding a row;
    a refusal found here costs the id's rows a DLQ entry instead of failing every batch.
    """
    from pyspark.sql.avro.functions import from_avro

    try:
        probe = spark.createDataFrame([], "value binary").select(
            from_avro(F.col("value"), decode_schema(text), {"mode": "PERMISSIVE"}))
        probe.schema.simpleString()  # resolving the plan parses the schema
    except Exception as exc:  # noqa: BLE001 - any refusal makes the id unusable, with its reason
        return f"is refused by Spark's Avro reader: {str(exc).splitlines()[0][:300]}"
    return None


class SchemaCache:
    """Writer schemas by id from ``GET {registry}/schemas/ids/{id}`` (:func:`k2.schema_registry.fetch_schema_by_id`).

    Policy per answer: a usable trade schema is kept for the process (registered ids
    never change). Any other answer about the id itself (ids below 1, HTTP 4xx, a schema
    that is not a v3 trade record) makes the id unusable: its rows go to the DLQ, and
    the answer is kept for ``negative_ttl_s`` (at most ``max_negative`` ids, oldest
    dropped first) so a flood of bad ids costs one lookup each per TTL, while an id
    registered later is found within the TTL. A registry outage (connection refused,
    timeout, HTTP 5xx) raises, so the batch fails and is retried instead of
    dead-lettering good data.
    """

    def __init__(self, registry_url: str, timeout_s: float = 10.0, negative_ttl_s: float = 60.0,
                 max_negative: int = 1024, clock: Callable[[], float] = time.monotonic):
        self.registry_url = registry_url.rstrip("/")
        self.timeout_s = timeout_s
        self.negative_ttl_s = negative_ttl_s
        self.max_negative = max_negative
        self.clock = clock
        self.lookups = 0  # HTTP requests made (for tests and batch logs)
        self._usable: dict[int, WriterSchema] = {}
        self._negative: OrderedDict[int, tuple[float, WriterSchema]] = OrderedDict()
        self._expected = trade_schema()

    def known(self) -> dict[int, WriterSchema]:
        """Every answer still valid now (expired negatives are dropped)."""
        now = self.clock()
        for sid in [s for s, (until, _) in self._negative.items() if until <= now]:
            del self._negative[sid]
        return {**{s: w for s, (_, w) in self._negative.items()}, **self._usable}

    def get(self, sid: int) -> WriterSchema:
        if sid in self._usable:
            return self._usable[sid]
        hit = self._negative.get(sid)
        if hit and hit[0] > self.clock():
            return hit[1]
        found = self._fetch(sid)
        self.remember(found)
        return found

    def remember(self, schema: WriterSchema) -> None:
        """Keep an answer (also used to mark an id the JVM refuses as unusable)."""
        self._negative.pop(schema.schema_id, None)
        if schema.usable:
            self._usable[schema.schema_id] = schema
            return
        self._usable.pop(schema.schema_id, None)
        self._negative[schema.schema_id] = (self.clock() + self.negative_ttl_s, schema)
        while len(self._negative) > self.max_negative:
            self._negative.popitem(last=False)

    def _fetch(self, sid: int) -> WriterSchema:
        if sid < 1:  # Confluent and Apicurio both number schemas from 1: no request needed
            return WriterSchema(sid, None, f"schema id {sid} is not a registry id (ids start at 1)")
        self.lookups += 1
        try:
            raw = fetch_schema_by_id(self.registry_url, sid, self.timeout_s)
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:  # an answer about this id, not an outage
                return WriterSchema(sid, None, f"schema id {sid} is not registered at {self.registry_url} "
                                    f"(HTTP {exc.code})")
            raise
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
            return WriterSchema(sid, None, f"schema id {sid}: the registry's answer has no schema text")
        if doc.get("schemaType", "AVRO") != "AVRO":
            return WriterSchema(sid, None, f"schema id {sid} is a {doc.get('schemaType')} schema, not Avro")
        problem = trade_schema_problem(doc["schema"], self._expected)
        if problem:
            return WriterSchema(sid, None, f"schema id {sid} {problem}")
        return WriterSchema(sid, doc["schema"], None)
