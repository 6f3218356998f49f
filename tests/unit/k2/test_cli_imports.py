"""`k2 query` and `k2 sql` start fast: they import their own module and nothing heavy
(the integration tier checks the same after a real query: tests/integration/query/test_iceberg_read.py)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from heavy_modules import heavy, k2_imports
from k2ops.cli import FAST_COMMANDS, build_parser
from k2ops.cli.query import _render


@pytest.mark.parametrize("command", sorted(FAST_COMMANDS))
def test_fast_command_module_registers_exactly_that_command(command):
    parser = build_parser((FAST_COMMANDS[command],))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {command}


@pytest.mark.parametrize("args", [["query", "--help"], ["sql", "--help"], ["query", "bars", "--help"]],
                         ids=" ".join)
def test_help_of_a_fast_command_imports_nothing_heavy(args, tmp_path):
    code, modules, stderr = k2_imports(args, tmp_path)
    assert code == 0, stderr
    assert heavy(modules) == []
    assert "pyarrow" not in modules and "duckdb" not in modules  # nothing is read for --help
    assert "k2ops.airflow_api" not in modules and "workers.cli" not in modules  # other areas' parsers


def test_bad_query_arguments_are_refused_without_heavy_imports(tmp_path):
    code, modules, stderr = k2_imports(["query", "trades", "--exchange", "binance", "--symbol", "BTCUSDT",
                                        "--start", "yesterday"], tmp_path)
    assert code == 2
    assert "'yesterday' is not an ISO 8601 time" in stderr
    assert heavy(modules) == []


def test_table_output_pads_columns_and_shows_nulls_as_blanks():
    t = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    table = pa.table({
        "timestamp": pa.array([t, t.replace(microsecond=250)], pa.timestamp("us", "UTC")),
        "price": pa.array([Decimal("101.50000000"), None], pa.decimal128(18, 8)),
        "trade_count": pa.array([3, 12], pa.int64()),
        "complete": pa.array([True, None], pa.bool_()),
        "side": pa.array(["BUY", "SELL"], pa.string()),
    })
    assert _render(table) == (
        "timestamp                   price         trade_count  complete  side\n"
        "2026-03-01 10:00:05.000000  101.50000000  3            True      BUY\n"
        "2026-03-01 10:00:05.000250                12                     SELL\n"
    )


def test_table_output_of_no_rows_is_the_header():
    table = pa.table({"hour": pa.array([], pa.timestamp("us", "UTC")), "status": pa.array([], pa.string())})
    assert _render(table) == "hour  status\n"
