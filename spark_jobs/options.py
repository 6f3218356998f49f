"""Command-line options shared by the Spark jobs: target namespace, topics, triggers.

Every job defaults to the production contracts (``market_data``, the trade topics of
:mod:`k2.contracts`); tests and benchmarks point the same code at their own namespace
and topics so they never touch the real tables or other engineers' data.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from k2.config import check_unknown_variables, load, register, setting
from k2.contracts import EXCHANGES, NAMESPACE, exchange, trade_topic
from k2.settings import PlatformSettings, load_platform

# Short: a batch's latency is its wait for the trigger plus its run, at each of the three
# streams in turn (SPEC §8: end-to-end p99 < 15 s). Longer triggers mean fewer, larger
# commits (Iceberg's advice is a minute or more); compaction and snapshot expiry, both
# hourly, keep the small files and snapshots of short ones in check.
DEFAULT_TRIGGER = "2 seconds"
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "s": 1, "second": 1,
                 "seconds": 1, "m": 60, "minute": 60, "minutes": 60}


def job_settings(job: str) -> PlatformSettings:
    """The platform settings of a Spark job, read once by its ``main`` and passed down.

    Also the job's check of the environment: each ``K2_*`` variable no setting declares is
    named on stderr with the closest declared name (with ``K2_STRICT_SETTINGS=true`` the
    job stops with a configuration error instead).
    """
    check_unknown_variables(f"spark job {job}")
    return load_platform()


def table_id(s: PlatformSettings, table: str, namespace: str = NAMESPACE) -> str:
    """``<catalog>.<namespace>.<table>``: always qualified, never relying on the current catalog."""
    return f"{s.catalog_name}.{namespace}.{table}"


def parse_topic_map(text: str | None) -> dict[str, str]:
    """``binance=t1,kraken=t2`` -> ``{"binance": "t1", "kraken": "t2"}``; empty -> the contract topics.

    Silver needs to know which exchange each topic carries (to check that a record's
    ``exchange`` matches its topic), so topics are always given per exchange.
    """
    if not text:
        return {e.name: trade_topic(e.name) for e in EXCHANGES}
    mapping: dict[str, str] = {}
    for part in text.split(","):
        name, sep, topic = part.strip().partition("=")
        if not sep or not topic:
            raise argparse.ArgumentTypeError(
                f"--topics entry {part!r} must look like <exchange>=<topic>, e.g. {EXCHANGES[0].name}=my.topic"
            )
        mapping[exchange(name.strip()).name] = topic.strip()
    return mapping


def parse_trigger(text: str) -> dict[str, object]:
    """Keyword arguments for ``DataStreamWriter.trigger``: ``availableNow`` or an interval."""
    if text.strip().lower() in ("availablenow", "available-now", "available_now"):
        return {"availableNow": True}
    match = _INTERVAL.match(text.lower())
    if not match or match.group(2) not in _UNIT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"trigger {text!r} is neither 'availableNow' nor an interval like '5 seconds'"
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return {"processingTime": f"{seconds:g} seconds"}


@register
@dataclass(frozen=True)
class StreamSettings:
    """Default triggers of the three streams (a ``--trigger`` argument wins)."""

    bronze_ingestion_trigger: str = setting(
        "BRONZE_INGESTION_TRIGGER", DEFAULT_TRIGGER, "Trigger of bronze_ingestion.")
    silver_transformation_trigger: str = setting(
        "SILVER_TRANSFORMATION_TRIGGER", DEFAULT_TRIGGER, "Trigger of silver_transformation.")
    gold_aggregation_trigger: str = setting(
        "GOLD_AGGREGATION_TRIGGER", DEFAULT_TRIGGER, "Trigger of gold_aggregation.")


def trigger_env(stream: str) -> str:
    """Name of the environment variable holding a stream's default trigger."""
    return f"K2_{stream.upper()}_TRIGGER"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace", default=NAMESPACE, help=f"Iceberg namespace (default {NAMESPACE})"
    )


def stream_parser(doc: str, stream: str, *, topics: bool = False) -> argparse.ArgumentParser:
    """The command line of a stream job: the first line of its ``doc``, --namespace and
    --trigger; with ``topics``, --topics (the streams that read the trade topics)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_common(parser)
    env = trigger_env(stream)
    parser.add_argument(
        "--trigger",
        default=getattr(load(StreamSettings), f"{stream}_trigger"),
        type=parse_trigger,
        help=f"'availableNow' (drain and exit) or an interval like '5 seconds' "
        f"(default ${env} or {DEFAULT_TRIGGER!r})",
    )
    if topics:
        parser.add_argument("--topics", help="exchange=topic,... (default: the contract trade topics)")
    return parser


@dataclass(frozen=True)
class Tables:
    """Fully qualified names of the pipeline's tables in one namespace."""

    settings: PlatformSettings
    namespace: str

    def id(self, table: str) -> str:
        return table_id(self.settings, table, self.namespace)
