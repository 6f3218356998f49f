"""The Confluent wire format on the JVM, and the writer schemas its ids point to.

Byte 1 is the magic ``0x00``, bytes 2-5 the big-endian registry schema id, the rest the
Avro body. Every part is a column expression, so nothing on the row path runs Python.
Writer schemas are fetched from the registry by id on the driver, once per id.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from k2.contracts import trade_schema

HEADER_BYTES = 5


def frame_length() -> Column:
    return F.length("value")


def magic_ok() -> Column:
    return F.substring("value", 1, 1) == F.lit(bytes([0]))


def schema_id() -> Column:
    """The 4-byte big-endian id as an int (null when the frame is shorter than a header)."""
    return F.when(frame_length() >= HEADER_BYTES,
                  F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("int"))


def body() -> Column:
    return F.expr(f"substring(value, {HEADER_BYTES + 1})")


@dataclass(frozen=True)
class WriterSchema:
    schema_id: int
    text: str | None  # Avro schema JSON; None when the id is unusable
    problem: str | None  # why it is unusable (unknown id, not a trade schema)

    @property
    def fields(self) -> set[str]:
        return {f["name"] for f in json.loads(self.text)["fields"]} if self.text else set()


def _full_name(schema: dict) -> str:
    return f"{schema.get('namespace', '')}.{schema.get('name', '')}".lstrip(".")


class SchemaCache:
    """Writer schemas by id from ``GET {registry}/schemas/ids/{id}``, cached for the process.

    A 404 is an answer (the id is unknown: its rows go to the DLQ); any other failure
    raises, so a registry outage fails the batch (retried) instead of dead-lettering
    good data.
    """

    def __init__(self, registry_url: str, timeout_s: float = 10.0):
        self.registry_url = registry_url.rstrip("/")
        self.timeout_s = timeout_s
        self._cache: dict[int, WriterSchema] = {}
        self._expected = _full_name(trade_schema())

    def get(self, sid: int) -> WriterSchema:
        if sid not in self._cache:
            self._cache[sid] = self._fetch(sid)
        return self._cache[sid]

    def _fetch(self, sid: int) -> WriterSchema:
        url = f"{self.registry_url}/schemas/ids/{sid}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return WriterSchema(sid, None, f"schema id {sid} is not registered at {self.registry_url}")
            raise
        text = doc["schema"]
        schema = json.loads(text)
        if doc.get("schemaType", "AVRO") != "AVRO" or not isinstance(schema, dict) \
                or _full_name(schema) != self._expected:
            return WriterSchema(sid, None, f"schema id {sid} is {_full_name(schema) if isinstance(schema, dict) else 'not a record'}, "
                                f"not {self._expected}")
        return WriterSchema(sid, text, None)
