"""Pure helpers of the Spark jobs: CLI parsing, Kafka lag from progress JSON, DDL text."""

from __future__ import annotations

import argparse

import pytest

from k2.config import load
from k2.contracts import GOLD_TABLE, all_tables, trade_topics
from k2.settings import PlatformSettings
from spark_jobs.bronze_ingestion import write_tasks
from spark_jobs.options import parse_topic_map, parse_trigger
from spark_jobs.streaming import kafka_lag, progress_from_json
from spark_jobs.tables import BRONZE, GOLD, SILVER_DLQ, property_problems, silver_def, table_defs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("availableNow", {"availableNow": True}),
        ("5 seconds", {"processingTime": "5 seconds"}),
        ("500 ms", {"processingTime": "0.5 seconds"}),
        ("2 minutes", {"processingTime": "120 seconds"}),
    ],
)
def test_parse_trigger(text, expected):
    assert parse_trigger(text) == expected


def test_parse_trigger_rejects_garbage():
    with pytest.raises(argparse.ArgumentTypeError, match="5 seconds"):
        parse_trigger("soon")


def test_topic_map_defaults_to_contract_topics():
    assert sorted(parse_topic_map(None).values()) == sorted(trade_topics())


def test_topic_map_override_and_errors():
    assert parse_topic_map("binance=a.b, kraken=c") == {"binance": "a.b", "kraken": "c"}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_topic_map("binance")
    with pytest.raises(KeyError):
        parse_topic_map("nasdaq=x")


def test_kafka_lag_sums_partitions():
    source = {"description": "KafkaV2[Subscribe[t]]",
              "endOffset": {"t": {"0": 5, "1": 7}}, "latestOffset": {"t": {"0": 9, "1": 7}}}
    assert kafka_lag(source) == 4
    assert kafka_lag({"endOffset": '{"t": {"0": 1}}', "latestOffset": '{"t": {"0": 3}}'}) == 2
    assert kafka_lag({"endOffset": None}) is None


def test_progress_from_json():
    p = progress_from_json("bronze_ingestion", {
        "batchId": 3, "timestamp": "2026-01-01T00:00:00.000Z", "numInputRows": 10,
        "processedRowsPerSecond": 2.5,
        "sources": [{"description": "KafkaV2[x]", "numInputRows": 10,
                     "endOffset": {"t": {"0": 1}}, "latestOffset": {"t": {"0": 4}}}],
    })
    assert (p.batch_id, p.rows_in, p.rows_per_second, p.source_lag) == (3, 10, 2.5, 3)


def test_every_contract_table_has_a_definition():
    assert sorted(t.name for t in table_defs()) == sorted(all_tables())


def test_gold_ddl_partitions_by_hour_and_sorts():
    sql = GOLD.create_sql(load(PlatformSettings, {"K2_CATALOG": "cat"}), "ns")
    assert f"CREATE TABLE IF NOT EXISTS cat.ns.{GOLD_TABLE} (" in sql
    assert "PARTITIONED BY (hours(`timestamp`))" in sql
    assert GOLD.sort_order == "`timestamp`, trade_id"
    for t in table_defs():
        props = t.all_properties
        assert props["format-version"] == "2"
        assert props["write.parquet.compression-codec"] == "zstd"
        assert props["write.metadata.delete-after-commit.enabled"] == "true"


def test_write_distribution_per_layer():
    # Silver's appends come from one held batch and Bronze's from a coalesced one: no
    # shuffle; Gold clustered by hour (hash).
    modes = {t.name: t.all_properties.get("write.distribution-mode")
             for t in (BRONZE, silver_def("binance"), SILVER_DLQ, GOLD)}
    assert modes == {BRONZE.name: "none", "silver_binance_trades": "none", SILVER_DLQ.name: "none", GOLD_TABLE: "hash"}


def test_bronze_write_tasks_is_a_whole_number_of_at_least_one():
    assert (write_tasks("1"), write_tasks("12")) == (1, 12)
    for bad in ("0", "-1", "1.5", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=f"whole number >= 1, got {bad!r}"):
            write_tasks(bad)


def test_a_property_missing_or_different_is_a_problem_naming_it():
    got = property_problems("ns.t", {"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "x": "y"})
    assert got == ["ns.t: property b is 9, expected 2", "ns.t: property c is not set, expected 3"]


def test_progress_uses_the_streams_own_count_when_given():
    raw = {"batchId": 7, "timestamp": "2026-01-01T00:00:00.000Z", "numInputRows": 88,
           "processedRowsPerSecond": 22.0,
           "sources": [{"description": "SparkMicroBatchStream@1", "numInputRows": 44},
                       {"description": "SparkMicroBatchStream@2", "numInputRows": 44}]}
    p = progress_from_json("gold_aggregation", raw, rows_in=44)
    assert (p.rows_in, p.rows_per_second) == (44, 11.0)
    assert [s["rows_in"] for s in p.sources] == [None, None]  # not attributable per source
    assert progress_from_json("gold_aggregation", raw).rows_in == 88
