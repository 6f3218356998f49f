"""Stream 2: Bronze -> silver_<exchange>_trades (decoded, validated) + silver_dlq (rejects).

Per micro-batch (``foreachBatch``): read the wire header with column expressions,
decode each schema id's rows with ``from_avro`` and that id's writer schema
(PERMISSIVE: undecodable -> null -> DLQ), validate with column rules
(spark_jobs/validation.py), then append the valid rows to their exchange's Silver table
and every other row to the DLQ, the table commits side by side. Writer schemas come
from a cache; only a batch naming ids the cache has no answer for asks the registry,
and is then checked again. Nothing
runs Python per row; nothing is dropped. Appends are exactly once per checkpoint
(spark_jobs/batch_commits.py). Bronze is read skipping delete/overwrite snapshots,
so retention and compaction on Bronze do not break the stream.

    spark-submit spark_jobs/silver_transformation.py [--trigger '2 seconds'|availableNow]
        [--namespace market_data] [--topics binance=...,kraken=...]
        [--clock-skew-seconds 60] [--max-rows-per-batch 1000000]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro
from pyspark.sql.streaming import DataStreamWriter

from k2.contracts import BRONZE_TABLE, SILVER_DLQ_TABLE, silver_table
from k2.log import job_log
from k2.settings import PlatformSettings
from k2.streams import checkpoint_dir
from spark_jobs import wire
from spark_jobs.batch_commits import BatchCommits
from spark_jobs.batch_timing import BatchTimings
from spark_jobs.held import HeldRows, hold
from spark_jobs.options import job_settings, parse_topic_map, stream_parser, table_id
from spark_jobs.parallel import in_parallel
from spark_jobs.streaming import iceberg_stream
from spark_jobs.tables import KAFKA_COLUMNS, V3_COLUMNS
from spark_jobs.validation import Classifier, classifier, classify, clock_columns, rules

STREAM = "silver_transformation"
KAFKA_NAMES = [c.name for c in KAFKA_COLUMNS]
TIMESTAMP_FIELDS = {"timestamp", "ingestion_timestamp"}  # v3 long µs -> TIMESTAMP
MAX_SCHEMA_LOOKUPS = 32  # default registry requests per batch (--max-schema-lookups-per-batch)


def framed(batch: DataFrame) -> DataFrame:
    """The Bronze columns plus the header's schema id (null when the frame is too short)."""
    return batch.select(*KAFKA_NAMES, wire.schema_id().alias("schema_id"))


def lookup_candidates(frames: DataFrame, known: dict[int, wire.WriterSchema], limit: int) -> list[int]:
    """Ids of this batch the cache has no answer for, at most ``limit``: most rows first
    (a real schema id carries many trades, a hostile one few), then lowest id (real ids
    are small and grow one by one). Ids below 1 are never registry ids: no lookup."""
    ids = frames.where(wire.header_ok() & (F.col("schema_id") >= 1))
    if known:
        ids = ids.where(~F.col("schema_id").isin(list(known)))
    top = ids.groupBy("schema_id").count().orderBy(F.desc("count"), "schema_id").limit(limit).collect()
    return [r.schema_id for r in top]


def resolve_schemas(frames: DataFrame, cache: wire.SchemaCache, limit: int) -> dict[int, wire.WriterSchema]:
    """Every answer the cache holds, plus at most ``limit`` new registry lookups for this
    batch's ids; ids left over are not looked up this batch (see :func:`with_schema_problem`)."""
    known = cache.known()
    for sid in lookup_candidates(frames, known, limit):
        found = cache.get(sid)
        if found.usable:
            refused = wire.spark_problem(frames.sparkSession, found.text)
            if refused:
                found = wire.WriterSchema(sid, None, f"schema id {sid} {refused}")
                cache.remember(found)
        known[sid] = found
    return known


def with_schema_problem(frames: DataFrame, schemas: dict[int, wire.WriterSchema], lookup_cap: int) -> DataFrame:
    """Adds ``schema_problem``: null for a frame with a bad header (the header rules name
    it) or a usable schema id, else why the id cannot be decoded.

    Known problems join in from a small table rather than one expression per id, so a
    batch naming a thousand bad ids still plans and runs as one small broadcast join.
    """
    usable = sorted(sid for sid, s in schemas.items() if s.usable)
    problems = [(sid, s.problem or f"schema id {sid} is unusable") for sid, s in schemas.items() if not s.usable]
    if problems:
        table = frames.sparkSession.createDataFrame(problems, "schema_id int, known_problem string")
        joined = frames.join(F.broadcast(table), "schema_id", "left")
    else:
        joined = frames.withColumn("known_problem", F.lit(None).cast("string"))
    sid = F.col("schema_id")
    is_usable = sid.isin(usable) if usable else F.lit(False)
    problem = (
        F.when(~wire.header_ok() | F.coalesce(is_usable, F.lit(False)), F.lit(None).cast("string"))
        .when(F.col("known_problem").isNotNull(), F.col("known_problem"))
        .when(sid < 1, F.format_string("schema id %d is not a registry id (ids start at 1)", sid))
        .otherwise(F.format_string(
            "schema id %d was not looked up: this batch held more than %d schema ids new to the "
            "registry cache (--max-schema-lookups-per-batch); if the id is real, replay the record "
            "from Bronze", sid, F.lit(lookup_cap)))
    )
    return joined.select(*frames.columns, problem.alias("schema_problem"))


def _v3_projection(decoded: str | None, schema: wire.WriterSchema | None) -> tuple[list[Column], Column]:
    """The v3 columns typed as in Silver (absent fields null), and ``out_of_range``: the
    fields whose decoded value does not fit (``try_cast``, never a failing cast)."""
    fields = schema.fields if schema else set()
    out, overflow = [], []
    for c in V3_COLUMNS:
        if c.name not in fields or decoded is None:
            out.append(F.lit(None).cast(c.type).alias(c.name))
            continue
        source = F.col(f"{decoded}.{c.name}")
        value = F.timestamp_micros(source) if c.name in TIMESTAMP_FIELDS else source
        typed = value.try_cast(c.type)
        out.append(typed.alias(c.name))
        overflow.append(F.when(source.isNotNull() & typed.isNull(), F.lit(c.name)))
    return out, (F.concat_ws(", ", *overflow) if overflow else F.lit(""))


def decode(frames: DataFrame, schemas: dict[int, wire.WriterSchema]) -> DataFrame:
    """Rows with ``decoded`` (true, or null when undecodable), ``out_of_range`` and the v3
    columns; each usable schema id's rows decoded with their own writer schema, every
    other row (bad header, unusable id) passed through undecoded. Each input row comes
    out exactly once.

    Two projections whatever the number of schema ids, not a union of one branch per id:
    the first decodes each row with at most one ``from_avro`` (the one of its id; the
    others get a null body), the second picks that decoder's fields. Spark analyses a
    plan at every DataFrame call, and a per-id union made each batch's plan several times
    larger for the usual batch of one id.
    """
    spark = frames.sparkSession
    usable = {sid: s for sid, s in schemas.items() if s.usable}
    key = (spark.sparkContext.applicationId, tuple(sorted((sid, s.text or "") for sid, s in usable.items())))
    columns = _DECODE_COLUMNS.get(key)
    if columns is None:
        wire.cap_avro_allocations(spark)  # once per JVM and schema set, not per batch
        if len(_DECODE_COLUMNS) >= MAX_DECODE_PLANS:
            _DECODE_COLUMNS.clear()
        columns = _DECODE_COLUMNS[key] = _decode_columns(usable)
    decoders, picks = columns
    decoding = frames.select(*frames.columns, *decoders)
    return decoding.select(*frames.columns, *picks)


# The decode columns of each schema set seen, built once: a batch's usual schema set is
# the previous batch's, and building them took hundreds of py4j calls per batch (most of
# Silver's "build" phase on a busy machine). Column expressions are not bound to a
# DataFrame, so the same ones serve every batch.
_DECODE_COLUMNS: dict[tuple, tuple[list[Column], list[Column]]] = {}
MAX_DECODE_PLANS = 8  # a hostile stream of schema ids must not grow this without bound


def _decode_columns(usable: dict[int, wire.WriterSchema]) -> tuple[list[Column], list[Column]]:
    """(the ``from_avro`` columns of the first projection, the columns of the second)."""
    route = F.when(wire.header_ok() & F.col("schema_problem").isNull(), F.col("schema_id"))
    structs = {sid: f"_k2_avro_{sid}" for sid in usable}
    decoders = [from_avro(F.when(route == sid, wire.body()), wire.decode_schema(s.text),
                          {"mode": "PERMISSIVE"}).alias(structs[sid]) for sid, s in usable.items()]
    oks, overflows, typed = [], [], {c.name: [] for c in V3_COLUMNS}
    for sid, schema in usable.items():
        struct = structs[sid]
        # PERMISSIVE from_avro yields a struct of all-null fields for a malformed body; a
        # good v3 body never does (its fields are non-null), so that is decode_error.
        all_null = reduce(lambda a, b: a & b, [F.col(f"{struct}.{f}").isNull() for f in schema.fields])
        ok = F.col(struct).isNotNull() & ~all_null
        columns, overflow = _v3_projection(struct, schema)
        oks.append(F.when(ok, True))
        overflows.append(F.when(ok, overflow))
        for c, column in zip(V3_COLUMNS, columns, strict=True):
            typed[c.name].append(F.when(F.col(struct).isNotNull(), column))
    nulls, _ = _v3_projection(None, None)
    # A row's struct is non-null for its own id only, so the first non-null is its value.
    fields = [F.coalesce(*typed[c.name], null).alias(c.name) if typed[c.name] else null
              for c, null in zip(V3_COLUMNS, nulls, strict=True)]
    picks = [F.coalesce(*oks, F.lit(None).cast("boolean")).alias("decoded"),
             F.coalesce(*overflows, F.lit(None).cast("string")).alias("out_of_range"),
             *fields]
    return decoders, picks


def check(frames: DataFrame, schemas: dict[int, wire.WriterSchema], topic_map: dict[str, str],
          now: datetime, clock_skew_s: float, rules_of_stream: Classifier | None = None) -> DataFrame:
    """Decoded rows with ``error_type``/``error_message`` (null when the row is valid).
    ``rules_of_stream``: the rules built once for ``topic_map`` and ``clock_skew_s``
    (built here when not given).

    Hold or persist the result before filtering it (SilverBatch holds it,
    spark_jobs/held.py): otherwise Spark pushes a filter on
    ``error_type`` down through the projections, inlining ``from_avro`` into every field
    reference; the generated code then outgrows the JVM's limits and decodes each row
    many times over.
    """
    compiled = rules_of_stream or classifier(rules(topic_map, clock_skew_s))
    clock = clock_columns(now, clock_skew_s)
    missing = {name: column for name, column in clock.items() if name not in frames.columns}
    return classify(decode(frames.withColumns(missing), schemas), compiled).drop(*clock)


def silver_rows(checked: DataFrame, topic: str) -> DataFrame:
    """The valid rows of one exchange's topic, as its Silver table holds them."""
    return checked.where(F.col("error_type").isNull() & (F.col("topic") == topic)).select(
        *[c.name for c in V3_COLUMNS], F.to_date("timestamp").alias("exchange_date"))


def dlq_rows(checked: DataFrame, now: datetime) -> DataFrame:
    """Every rejected row, as silver_dlq holds it."""
    return checked.where(F.col("error_type").isNotNull()).select(
        *KAFKA_NAMES, "schema_id", "error_type", "error_message", F.lit(now).alias("error_timestamp"))


class SilverBatch:
    """The ``foreachBatch`` function: one Bronze micro-batch -> Silver tables + DLQ."""

    def __init__(self, settings: PlatformSettings, namespace: str, topic_map: dict[str, str], clock_skew_s: float,
                 max_schema_lookups: int = MAX_SCHEMA_LOOKUPS, timings: BatchTimings | None = None):
        self.settings = settings
        self.namespace = namespace
        self.topic_map = topic_map
        self.clock_skew_s = clock_skew_s
        self.max_schema_lookups = max_schema_lookups
        self.schemas = wire.SchemaCache(settings.registry_url)
        self.log = job_log(STREAM)
        self.commits = BatchCommits(checkpoint_dir(STREAM, settings), self.log)
        self.timings = timings or BatchTimings()  # read by the progress reporter
        self.rules = classifier(rules(topic_map, clock_skew_s))  # built once: hundreds of py4j calls

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        now = datetime.now(UTC)  # one clock per batch: reruns of a stage agree
        # The clock columns go in before the persist: behind it they are data to the
        # optimizer, not constants it folds into the rules' generated code.
        frames = framed(batch).withColumns(clock_columns(now, self.clock_skew_s)).persist()
        try:
            # Optimistic: decode with the schemas already known (every id of a running
            # stream's usual batch), and ask the registry only when the batch named ids the
            # cache has no answer for; then the batch is checked again with their answers.
            schemas = self.schemas.known()
            checked, stats = self._check(frames, schemas, batch_id, now)
            if any(r.unresolved for r in stats) and self.max_schema_lookups > 0:
                checked.release()
                before = self.schemas.lookups
                with self.timings.phase(batch_id, "schemas"):
                    schemas = resolve_schemas(frames, self.schemas, self.max_schema_lookups)
                if self.schemas.lookups - before:
                    self.log.info("schema_lookups", batch_id=batch_id, lookups=self.schemas.lookups - before)
                checked, stats = self._check(frames, schemas, batch_id, now)
            try:
                self._write(checked.frame, stats, batch_id, now)
            finally:
                checked.release()
        finally:
            frames.unpersist()
        self.commits.batch_done()

    def _check(self, frames: DataFrame, schemas: dict[int, wire.WriterSchema], batch_id: int,
               now: datetime) -> tuple[HeldRows, list]:
        """The checked batch, held (spark_jobs/held.py: each table's append then plans
        against the held rows, not the decode and every rule again), and its counts by
        topic, error type and whether the row's schema id is one the cache has no answer
        for (``unresolved``)."""
        with self.timings.phase(batch_id, "build"):  # the decode and rule expressions, analysed by Spark
            checked = check(with_schema_problem(frames, schemas, self.max_schema_lookups), schemas,
                            self.topic_map, now, self.clock_skew_s, self.rules)
        known = list(schemas)
        unresolved = wire.header_ok() & (F.col("schema_id") >= 1)
        if known:
            unresolved = unresolved & ~F.col("schema_id").isin(known)
        with self.timings.phase(batch_id, "decode_validate"):  # the first action: decodes and holds the rows
            held = hold(checked)
            try:
                stats = held.frame.groupBy("topic", "error_type", F.coalesce(unresolved, F.lit(False)).alias(
                    "unresolved")).count().collect()
            except BaseException:
                held.release()
                raise
        return held, stats

    def _write(self, checked: DataFrame, stats: list, batch_id: int, now: datetime) -> None:
        valid_by_topic: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for r in stats:
            if r.error_type is None:
                valid_by_topic[r.topic] = valid_by_topic.get(r.topic, 0) + r["count"]
            else:
                by_type[r.error_type] = by_type.get(r.error_type, 0) + r["count"]
        appends: dict[str, DataFrame] = {}
        rows: dict[str, int] = {}  # table -> rows appended
        for ex, topic in self.topic_map.items():
            if valid_by_topic.get(topic):
                appends[silver_table(ex)] = silver_rows(checked, topic)
                rows[silver_table(ex)] = valid_by_topic[topic]
        if by_type:
            appends[SILVER_DLQ_TABLE] = dlq_rows(checked, now)
            rows[SILVER_DLQ_TABLE] = sum(by_type.values())
        if appends:
            # Side by side: the batch waits for the slowest commit, not their sum.
            with self.timings.phase(batch_id, "commits"):
                in_parallel([lambda t=t, df=df: self.commits.append(df, table_id(self.settings, t, self.namespace),
                                                                    batch_id)
                             for t, df in appends.items()])
            self.log.info("batch_written", batch_id=batch_id, rows=rows, dlq_error_types=by_type)


def build(spark: SparkSession, args: argparse.Namespace, settings: PlatformSettings,
          timings: BatchTimings | None = None) -> DataStreamWriter:
    """A new handler per query start: its replay check (BatchCommits) is for the first
    batch a query runs."""
    bronze = iceberg_stream(spark, table_id(settings, BRONZE_TABLE, args.namespace), args.max_rows_per_batch)
    handler = SilverBatch(settings, args.namespace, parse_topic_map(args.topics), args.clock_skew_seconds,
                          args.max_schema_lookups_per_batch, timings or BatchTimings())
    return bronze.writeStream.foreachBatch(handler)


def main(argv: list[str] | None = None) -> int:
    parser = stream_parser(__doc__, STREAM, topics=True)
    parser.add_argument("--clock-skew-seconds", type=float, default=60.0,
                        help="how far into the future a trade timestamp may be (default 60)")
    parser.add_argument("--max-rows-per-batch", type=int, default=1_000_000,
                        help="soft cap on Bronze rows per micro-batch (default 1000000)")
    parser.add_argument("--max-schema-lookups-per-batch", type=int, default=MAX_SCHEMA_LOOKUPS,
                        help="registry requests a batch may make for schema ids it has not seen; rows "
                        f"of ids beyond it go to the DLQ as unknown_schema_id (default {MAX_SCHEMA_LOOKUPS})")
    args = parser.parse_args(argv)
    settings = job_settings(STREAM)

    from spark_jobs.streaming import run_stream

    timings = BatchTimings()
    return run_stream(settings, STREAM, lambda spark: build(spark, args, settings, timings), args.trigger,
                      timings=timings)


if __name__ == "__main__":
    raise SystemExit(main())
