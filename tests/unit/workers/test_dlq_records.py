import io
import json

from workers.dlq import DeadLetters, dead_letter
from workers.log import EventLog
from workers.normalize import NormalizeError


def test_dead_letter_keeps_raw_frame_and_error():
    raw = '{"channel":"trade","data":[{"price":1e-9}]}'
    value = dead_letter("kraken", NormalizeError("decimal_out_of_range", "price too fine"), raw, 17, "ws://x")
    assert json.loads(value) == {
        "exchange": "kraken",
        "error_kind": "decimal_out_of_range",
        "error": "price too fine",
        "raw": raw,
        "raw_encoding": "utf-8",
        "received_at_us": 17,
        "endpoint": "ws://x",
    }


def test_binary_non_utf8_frame_is_base64():
    value = json.loads(dead_letter("binance", NormalizeError("malformed_json", "x"), b"\xff\x00", 1, "e"))
    assert (value["raw"], value["raw_encoding"]) == ("/wA=", "base64")


def test_every_dead_letter_is_produced_counted_and_logged_throttled():
    produced, logs = [], io.StringIO()
    dlq = DeadLetters("binance", lambda k, v: produced.append((k, v)), EventLog(logs, exchange="binance"))
    for _ in range(5):
        dlq.send(NormalizeError("malformed_json", "bad"), "{", 1, "ws://x")
    dlq.send(NormalizeError("bad_trade", "worse"), "{}", 1, "ws://x")
    assert len(produced) == 6 and all(k == b"binance" for k, _ in produced)
    assert dict(dlq.by_kind) == {"malformed_json": 5, "bad_trade": 1}
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert [(line["event"], line["kind"]) for line in lines] == [
        ("frame_dead_lettered", "malformed_json"),
        ("frame_dead_lettered", "bad_trade"),
    ]
    assert lines[0]["exchange"] == "binance"
