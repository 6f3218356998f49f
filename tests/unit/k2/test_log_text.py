"""Worker logs a person can read (k2/log.py): aligned text on a terminal, JSON elsewhere,
the same fields either way (``K2_LOG_FORMAT`` chooses, ``auto`` by default)."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k2.log import EventLog, text_line
from k2.log_settings import log_settings

TS = "2026-12-03T12:00:00.123Z"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def log_format(monkeypatch):
    """Each test states K2_LOG_FORMAT itself (the settings are read once per process)."""
    monkeypatch.delenv("K2_LOG_FORMAT", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    log_settings.cache_clear()
    yield monkeypatch
    log_settings.cache_clear()


def test_a_terminal_gets_aligned_text_with_every_field_in_order():
    out = Terminal()
    log = EventLog(out, exchange="binance", stream="market.crypto.trades.binance")
    log.info("connected", link=1, symbols=["BTCUSDT", "ETHUSDT"])
    log.warning("frame_dead_lettered", reason="not json", bytes=17)
    log.error("delivery_failed", error=None)

    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    ts, level, event, *pairs = lines[0].split()
    assert (level, event) == ("INFO", "connected") and ts.endswith("Z")
    assert pairs == ["exchange=binance", "stream=market.crypto.trades.binance", "link=1",
                     'symbols=["BTCUSDT","ETHUSDT"]']
    assert lines[1].split()[1:3] == ["WARNING", "frame_dead_lettered"]
    assert 'reason="not json" bytes=17' in lines[1] and lines[2].endswith("error=null")
    # The level, the event and the fields each start in one column on every line.
    assert len({line.index("exchange=") for line in lines}) == 1
    assert len({line.index(word) for line, word in zip(lines, ("INFO", "WARNING", "ERROR"), strict=True)}) == 1


def test_a_pipe_or_file_keeps_getting_json_lines():
    out = io.StringIO()
    EventLog(out, exchange="kraken").info("connected", link=2)
    assert {k: v for k, v in json.loads(out.getvalue()).items() if k != "ts"} == {
        "level": "info", "event": "connected", "exchange": "kraken", "link": 2}


@pytest.mark.parametrize(("chosen", "stream", "text"), [
    ("json", Terminal, False), ("text", io.StringIO, True), ("auto", Terminal, True), ("auto", io.StringIO, False)])
def test_k2_log_format_overrides_the_terminal_check(log_format, chosen, stream, text):
    log_format.setenv("K2_LOG_FORMAT", chosen)
    out = stream()
    EventLog(out).info("connected", link=1)
    assert out.getvalue().startswith("{") is not text


def test_a_bad_format_is_refused_naming_the_setting(log_format):
    from k2.config import SettingsError

    log_format.setenv("K2_LOG_FORMAT", "pretty")
    with pytest.raises(SettingsError, match="K2_LOG_FORMAT: must be one of auto, json, text, got 'pretty'"):
        log_settings()


def test_colour_marks_warnings_and_errors_unless_no_color(log_format):
    log_format.delenv("NO_COLOR")
    out = Terminal()
    EventLog(out).warning("connect_failed")
    EventLog(out).info("connected")
    warning, info = out.getvalue().splitlines()
    assert "\033[33mWARNING" in warning and "\033[" not in info


def _run_on(argv: list[str], terminal: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("K2_LOG_FORMAT", "NO_COLOR")}
    if not terminal:
        return subprocess.run(argv, env=env, stderr=subprocess.PIPE, text=True, timeout=60, check=True).stderr
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env, stderr=secondary, stdout=subprocess.DEVNULL)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(60) == 0
    finally:
        os.close(primary)
    return b"".join(chunks).decode()


def test_a_real_worker_process_writes_text_to_a_terminal_and_json_to_a_pipe():
    code = "from k2.log import EventLog; EventLog(exchange='binance').info('connected', link=1)"
    argv = [sys.executable, "-c", code]
    piped = _run_on(argv, terminal=False)
    assert json.loads(piped)["event"] == "connected"
    shown = _run_on(argv, terminal=True).strip()
    assert shown.split()[1:] == ["INFO", "connected", "exchange=binance", "link=1"], shown


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                      max_leaves=8)
keys = st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda k: k not in ("ts", "level", "event"))


@given(st.text(min_size=1, max_size=30), st.dictionaries(keys, values, max_size=6))
def test_any_event_is_one_text_line_whose_values_read_back(event, fields):
    line = text_line({"ts": TS, "level": "info", "event": event, **fields}, colour=False)
    assert "\n" not in line and "\r" not in line
    # Read it back left to right: the event, then each key=value in order.
    decoder = json.JSONDecoder()
    rest = line[len(TS) + 1:].lstrip()
    assert rest.startswith("INFO ")
    rest = rest[len("INFO"):].lstrip()
    shown_event, end = _value_at(decoder, rest, 0, event)
    assert shown_event == event
    for key, value in fields.items():
        rest = rest[end:].lstrip()
        assert rest.startswith(f"{key}="), (key, line)
        shown, end = _value_at(decoder, rest, len(key) + 1, value)
        assert shown == value, (key, line)
    assert rest[end:] == ""


def _value_at(decoder: json.JSONDecoder, text: str, pos: int, original: object) -> tuple[object, int]:
    """The value written at ``pos``: a bare word (a plain string), else one JSON value."""
    if isinstance(original, str) and not text[pos:].startswith('"'):
        word = text[pos:].split(" ", 1)[0]
        return word, pos + len(word)
    return decoder.raw_decode(text, pos)
