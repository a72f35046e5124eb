"""The SQL gate: one read-only statement, on a connection that cannot write, change state or read
outside the data sets it was opened on (DESIGN.md §3).

Two independent walls, so a bypass of one is not a bypass of both:
1. Only a plain SELECT (or EXPLAIN [ANALYZE] of one) is accepted: the statement *inside* an
   EXPLAIN is parsed and checked too, because `EXPLAIN ANALYZE COPY ...` executes the COPY.
2. Every query runs on a fresh DuckDB connection whose views are made first; then file access is
   limited to the folders of the data sets the query names, external access is switched off and
   the configuration is locked. Nothing done on that connection outlives the query, and no file
   outside those folders can be read or written (`read_text('/proc/self/environ')`, `COPY ... TO`,
   `INSTALL`, `ATTACH` all fail). A file written inside a data-set folder would still be invisible:
   readers see only the files the Delta log names.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from factory.errors import StoreError
from factory.store.names import quote_identifier, quote_literal

READ_ONLY = {duckdb.StatementType.SELECT}
EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.IGNORECASE)
# Settings made before the lock: no extension is fetched or loaded behind the user's back, and
# names in a query never resolve to Python variables of the caller (DuckDB's replacement scans).
CONNECTION_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
}


def first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")[:2]).strip()


def check_read_only(query: str) -> None:
    """Refuse anything but one SELECT (or EXPLAIN of one), with the statement type in the message."""
    statement = _one_statement(query)
    if statement.type == duckdb.StatementType.EXPLAIN:
        inner = EXPLAIN_PREFIX.sub("", statement.query, count=1)
        if inner == statement.query:  # an EXPLAIN form we cannot take apart: refuse rather than guess
            _refuse("EXPLAIN")
        inner_statement = _one_statement(inner)
        if inner_statement.type not in READ_ONLY:
            _refuse(f"EXPLAIN {inner_statement.type.name}")
        return
    if statement.type == duckdb.StatementType.MULTI:
        raise StoreError("refused: this query needs more than one statement (a PIVOT without an IN list "
                         "creates a type first); name the values, e.g. PIVOT t ON col IN ('a', 'b') USING ...")
    if statement.type not in READ_ONLY:
        _refuse(statement.type.name)


def _one_statement(query: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise StoreError(f"invalid SQL: {first_line(exc)}") from None
    if not statements:
        raise StoreError("empty SQL query")
    if len(statements) > 1:
        raise StoreError("refused: one SQL statement at a time, please")
    return statements[0]


def _refuse(kind: str) -> None:
    raise StoreError(f"refused: the store is read-only through SQL ({kind} statement); "
                     "data sets change only through pipeline runs")


def referenced_names(query: str) -> set[str] | None:
    """Lower-cased table names a query mentions (DuckDB identifiers are case-insensitive); None
    when DuckDB cannot tell without binding (a query with `?` parameters): then every data set."""
    try:
        return {name.lower() for name in duckdb.get_table_names(query, qualified=False)}
    except duckdb.Error:
        return None


@dataclass(frozen=True)
class View:
    """One data set as a query sees it: the Parquet files of one table version."""

    name: str
    files: list[str]
    schema: pa.Schema
    folder: str


def open_gated(views: Sequence[View], filesystem: object | None = None,
               tables: Mapping[str, pa.Table] | None = None) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A fresh connection with `views` (and in-memory `tables`) defined, then locked down; also
    returns the views that could not be defined (a damaged file), name -> reason, so that only a
    query that reads one of them fails."""
    connection = duckdb.connect(config=CONNECTION_CONFIG)
    broken = {}
    try:
        if filesystem is not None:  # object stores: DuckDB reads them through fsspec, no extension
            connection.register_filesystem(filesystem)
        for view in views:
            try:
                _define_view(connection, view)
            except duckdb.Error as exc:
                broken[view.name] = first_line(exc)
        for name, table in (tables or {}).items():
            connection.register(name, table)
        folders = sorted({view.folder.rstrip("/") + "/" for view in views})
        connection.execute("SET allowed_directories = " + _list_literal(folders))
        connection.execute("SET allowed_paths = []")
        connection.execute("SET temp_directory = " + quote_literal(tempfile.gettempdir() + "/factory-duckdb-spill"))
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection, broken


def query_tables(query: str, tables: Mapping[str, pa.Table], params: Sequence[object] | None = None) -> pa.Table:
    """Read-only SQL over in-memory tables only (a stage's input rows, a seed file's rows), on the
    same locked-down connection as store queries: user expressions from a config can read no file."""
    check_read_only(query)
    connection, _ = open_gated([], None, tables)
    try:
        return connection.sql(query, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {first_line(exc)}") from None
    finally:
        connection.close()


def _define_view(connection: duckdb.DuckDBPyConnection, view: View) -> None:
    name = quote_identifier(view.name)
    if not view.files:  # every row deleted: an empty relation with the table's columns
        connection.register(f"__empty_{view.name}", view.schema.empty_table())
        connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {quote_identifier('__empty_' + view.name)}")
        return
    connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet({_list_literal(view.files)})")


def _list_literal(values: Sequence[str]) -> str:
    return "[" + ", ".join(quote_literal(value) for value in values) + "]"
