"""The writer-schema cache: known ids, unknown ids (404), foreign schemas, outages."""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from k2.contracts import trade_schema_text
from spark_jobs.wire import SchemaCache

SCHEMAS = {
    7: trade_schema_text(),
    8: json.dumps({"type": "record", "name": "Other", "namespace": "x", "fields": []}),
}


class Registry(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server API
        Registry.hits.append(self.path)
        sid = int(self.path.rsplit("/", 1)[1])
        if sid == 500:
            self.send_response(500)
            self.end_headers()
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
