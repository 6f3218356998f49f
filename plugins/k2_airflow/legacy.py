"""What counts as the legacy (v1/v2, equities, ASX) estate, and what never does.

Pure rules over names, so they are unit-tested without any service. Everything the
current contracts name (v3 topics, subjects, tables) is protected even if a rule would
match it: a cleanup can only ever remove what is both legacy and not ours.
"""

from __future__ import annotations

import re

from k2 import contracts

LEGACY_TOPIC_PREFIXES = ("market.equities.",)
# Subjects written by the v1 producers with RecordNameStrategy, named explicitly.
LEGACY_SUBJECTS = (
    "com.k2.marketdata.Trade-value",
    "com.k2.marketdata.Quote-value",
)
_EQUITY_OR_ASX = re.compile(r"equit|(?:^|[^a-z0-9])asx(?:$|[^a-z0-9])", re.IGNORECASE)
# "trades_v1", "quotes.v2-value", ... and CamelCase record names such as "TradeV1-value".
_VERSION_TOKEN = re.compile(r"(?:^|[._-])v[12](?:$|[._-])", re.IGNORECASE)
_CAMEL_VERSION = re.compile(r"[a-z]V[12](?:$|[._-])")


def protected_topics() -> set[str]:
    return {*contracts.trade_topics(), contracts.DLQ_TOPIC}


def protected_subjects() -> set[str]:
    topics = protected_topics()
    return {contracts.value_subject(t) for t in topics} | {f"{t}-key" for t in topics}


def protected_tables() -> set[str]:
    return set(contracts.lakehouse_tables())


def is_legacy_topic(name: str) -> bool:
    return name not in protected_topics() and name.startswith(LEGACY_TOPIC_PREFIXES)


def is_legacy_subject(name: str) -> bool:
    if name in protected_subjects():
        return False
    if name in LEGACY_SUBJECTS:
        return True
    if name.startswith(LEGACY_TOPIC_PREFIXES):
        return True
    return any(rx.search(name) for rx in (_EQUITY_OR_ASX, _VERSION_TOKEN, _CAMEL_VERSION))


def is_legacy_table(name: str) -> bool:
    return name not in protected_tables() and name in contracts.LEGACY_TABLES
