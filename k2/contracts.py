"""Names and shapes shared by workers, Spark jobs and DAGs: defined here, once.

Topic, subject, table and stream names are derived from the exchange registry
(:mod:`k2.exchanges`), so adding an exchange is one line there (plus its worker module
and a new symbol in the schema's ``Exchange`` enum).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from k2.exchanges import VENUES, Venue, venue
from k2.settings import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "include" / "schemas"
TRADE_SCHEMA_FILE = SCHEMA_DIR / "trade_v3.avsc"


Exchange = Venue  # the registry's entry, under the name the runtimes know it by
EXCHANGES: tuple[Exchange, ...] = VENUES


def exchange(name: str) -> Exchange:
    """The registered exchange ``name`` (KeyError naming the known ones otherwise)."""
    return venue(name)


# Kafka -------------------------------------------------------------------------
TOPIC_PREFIX = "market.crypto.trades."
DLQ_TOPIC = TOPIC_PREFIX + "dlq"


def trade_topic(exchange_name: str) -> str:
    return TOPIC_PREFIX + exchange(exchange_name).name


def trade_topics() -> list[str]:
    return [trade_topic(e.name) for e in EXCHANGES]


def exchange_of_topic(topic: str) -> str:
    if not topic.startswith(TOPIC_PREFIX) or topic == DLQ_TOPIC:
        raise ValueError(f"{topic!r} is not a trade topic")
    return exchange(topic[len(TOPIC_PREFIX) :]).name


def value_subject(topic: str) -> str:
    """Registry subject by TopicNameStrategy."""
    return f"{topic}-value"


# Iceberg -----------------------------------------------------------------------
NAMESPACE = "market_data"
BRONZE_TABLE = "bronze_crypto_trades"
SILVER_DLQ_TABLE = "silver_dlq"
GOLD_TABLE = "gold_crypto_trades"
# Not among the pipeline's tables (all_tables): the completeness job keeps them, from Gold
# and from the ranges and windows the workers report lost (k2/ledger_store.py,
# k2/unrecoverable.py, k2/loss_windows.py), and their upkeep too; bootstrap creates them.
LEDGER_TABLE = "completeness_ledger"
UNRECOVERABLE_TABLE = "completeness_unrecoverable"
POSSIBLE_LOSS_TABLE = "completeness_possible_loss"
LEGACY_TABLES = ("trades_v1", "trades_v2", "quotes_v1", "quotes_v2")


def silver_table(exchange_name: str) -> str:
    return f"silver_{exchange(exchange_name).name}_trades"


def all_tables() -> list[str]:
    return [BRONZE_TABLE, *(silver_table(e.name) for e in EXCHANGES), SILVER_DLQ_TABLE, GOLD_TABLE]


def lakehouse_tables() -> list[str]:
    """Every table bootstrap creates: the pipeline's, then the completeness job's."""
    return [*all_tables(), LEDGER_TABLE, UNRECOVERABLE_TABLE, POSSIBLE_LOSS_TABLE]


def qualified(table: str, catalog: str | None = None) -> str:
    """``<catalog>.market_data.<table>`` (or ``market_data.<table>`` without catalog)."""
    return f"{catalog}.{NAMESPACE}.{table}" if catalog else f"{NAMESPACE}.{table}"


# Streams -----------------------------------------------------------------------
STREAMS = ("bronze_ingestion", "silver_transformation", "gold_aggregation")


def runner_dag_id(stream: str) -> str:
    """The Airflow DAG that runs ``stream`` (triggered by the babysitter and `k2 up`)."""
    return f"stream_{stream}"


# Schemas -----------------------------------------------------------------------
@cache
def trade_schema_text() -> str:
    return TRADE_SCHEMA_FILE.read_text()


def trade_schema() -> dict:
    return json.loads(trade_schema_text())


def schema_file(name: str) -> Path:
    return SCHEMA_DIR / name
