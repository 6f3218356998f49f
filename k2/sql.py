"""Read-only SQL over the lakehouse tables: parse, plan the Iceberg scans, run in DuckDB.

A query goes through three steps, each one a function here (:func:`k2.lake.sql` and
`k2 sql` put them together with the catalog):

1. :func:`parse` refuses anything but one read-only statement (DuckDB's own parser
   says what kind each statement is: INSERT, COPY, PRAGMA, SET, ...), gets the parsed
   statement as JSON (``json_serialize_sql``) and names the lakehouse tables it reads.
2. :func:`plan` works out, for each table, the Iceberg scan: the columns the query
   names anywhere (all of them after a ``*``) and a ``row_filter`` made of the WHERE
   (and inner-join ON) conjuncts that compare one of its columns with constants
   (``=``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``, ``IN``). Whatever cannot be
   translated exactly is not pushed: conjuncts under OR or NOT, on the nullable side of
   an outer join, across ASOF/POSITIONAL/LATERAL joins or samples, on columns that may
   belong to a subquery, with expressions or casts of the column, or with constants
   whose type is not the column's. DuckDB still applies the whole WHERE to the rows
   read, so the result is exact; pushing only makes pyiceberg skip files (partition
   pruning, column statistics) and rows.
3. :func:`run` runs the statement in an in-process DuckDB over the Arrow tables read,
   with external access (files, network, extensions) disabled and the configuration
   locked before the query runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import reduce
from typing import TYPE_CHECKING, Any

from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    LessThan,
    LessThanOrEqual,
    Or,
)
from pyiceberg.types import (
    DateType,
    DecimalType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
)

from k2.contracts import NAMESPACE, lakehouse_tables
from k2.times import QueryError, ReadOnlyError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema


@dataclass(frozen=True)
class Statement:
    """One parsed read-only statement: its text, DuckDB's parse tree, the tables it reads."""

    query: str
    tree: dict
    tables: tuple[str, ...]  # lakehouse table names, sorted


@dataclass(frozen=True)
class TableScan:
    """How to scan one table for a statement: ``columns`` None means all of them."""

    name: str
    row_filter: BooleanExpression
    columns: tuple[str, ...] | None


# 1. Parse -------------------------------------------------------------------------
def parse(query: str, namespaces: Collection[str] = (NAMESPACE,)) -> Statement:
    """``query`` checked to be one read-only statement over lakehouse tables (unqualified
    or qualified by one of ``namespaces``); ReadOnlyError or QueryError otherwise."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise ReadOnlyError(f"give exactly one statement (a SELECT); this query holds {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyError(f"refused: {kind.name} statements are not allowed; SQL here is read-only: one "
                            "SELECT (WITH, FROM, VALUES, DESCRIBE, SUMMARIZE, SHOW) over the lakehouse tables")
    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    if tree.get("error"):
        raise QueryError(f"the query cannot be planned: {tree.get('error_message', tree)}")
    ctes = _cte_names(tree)
    return Statement(query, tree, tuple(sorted({_table_name(ref, namespaces) for ref in _table_refs(tree)
                                                if not _is_cte(ref, ctes)})))


def _table_name(ref: dict, namespaces: Collection[str]) -> str:
    name, schema = ref["table_name"].lower(), ref.get("schema_name", "").lower()
    shown = ".".join(p for p in (ref.get("catalog_name", ""), ref.get("schema_name", ""), ref["table_name"]) if p)
    known = {n.lower() for n in namespaces}
    if ref.get("catalog_name") or (schema and schema not in known) or name not in lakehouse_tables():
        raise QueryError(f"unknown table {shown!r}; the lakehouse tables are: {', '.join(lakehouse_tables())} "
                         f"(optionally qualified: {NAMESPACE}.<table>)")
    if ref.get("at_clause"):
        raise QueryError(f"{shown} AT (...) is not supported: read an earlier snapshot with as_of / --as-of")
    return name


def _walk(node: Any) -> Iterator[dict]:
    """Every dict in the parse tree, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _base_tables(tree: dict) -> list[dict]:
    return [d for d in _walk(tree) if d.get("type") == "BASE_TABLE" and "table_name" in d]


def _table_refs(tree: dict) -> list[dict]:
    """The nodes naming a table: FROM items, and `SHOW <table>` (DuckDB's DESCRIBE)."""
    return _base_tables(tree) + [d for d in _walk(tree) if d.get("type") == "SHOW_REF"
                                 and d.get("table_name", "").lower() in lakehouse_tables()]


def _described(tree: dict) -> set[int]:
    """Ids of the table references that only DESCRIBE or SHOW reads: their columns, no rows."""
    shows = [d for d in _walk(tree) if d.get("type") == "SHOW_REF" and d.get("show_type") in ("DESCRIBE", "SHOW")]
    return {id(d) for d in shows} | {id(ref) for show in shows for ref in _base_tables(show)}


def _cte_names(tree: dict) -> set[str]:
    return {entry["key"].lower() for d in _walk(tree) if isinstance(d.get("cte_map"), dict)
            for entry in d["cte_map"].get("map", [])}


def _is_cte(ref: dict, ctes: set[str]) -> bool:
    """Possibly a reference to a CTE: unqualified, named like one (a lakehouse table of that
    name is read too, in full, in case some scope means the table)."""
    return not ref.get("schema_name") and ref["table_name"].lower() in ctes and \
        ref["table_name"].lower() not in lakehouse_tables()


# 2. Plan --------------------------------------------------------------------------
def plan(stmt: Statement, schemas: Mapping[str, Schema]) -> dict[str, TableScan]:
    """The scan of each table of ``stmt`` given its Iceberg schema: a row filter that keeps
    every row the statement could use, and the columns it names."""
    refs = [r for r in _table_refs(stmt.tree) if r["table_name"].lower() in schemas]
    ctes = _cte_names(stmt.tree)
    pushed: dict[int, BooleanExpression] = dict.fromkeys(_described(stmt.tree), AlwaysFalse())
    for node in _walk(stmt.tree):
        if node.get("type") == "SELECT_NODE":
            pushed.update(_select_filters(node, schemas, ctes))
    names, everything = _named_columns(stmt.tree, refs)
    scans = {}
    for name, schema in schemas.items():
        mine = [r for r in refs if r["table_name"].lower() == name]
        filters = [pushed.get(id(r), AlwaysTrue()) for r in mine] or [AlwaysTrue()]
        row_filter = reduce(Or, filters)  # rows any reference may use (Or simplifies AlwaysTrue/False)
        columns = None
        if not (everything or name in ctes or any(r.get("column_name_alias") for r in mine)):
            # At least one column, so that count(*) still sees every row.
            columns = tuple(f.name for f in schema.fields if f.name.lower() in names) or (schema.fields[0].name,)
        scans[name] = TableScan(name, row_filter, columns)
    return scans


def _named_columns(tree: dict, refs: list[dict]) -> tuple[set[str], bool]:
    """Every name a column reference uses (lower case), and whether the query may read
    columns it does not name (``*``, NATURAL joins, a table used as a value, PIVOT, ...)."""
    names: set[str] = set()
    everything = False
    bindings = {(r.get("alias") or r["table_name"]).lower() for r in refs} | {r["table_name"].lower() for r in refs}
    for d in _walk(tree):
        if d.get("class") == "STAR" or d.get("type") in ("PIVOT", "SHOW_REF") or d.get("ref_type") == "NATURAL":
            everything = True
        if d.get("class") == "COLUMN_REF":
            parts = [p.lower() for p in d.get("column_names", [])]
            names.update(parts)
            if len(parts) == 1 and parts[0] in bindings:  # the whole row as a struct
                everything = True
        if d.get("type") == "JOIN":
            names.update(c.lower() for c in d.get("using_columns") or [])
    return names, everything


@dataclass
class _Leaf:
    ref: dict  # the BASE_TABLE node
    binding: str  # alias, or table name
    schema: Schema | None  # None: not a lakehouse table (a CTE)
    pushable: bool


def _select_filters(node: dict, schemas: Mapping[str, Schema], ctes: set[str]) -> dict[int, BooleanExpression]:
    """The filters this SELECT's WHERE (and inner joins' ON) can push to its base tables,
    by id of their BASE_TABLE node."""
    leaves: list[_Leaf] = []
    opaque: list[str] = []  # aliases of FROM items whose columns are unknown (subqueries, functions)
    conjuncts = list(_conjuncts(node.get("where_clause")))
    _flatten(node.get("from_table"), not node.get("sample"), leaves, opaque, conjuncts, schemas, ctes)
    found: dict[int, list[BooleanExpression]] = {}
    for conjunct in conjuncts:
        translated = _translate(conjunct, leaves, opaque)
        if translated is not None and _binds(*translated):
            leaf, expr = translated
            found.setdefault(id(leaf.ref), []).append(expr)
    return {ref_id: reduce(And, exprs) for ref_id, exprs in found.items()}


def _binds(leaf: _Leaf, expr: BooleanExpression) -> bool:
    """Whether pyiceberg takes ``expr`` on the table (a last check: what it refuses is not pushed)."""
    from pyiceberg.expressions.visitors import bind

    try:
        bind(leaf.schema, expr, case_sensitive=True)
    except Exception:  # noqa: BLE001 - any refusal means: do not push
        return False
    return True


# Joins whose sides a WHERE conjunct filters before the join as well as after.
_PLAIN_JOINS = ("REGULAR", "CROSS", "NATURAL")


def _flatten(ref: dict | None, pushable: bool, leaves: list[_Leaf], opaque: list[str], conjuncts: list[dict],
             schemas: Mapping[str, Schema], ctes: set[str]) -> None:
    if ref is None or ref.get("type") == "EMPTY":
        return
    kind = ref.get("type")
    if kind == "BASE_TABLE":
        name = ref["table_name"].lower()
        is_cte = not ref.get("schema_name") and name in ctes
        schema = schemas.get(name) if not is_cte else None
        binding = (ref.get("alias") or ref["table_name"]).lower()
        if schema is None:
            opaque.append(binding)
            return
        ok = pushable and not ref.get("sample") and not ref.get("column_name_alias")
        leaves.append(_Leaf(ref, binding, schema, ok))
    elif kind == "JOIN":
        join, how = ref.get("join_type"), ref.get("ref_type")
        plain = how in _PLAIN_JOINS
        left_ok = pushable and plain and join in ("INNER", "LEFT")
        right_ok = pushable and plain and join in ("INNER", "RIGHT")
        _flatten(ref.get("left"), left_ok, leaves, opaque, conjuncts, schemas, ctes)
        _flatten(ref.get("right"), right_ok, leaves, opaque, conjuncts, schemas, ctes)
        if plain and join == "INNER":
            conjuncts.extend(_conjuncts(ref.get("condition")))
    else:  # SUBQUERY, TABLE_FUNCTION, EXPRESSION_LIST, PIVOT, SHOW_REF, ...
        opaque.append((ref.get("alias") or "").lower())


def _conjuncts(expr: dict | None) -> Iterator[dict]:
    if expr is None:
        return
    if expr.get("type") == "CONJUNCTION_AND":
        for child in expr.get("children", []):
            yield from _conjuncts(child)
    else:
        yield expr


_COMPARISONS = {
    "COMPARE_EQUAL": (EqualTo, EqualTo),
    "COMPARE_LESSTHAN": (LessThan, GreaterThan),  # (column op constant, constant op column)
    "COMPARE_GREATERTHAN": (GreaterThan, LessThan),
    "COMPARE_LESSTHANOREQUALTO": (LessThanOrEqual, GreaterThanOrEqual),
    "COMPARE_GREATERTHANOREQUALTO": (GreaterThanOrEqual, LessThanOrEqual),
}


def _translate(expr: dict, leaves: list[_Leaf], opaque: list[str]) -> tuple[_Leaf, BooleanExpression] | None:
    """``expr`` as a pyiceberg predicate on one pushable table's column, exactly; None if it
    cannot be."""
    kind = expr.get("type")
    if kind in _COMPARISONS:
        left, right = expr.get("left"), expr.get("right")
        op, flipped = _COMPARISONS[kind]
        if left.get("class") != "COLUMN_REF":
            left, right, op = right, left, flipped
        found = _column(left, leaves, opaque)
        if found is None:
            return None
        leaf, name = found
        value = _constant(right, leaf.schema.find_type(name))
        return (leaf, op(name, value)) if value is not None else None
    if kind == "COMPARE_BETWEEN":
        found = _column(expr.get("input"), leaves, opaque)
        if found is None:
            return None
        leaf, name = found
        lower, upper = (_constant(expr.get(k), leaf.schema.find_type(name)) for k in ("lower", "upper"))
        if lower is None or upper is None:
            return None
        return leaf, And(GreaterThanOrEqual(name, lower), LessThanOrEqual(name, upper))
    if kind == "COMPARE_IN":
        column, *options = expr.get("children", [])
        found = _column(column, leaves, opaque)
        if found is None or not options:
            return None
        leaf, name = found
        values = [_constant(o, leaf.schema.find_type(name)) for o in options]
        if any(v is None for v in values):
            return None
        return leaf, In(name, values)
    return None


def _column(ref: dict | None, leaves: list[_Leaf], opaque: list[str]) -> tuple[_Leaf, str] | None:
    """The pushable table and column a COLUMN_REF certainly names in this SELECT; None if it
    may name anything else (another scope, a subquery's column, a struct field)."""
    if ref is None or ref.get("class") != "COLUMN_REF":
        return None
    parts = [p.lower() for p in ref.get("column_names", [])]
    if len(parts) == 1:
        if opaque:
            return None
        candidates = [(leaf, f.name) for leaf in leaves for f in leaf.schema.fields if f.name.lower() == parts[0]]
    elif len(parts) == 2:
        qualifier, column = parts
        if qualifier in opaque or any(f.name.lower() == qualifier for leaf in leaves for f in leaf.schema.fields):
            return None  # could be a struct's field
        candidates = [(leaf, f.name) for leaf in leaves if leaf.binding == qualifier
                      for f in leaf.schema.fields if f.name.lower() == column]
    else:
        return None
    if len(candidates) != 1 or not candidates[0][0].pushable:
        return None
    return candidates[0]


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:\d{2})?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_INTEGER = re.compile(r"-?\d+")
_TIMESTAMPTZ_CASTS = {"TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"}
_TIMESTAMP_CASTS = {"TIMESTAMP", "DATETIME"}
_INT_RANGE = {IntegerType: 2**31, LongType: 2**63}


def _constant(expr: dict | None, column_type: IcebergType) -> Any:
    """The value a constant expression takes when DuckDB compares it with a column of
    ``column_type``, as pyiceberg takes it; None when that is not certain."""
    if expr is None:
        return None
    cast = None
    if expr.get("class") == "CAST" and not expr.get("try_cast"):
        cast = (expr.get("type_expr") or {}).get("type_name", "").upper()
        expr = expr.get("child") or {}
    if expr.get("class") != "CONSTANT":
        return None
    literal = expr.get("literal") or {}
    kind, text = literal.get("kind"), literal.get("text", "")
    if isinstance(column_type, StringType):
        return text if kind == "STRING" and cast in (None, "VARCHAR", "TEXT", "STRING") else None
    if isinstance(column_type, TimestamptzType | TimestampType):
        if kind != "STRING" or not _TIME.fullmatch(text):
            return None
        aware = text.endswith("Z") or bool(re.search(r"[+-]\d{2}(:\d{2})?$", text[10:]))
        if cast is not None and cast not in _TIMESTAMPTZ_CASTS | _TIMESTAMP_CASTS:
            return None
        if aware and (cast in _TIMESTAMP_CASTS or isinstance(column_type, TimestampType)):
            return None  # DuckDB's shift of an offset into a naive timestamp: not worth the risk
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
        if isinstance(column_type, TimestampType):
            return value.isoformat()
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(column_type, DateType):
        if kind != "STRING" or cast not in (None, "DATE") or not _DATE.fullmatch(text):
            return None
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            return None
    if cast is not None:
        return None
    if isinstance(column_type, DecimalType):
        if kind not in ("INTEGER", "NUMERIC") or not _DECIMAL.fullmatch(text):
            return None
        value = Decimal(text)
        digits = value.as_tuple()
        scale = max(0, -digits.exponent)
        if scale > column_type.scale or len(digits.digits) - scale > column_type.precision - column_type.scale:
            return None  # finer than the column, or beyond its range: compared otherwise
        return value.quantize(Decimal(1).scaleb(-column_type.scale))  # exact; pyiceberg wants the scale
    if type(column_type) in _INT_RANGE:
        if kind != "INTEGER" or not _INTEGER.fullmatch(text):
            return None
        bound = _INT_RANGE[type(column_type)]
        value = int(text)
        return value if -bound <= value < bound else None
    return None


# 3. Run ---------------------------------------------------------------------------
LOCKDOWN = (
    "SET python_enable_replacements = false",  # no Python variables as tables
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",  # no files, no network, no ATTACH
    "SET lock_configuration = true",  # and no SET to undo it
)


def run(stmt: Statement, data: Mapping[str, pa.Table], namespaces: Collection[str] = (NAMESPACE,)) -> pa.Table:
    """The result of ``stmt`` over ``data`` (one Arrow table per lakehouse table it reads),
    in a DuckDB that can read nothing else and write nowhere; QueryError if DuckDB fails."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # string times without offset are UTC
        for namespace in sorted({n.lower() for n in namespaces}):
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        for name, table in data.items():
            con.register(f"k2_arrow_{name}", table)  # not a lakehouse name: parse refuses it in queries
            for schema in ("main", *sorted({n.lower() for n in namespaces})):
                con.execute(f'CREATE VIEW "{schema}"."{name}" AS SELECT * FROM "k2_arrow_{name}"')
        for setting in LOCKDOWN:
            con.execute(setting)
        return con.sql(stmt.query).to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        con.close()
