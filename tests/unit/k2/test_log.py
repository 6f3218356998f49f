"""Reading a structured log back: what tests, the fault matrix and `k2 bench` parse."""

from __future__ import annotations

from k2.log import parse_events


def test_parse_events_keeps_json_objects_in_order_and_skips_other_lines():
    text = ('{"event":"connected","exchange":"binance"}\n'
            'Traceback (most recent call last):\n'
            '  {"not": json\n'
            '   {"bench": "bronze", "rows": 3}  \n'
            '[1, 2]\n')
    assert parse_events(text) == [{"event": "connected", "exchange": "binance"}, {"bench": "bronze", "rows": 3}]
