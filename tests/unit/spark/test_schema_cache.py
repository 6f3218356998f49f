"""The writer-schema cache: known ids, unknown ids (4xx), foreign schemas, outages, and how
much registry work a flood of bad ids may cause."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pyspark.sql import functions as F

from k2.contracts import trade_schema_text
from spark_jobs.wire import SchemaCache


def _price_as_string() -> str:
    schema = json.loads(trade_schema_text())
    for f in schema["fields"]:
        if f["name"] == "price":
            f["type"] = "string"
    return json.dumps(schema)


SCHEMAS = {
    7: trade_schema_text(),
    8: json.dumps({"type": "record", "name": "Other", "namespace": "x", "fields": []}),
    10: _price_as_string(),  # same record name, a field Silver cannot type
}


class Registry(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        Registry.hits.append(self.path)
        sid = int(self.path.rsplit("/", 1)[1])
        assert sid >= 1, "ids below 1 are never requested"
        if sid in (400, 500):
            self.send_response(sid)
            self.end_headers()
            return
        if sid == 11:  # a 200 that is not a registry answer
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>proxy error</html>")
            return
        if sid not in SCHEMAS:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"schema": SCHEMAS[sid], "schemaType": "AVRO"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def registry_url():
    server = HTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/apis/ccompat/v7"
    server.shutdown()


def test_schema_cache(registry_url):
    cache = SchemaCache(registry_url)
    good = cache.get(7)
    assert good.text and good.problem is None and "price" in good.fields
    cache.get(7)
    assert Registry.hits.count("/apis/ccompat/v7/schemas/ids/7") == 1  # cached
    assert cache.get(9).text is None and "not registered" in cache.get(9).problem
    assert "x.Other" in cache.get(8).problem
    with pytest.raises(urllib.error.HTTPError):
        cache.get(500)  # an outage fails the batch instead of dead-lettering good rows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unusable_answers_are_kept_for_a_while_only(registry_url):
    clock = Clock()
    cache = SchemaCache(registry_url, negative_ttl_s=60, clock=clock)
    assert cache.get(9).problem and cache.get(9).problem and cache.lookups == 1
    assert 9 in cache.known()
    clock.now += 61  # the id may have been registered since: ask again
    assert 9 not in cache.known()
    cache.get(9)
    assert cache.lookups == 2
    clock.now += 10_000
    assert cache.get(7).text and cache.get(7).text and cache.lookups == 3  # usable: kept for good
    clock.now += 10_000
    cache.get(7)
    assert cache.lookups == 3


def test_unusable_answers_are_bounded(registry_url):
    cache = SchemaCache(registry_url, max_negative=3)
    for sid in range(1000, 1010):
        cache.get(sid)
    assert sorted(cache.known()) == [1007, 1008, 1009]  # oldest dropped first


@pytest.mark.parametrize(("sid", "reason"), [
    (0, "not a registry id"), (-1, "not a registry id"), (-(2**31), "not a registry id"),
    (400, "HTTP 400"), (11, "no schema text"), (10, "field price"),
])
def test_every_other_answer_makes_the_id_unusable(registry_url, sid, reason):
    cache = SchemaCache(registry_url)
    got = cache.get(sid)
    assert got.text is None and reason in got.problem
    assert cache.lookups == (0 if sid < 1 else 1)


def test_a_batch_of_many_bad_ids_makes_a_bounded_number_of_lookups(registry_url, spark):
    """300 distinct unknown ids and one real one: at most the cap in requests, the real id
    first (it has the most rows), and every other id dead-lettered with its reason."""
    from spark_jobs.silver_transformation import framed, resolve_schemas, with_schema_problem
    from tests.unit.spark.wire_bytes import BRONZE_DDL, frame, kafka_row

    values = [frame(7, b"x")] * 5 + [frame(sid, b"x") for sid in range(20_000, 20_300)] + [frame(-5, b"x")]
    frames = framed(spark.createDataFrame([kafka_row("t", v, n) for n, v in enumerate(values)], BRONZE_DDL))
    cache = SchemaCache(registry_url)
    schemas = resolve_schemas(frames, cache, limit=10)
    assert cache.lookups == 10
    assert schemas[7].text is not None
    problems = with_schema_problem(frames, schemas, 10).groupBy(
        (F.col("schema_problem").isNull()).alias("usable"),
        F.col("schema_problem").contains("not looked up").alias("capped")).count().collect()
    assert {(r.usable, r.capped): r["count"] for r in problems} == {(True, None): 5, (False, False): 10, (False, True): 291}
    resolve_schemas(frames, cache, limit=10)  # the next batch: the 9 known-bad ids cost nothing
    assert cache.lookups == 20
