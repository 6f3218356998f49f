"""Gap detection, acknowledged watermarks and the progress file (workers.progress)."""

import io
import json

from k2.log import EventLog
from workers.progress import Progress, StateFile


def feed(progress: Progress, symbol: str, ids: list[int]) -> None:
    for tid in ids:
        progress.seen(symbol, str(tid))


def test_consecutive_duplicate_and_late_ids_open_no_gap():
    p = Progress()
    feed(p, "BTCUSDT", [100, 101, 101, 102, 99, 103])
    feed(p, "ETHUSDT", [7, 8])
    assert p.take_new_gaps() == [] and p.open_gaps == {}
    assert p.last_seen == {"BTCUSDT": 103, "ETHUSDT": 8}


def test_a_jump_opens_one_gap_per_missing_range():
    p = Progress()
    feed(p, "BTCUSDT", [100, 101, 105, 106, 110])
    gaps = p.take_new_gaps()
    assert [(g.symbol, g.first, g.last, g.size, g.cause) for g in gaps] == [
        ("BTCUSDT", 102, 104, 3, "stream"), ("BTCUSDT", 107, 109, 3, "stream")]
    assert p.take_new_gaps() == [] and len(p.open_gaps) == 2


def test_first_trade_after_a_restart_opens_the_restart_gap():
    p = Progress({"BTCUSDT": 500})
    feed(p, "BTCUSDT", [640, 641, 650])
    assert [(g.first, g.last, g.cause) for g in p.take_new_gaps()] == [(501, 639, "restart"), (642, 649, "stream")]


def test_restart_without_a_gap_opens_none():
    p = Progress({"BTCUSDT": 500})
    feed(p, "BTCUSDT", [498, 499, 500, 501])  # the exchange re-sent what was already acknowledged
    assert p.take_new_gaps() == []


def test_watermark_never_passes_in_flight_trades_or_open_gaps():
    p = Progress()
    assert p.watermark("BTCUSDT") is None  # nothing acknowledged yet: nothing to save
    feed(p, "BTCUSDT", [100, 101, 102])
    p.acked("BTCUSDT", "100")
    p.acked("BTCUSDT", "102")  # acknowledgements may arrive out of order
    assert p.watermark("BTCUSDT") == 100  # 101 is still in flight
    p.acked("BTCUSDT", "101")
    assert p.watermark("BTCUSDT") == 102
    feed(p, "BTCUSDT", [110])  # opens 103..109
    p.acked("BTCUSDT", "110")
    assert p.watermark("BTCUSDT") == 102
    (gap,) = p.take_new_gaps()
    for tid in range(103, 110):
        p.produced("BTCUSDT", str(tid))
    p.close(gap.id)  # produced, not yet acknowledged
    assert p.watermark("BTCUSDT") == 102
    for tid in range(103, 110):
        p.acked("BTCUSDT", str(tid))
    assert p.watermarks() == {"BTCUSDT": 110}


def test_two_copies_in_flight_need_two_acknowledgements():
    p = Progress({"BTCUSDT": 9})
    feed(p, "BTCUSDT", [10, 10, 11])
    p.acked("BTCUSDT", "11")
    p.acked("BTCUSDT", "10")
    assert p.watermark("BTCUSDT") == 9
    p.acked("BTCUSDT", "10")
    assert p.watermark("BTCUSDT") == 11


def test_narrowed_gap_moves_the_watermark_floor():
    p = Progress({"BTCUSDT": 0})
    feed(p, "BTCUSDT", [1000])
    p.acked("BTCUSDT", "1000")
    (gap,) = p.take_new_gaps()
    p.narrow(gap, 900)
    assert p.watermark("BTCUSDT") == 899


IDENTITY = {"exchange": "binance", "topic": "market.crypto.trades.binance", "rest_url": "https://api.binance.com"}


def state(tmp_path, identity=IDENTITY):
    out = io.StringIO()
    return StateFile(tmp_path / "binance" / "last_acked.json", identity, EventLog(out)), out


def test_state_file_round_trip_is_atomic_and_skips_unchanged_writes(tmp_path):
    s, _ = state(tmp_path)
    assert s.load() == {}
    assert s.save({"BTCUSDT": 5, "ETHUSDT": 7}) is True
    assert s.save({"BTCUSDT": 5}) is False  # unchanged (ETHUSDT kept from before)
    assert s.save({"BTCUSDT": 6}) is True
    doc = json.loads(s.path.read_text())
    assert doc["last_acked"] == {"BTCUSDT": 6, "ETHUSDT": 7} and doc["version"] == 1
    assert {k: doc[k] for k in IDENTITY} == IDENTITY
    assert list(s.path.parent.iterdir()) == [s.path]  # no temporary file left behind
    again, _ = state(tmp_path)
    assert again.load() == {"BTCUSDT": 6, "ETHUSDT": 7}


def test_state_of_another_topic_or_source_is_ignored(tmp_path):
    s, _ = state(tmp_path)
    s.save({"BTCUSDT": 5})
    other, out = state(tmp_path, {**IDENTITY, "rest_url": "http://127.0.0.1:18765"})
    assert other.load() == {}
    assert '"progress_state_ignored"' in out.getvalue()


def test_corrupt_state_is_reported_not_fatal(tmp_path):
    s, out = state(tmp_path)
    s.path.parent.mkdir(parents=True)
    s.path.write_text('{"version":1,"last_acked":')
    assert s.load() == {}
    assert '"progress_state_unreadable"' in out.getvalue()
