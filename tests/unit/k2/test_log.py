"""Structured logs (k2/log.py): the exact line workers and Spark jobs write, and reading it back."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from k2.log import EventLog, events_named, job_log, parse_events

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_a_worker_line_is_compact_json_with_context_then_fields():
    out = io.StringIO()
    log = EventLog(out, exchange="binance", stream="market.crypto.trades.binance")
    log.info("connected", link=1, role="active")
    log.warning("connect_failed", attempt=2)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one line per event
    first = json.loads(lines[0])
    assert list(first) == ["ts", "level", "event", "exchange", "stream", "link", "role"]
    assert TS.match(first["ts"])
    # Byte for byte the workers' format: no spaces, context before the event's fields.
    assert lines[0] == ('{"ts":"' + first["ts"] + '","level":"info","event":"connected","exchange":"binance",'
                        '"stream":"market.crypto.trades.binance","link":1,"role":"active"}')
    second = json.loads(lines[1])
    assert {k: v for k, v in second.items() if k != "ts"} == {
        "level": "warning", "event": "connect_failed", "exchange": "binance",
        "stream": "market.crypto.trades.binance", "attempt": 2}


def test_a_spark_job_line_names_the_job_and_carries_the_batch_as_fields():
    out = io.StringIO()
    log = job_log("silver_transformation", out)
    log.info("batch_written", batch_id=412, rows={"silver_binance_trades": 1180, "silver_dlq": 2})
    log.error("failed", error="boom")

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    written, failed = (json.loads(line) for line in lines)
    assert list(written) == ["ts", "level", "event", "job", "batch_id", "rows"]
    assert {k: v for k, v in written.items() if k != "ts"} == {
        "level": "info", "event": "batch_written", "job": "silver_transformation", "batch_id": 412,
        "rows": {"silver_binance_trades": 1180, "silver_dlq": 2}}
    assert (failed["level"], failed["event"], failed["job"], failed["error"]) == (
        "error", "failed", "silver_transformation", "boom")


def test_spark_jobs_write_to_stdout_and_workers_to_stderr_as_they_are_at_write_time(capsys):
    job = job_log("retention")  # made before pytest's capture would matter: the stream is looked up per line
    worker = EventLog(exchange="kraken")
    job.info("done")
    worker.info("subscribed")
    captured = capsys.readouterr()
    assert [(e["event"], e["job"]) for e in parse_events(captured.out)] == [("done", "retention")]
    assert [(e["event"], e["exchange"]) for e in parse_events(captured.err)] == [("subscribed", "kraken")]


def test_bind_adds_context_and_shares_the_throttle():
    out = io.StringIO()
    child = EventLog(out, exchange="binance").bind(link=2)
    child.throttled("error", "frame_dead_lettered", "decode", interval_s=3600.0, total=1)
    EventLog.bind(child).throttled("error", "frame_dead_lettered", "decode", interval_s=3600.0, total=2)
    child.throttled("error", "frame_dead_lettered", "decode", interval_s=0.0, total=3)

    events = parse_events(out.getvalue())
    assert [(e["exchange"], e["link"], e["total"], e["suppressed_since_last"]) for e in events] == [
        ("binance", 2, 1, 0), ("binance", 2, 3, 1)]  # the second was suppressed and counted


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_values_json_cannot_hold_are_written_as_text_without_losing_the_line():
    cyclic: list = []
    cyclic.append(cyclic)
    out = io.StringIO()
    log = job_log("compaction", out)
    log.info("odd", path=Path("/tmp/x"), tags={"a"}, obj=_Unprintable())
    log.info("odder", by_pair={("BTC", "USD"): 1}, loop=cyclic, batch_id=7)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    odd, odder = (json.loads(line) for line in lines)
    assert (odd["path"], odd["tags"], odd["obj"]) == ("/tmp/x", "{'a'}", "<unprintable _Unprintable>")
    assert odder["by_pair"] == "{('BTC', 'USD'): 1}" and odder["loop"] == "[[...]]"
    assert (odder["job"], odder["batch_id"]) == ("compaction", 7)  # the serialisable fields stay as they are


def test_a_closed_stream_never_raises():
    out = io.StringIO()
    out.close()
    EventLog(out, exchange="binance").error("worker_stopping")  # the parent is gone: nothing to tell


def test_parse_events_keeps_json_objects_in_order_and_skips_other_lines():
    text = ('{"event":"connected","exchange":"binance"}\n'
            'Traceback (most recent call last):\n'
            '  {"not": json\n'
            '   {"bench": "bronze", "rows": 3}  \n'
            '[1, 2]\n')
    assert parse_events(text) == [{"event": "connected", "exchange": "binance"}, {"bench": "bronze", "rows": 3}]


def test_events_named_picks_one_event_out_of_a_mixed_log():
    text = ('26/03/10 12:00:00 INFO SparkContext: Running Spark version 4.1.1\n'
            '{"event":"query_started","job":"bronze_ingestion"}\n'
            '{"event":"batch","job":"bronze_ingestion","batch_id":0}\n'
            '{"event":"batch","job":"bronze_ingestion","batch_id":1}\n')
    assert [e["batch_id"] for e in events_named(text, "batch")] == [0, 1]
    assert events_named(text, "stopped_cleanly") == []
