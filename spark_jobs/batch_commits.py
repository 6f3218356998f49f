"""Exactly-once appends from ``foreachBatch``: each commit is tagged with its batch.

Spark re-runs the last uncommitted micro-batch after a crash. Iceberg's streaming sink
skips such a replay by itself, but ``foreachBatch`` writes are plain appends, so each
one carries the snapshot property ``k2.commit = <query id>:<batch id>`` and, for the
first batch a process runs (the only one that can be a replay), a table that already
holds that tag is skipped. The query id comes from the checkpoint, so a new checkpoint
never matches an old tag.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from k2.log import EventLog

COMMIT_PROPERTY = "k2.commit"


class BatchCommits:
    def __init__(self, checkpoint: Path, log: EventLog):
        self.checkpoint = checkpoint
        self.log = log
        self._first_batch_of_process = True
        self._query_id: str | None = None

    def query_id(self) -> str:
        if self._query_id is None:
            # Written by Spark when the query first starts; stable across restarts.
            self._query_id = json.loads((self.checkpoint / "metadata").read_text())["id"]
        return self._query_id

    def tag(self, batch_id: int) -> str:
        return f"{self.query_id()}:{batch_id}"

    def already_committed(self, spark: SparkSession, table: str, batch_id: int) -> bool:
        tag = self.tag(batch_id).replace("'", "")
        found = spark.sql(
            f"SELECT count(*) AS n FROM {table}.snapshots WHERE summary['{COMMIT_PROPERTY}'] = '{tag}'"
        ).first()
        return bool(found and found.n)

    def append(self, df: DataFrame, table: str, batch_id: int) -> bool:
        """Append ``df`` unless this batch already committed to ``table``; True if written."""
        if self._first_batch_of_process and self.already_committed(df.sparkSession, table, batch_id):
            self.log.info("batch_replay_skipped", batch_id=batch_id, table=table,
                          detail="replayed after a restart: the table already has this batch")
            return False
        df.writeTo(table).option(f"snapshot-property.{COMMIT_PROPERTY}", self.tag(batch_id)).append()
        return True

    def batch_done(self) -> None:
        self._first_batch_of_process = False
