"""The legacy estate cleanup_migrations may remove: an explicit list of names, nothing else.

**Why a list and not a pattern.** The schema registry, the Kafka cluster and the Iceberg
catalog can be shared with other applications. Their names may well contain ``v1``,
``equity`` or ``asx`` (``myapp.v1-value``, ``equity-other-app-value``), and removing a
subject, topic or table destroys something its owner may not be able to recreate. An
earlier version chose subjects by regular expressions over the whole registry and would
have removed such names. So only the exact names below are ever selected; a name that is
not on the list is never touched, however legacy it looks. A legacy object missing from
the list stays until it is added here, with where it comes from.

Where the names come from (the plan this product came from, ``seeds/``, Phase 10
milestone 1 "Complete cleanup", and ``SPEC.md`` section 5):

- **Tables** (:data:`LEGACY_TABLES`, defined once in :mod:`k2.contracts` because the Spark
  job ``spark_jobs/legacy_cleanup.py`` drops the same ones): step 03 drops
  ``market_data.trades_v1``, ``trades_v2``, ``quotes_v1`` and ``quotes_v2``. The v2
  tables are also where the crypto v2 estate lived (Binance and Kraken on the v2 schema).
- **Topics** (:data:`LEGACY_TOPICS`): step 01 removes the ``equities.asx`` section of the
  old ``config/kafka/topics.yaml``. That file named topics
  ``market.{asset_class}.{data_type}.{exchange}`` for the data types ``trades``,
  ``quotes`` and ``reference_data``, so the section is the three ASX topics below. The
  crypto v2 topics are today's v3 topics (``market.crypto.trades.<exchange>``) and are
  protected.
- **Subjects** (:data:`LEGACY_SUBJECTS`): step 02 deletes
  ``com.k2.marketdata.Trade-value`` and ``com.k2.marketdata.Quote-value`` (the v1
  ``trade.avsc`` and ``quote.avsc`` under RecordNameStrategy) and
  ``market.equities.trades.asx-value``; the value subjects of the other two ASX topics
  (TopicNameStrategy) go with their topics.

Everything the current contracts name (v3 topics, their subjects, every lakehouse table)
is checked at import to be off the list: a typo here must never turn into a removal of
live data.
"""

from __future__ import annotations

from k2 import contracts

KINDS = ("table", "subject", "topic")

LEGACY_TABLES: tuple[str, ...] = tuple(contracts.LEGACY_TABLES)  # in contracts.NAMESPACE
LEGACY_TOPICS: tuple[str, ...] = (
    "market.equities.trades.asx",
    "market.equities.quotes.asx",
    "market.equities.reference_data.asx",
)
LEGACY_SUBJECTS: tuple[str, ...] = (
    "com.k2.marketdata.Trade-value",
    "com.k2.marketdata.Quote-value",
    *(contracts.value_subject(t) for t in LEGACY_TOPICS),
)
LEGACY: dict[str, tuple[str, ...]] = {
    "table": LEGACY_TABLES, "subject": LEGACY_SUBJECTS, "topic": LEGACY_TOPICS,
}


def protected_topics() -> set[str]:
    return {*contracts.trade_topics(), contracts.DLQ_TOPIC}


def protected_subjects() -> set[str]:
    topics = protected_topics()
    return {contracts.value_subject(t) for t in topics} | {f"{t}-key" for t in topics}


def protected_tables() -> set[str]:
    return set(contracts.lakehouse_tables())


PROTECTED = {"table": protected_tables, "subject": protected_subjects, "topic": protected_topics}


def check_disjoint(legacy: dict[str, tuple[str, ...]] = LEGACY) -> None:
    """Raise if any listed legacy name is one of the platform's own (v3) names."""
    clashes = {kind: sorted(set(names) & PROTECTED[kind]()) for kind, names in legacy.items()}
    clashes = {kind: names for kind, names in clashes.items() if names}
    if clashes:
        raise RuntimeError(f"legacy names that are live v3 objects, never removable: {clashes}")


check_disjoint()


def is_legacy(kind: str, name: str) -> bool:
    """True only for a name on the explicit list of ``kind`` (table, subject or topic)."""
    return name in LEGACY[kind]


def select(kind: str, present: list[str] | set[str]) -> list[str]:
    """The listed legacy names of ``kind`` among ``present``, sorted; nothing else."""
    return sorted(set(present) & set(LEGACY[kind]))
