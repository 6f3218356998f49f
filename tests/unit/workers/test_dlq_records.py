import base64
import hashlib
import io
import json

from k2.log import EventLog
from workers.dlq import RAW_LIMIT_BYTES, DeadLetters, dead_letter
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
        "raw_length": 43,
        "raw_sha256": hashlib.sha256(raw.encode()).hexdigest(),
        "raw_truncated": False,
        "received_at_us": 17,
        "endpoint": "ws://x",
    }


def test_binary_non_utf8_frame_is_base64():
    value = json.loads(dead_letter("binance", NormalizeError("malformed_json", "x"), b"\xff\x00", 1, "e"))
    assert (value["raw"], value["raw_encoding"]) == ("/wA=", "base64")


def test_oversize_frame_keeps_its_start_length_and_hash_within_kafkas_message_size():
    frame = b'{"p":"' + b"\x01" * 3_000_000 + b'"}'  # control characters: the worst JSON escaping
    value = dead_letter("binance", NormalizeError("malformed_json", "x" * 50_000), frame, 1, "e")
    record = json.loads(value)
    assert len(value) < 1_000_000
    assert record["raw"] == frame[:RAW_LIMIT_BYTES].decode() and record["raw_truncated"] is True
    assert (record["raw_length"], record["raw_sha256"]) == (3_000_008, hashlib.sha256(frame).hexdigest())
    assert record["error"].startswith("x" * 1000 + "... (50000 chars)")


def test_a_cut_through_a_utf8_character_drops_that_character_not_the_encoding():
    frame = b"a" * (RAW_LIMIT_BYTES - 1) + "\u20ac".encode() + b"tail"  # the euro sign straddles the cut
    record = json.loads(dead_letter("kraken", NormalizeError("malformed_json", "x"), frame, 1, "e"))
    assert (record["raw"], record["raw_encoding"]) == ("a" * (RAW_LIMIT_BYTES - 1), "utf-8")


def test_frame_refused_before_it_was_read_whole_has_its_declared_length_and_no_hash():
    record = json.loads(dead_letter("kraken", NormalizeError("frame_too_large", "x"), b"\xff{", 1, "e",
                                    declared_length=2**40))
    assert (record["raw"], record["raw_encoding"]) == (base64.b64encode(b"\xff{").decode(), "base64")
    assert (record["raw_length"], record["raw_sha256"], record["raw_truncated"]) == (2**40, None, True)


def test_text_frame_with_a_lone_surrogate_is_kept_byte_exact_as_base64():
    record = json.loads(dead_letter("binance", NormalizeError("not_utf8", "bad \ud800"), "a\ud800", 1, "e"))
    assert base64.b64decode(record["raw"]) == b"a\xed\xa0\x80" and record["raw_encoding"] == "base64"
    assert record["error"] == "bad ?"


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
