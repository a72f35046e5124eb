"""The store: one folder of Parquet shards per data set, queried with DuckDB (DESIGN.md §3).

Only the driver writes. A shard is written under a temporary name and renamed when complete,
so readers (DuckDB globs over `*.parquet`) never see half a file and never take a lock.
The location is a local path or any fsspec URL (`s3://bucket/prefix`, `memory://x`).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock
from fsspec.implementations.local import LocalFileSystem

from factory.errors import StoreError

DATASET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SHARD_SUFFIX = ".parquet"
TEMP_SUFFIX = ".parquet.tmp"  # never matches the readers' `*.parquet` glob
READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    rows: int
    shards: int
    columns: dict[str, str]


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.match(name):
        raise StoreError(f"invalid data set name {name!r}: use letters, digits and '_', not starting with a digit")
    return name


class Store:
    """A folder of data sets. Cheap to construct; opens nothing until used."""

    def __init__(self, location: str | os.PathLike[str]):
        self.location = str(location)
        self.fs, root = fsspec.core.url_to_fs(self.location)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.is_local else root.rstrip("/")
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._views: set[str] = set()
        self._schemas: dict[str, pa.Schema] = {}

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    # ---- writing -------------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Fail early, with the path, when the store cannot be written."""
        probe = f"{self.root}/.write-probe-{uuid.uuid4().hex}"
        try:
            if self.is_local:  # object stores have no folders (and s3fs would create a missing bucket)
                self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"ok")
            self.fs.rm(probe)
        except Exception as exc:  # noqa: BLE001 - OSError locally; botocore/s3fs errors on object stores
            reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
            raise StoreError(f"store {self.location!r} is not writable: {reason}") from None

    def append(self, dataset: str, table: pa.Table) -> str | None:
        """Write one shard atomically; returns its path (None for an empty table)."""
        check_dataset_name(dataset)
        if table.num_rows == 0:
            return None
        table = self._conform(dataset, table)
        folder = f"{self.root}/{dataset}"
        # Time-ordered names keep shards in write order when listed.
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        final = f"{folder}/{name}{SHARD_SUFFIX}"
        if self.is_local:
            os.makedirs(folder, exist_ok=True)
            temp = f"{folder}/{name}{TEMP_SUFFIX}"
            pq.write_table(table, temp)
            os.replace(temp, final)  # atomic on POSIX: readers see all of the shard or none
        else:
            # An object-store PUT becomes visible only once complete, so no rename is needed.
            pq.write_table(table, final, filesystem=self.fs)
        return final

    def _conform(self, dataset: str, table: pa.Table) -> pa.Table:
        """Every shard of a data set has one schema, so readers need not unify schemas per query."""
        if dataset not in self._schemas:
            shards = self.shards(dataset)
            self._schemas[dataset] = pq.read_schema(shards[0], filesystem=self.fs) if shards else table.schema
        schema = self._schemas[dataset]
        if table.schema.equals(schema, check_metadata=False):
            return table
        if table.column_names != schema.names:
            raise StoreError(
                f"data set {dataset!r} has columns {schema.names}; refusing a batch with {table.column_names}"
            )
        try:
            return table.cast(schema)  # e.g. an all-null column typed `null` in this batch
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise StoreError(f"data set {dataset!r}: batch does not match its column types: {exc}") from None

    def drop_rows(self, dataset: str, ids: list[str]) -> int:
        """Remove rows by id by rewriting only the shards that hold them (each swap is atomic).

        Used to retire error rows before they are retried, so an id is never in two rows.
        Returns the number of rows removed.
        """
        if not ids or not self.has(dataset):
            return 0
        wanted = pa.array(sorted(set(ids)), pa.string())
        removed = 0
        for shard in self.shards(dataset):
            table = pq.read_table(shard, filesystem=self.fs)
            hit = pc.is_in(table.column("id"), value_set=wanted)
            count = pc.sum(hit).as_py() or 0
            if not count:
                continue
            kept = table.filter(pc.invert(hit))
            if self.is_local:
                temp = shard[: -len(SHARD_SUFFIX)] + TEMP_SUFFIX
                pq.write_table(kept, temp)
                os.replace(temp, shard) if kept.num_rows else os.remove(shard)
            elif kept.num_rows:
                pq.write_table(kept, shard, filesystem=self.fs)
            else:
                self.fs.rm(shard)
            removed += count
        return removed

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise writers of one stage output across processes (local stores).

        Object stores have no cross-process lock here: two concurrent runs of one stage on an
        object store may repeat work; see README "What survives a crash".
        """
        if not self.is_local:
            yield
            return
        folder = Path(self.root) / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{name}.lock")):
            yield

    # ---- reading -------------------------------------------------------------------------------

    def dataset_names(self, known: set[str] = frozenset()) -> list[str]:
        """Data sets with at least one complete shard (names in `known` are trusted to have one)."""
        self._forget_listings(self.root)
        if not self.fs.exists(self.root):
            return []
        names = []
        for entry in self.fs.ls(self.root, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] != "directory" or not DATASET_NAME.match(name):
                continue
            if name in known or self.shards(name):
                names.append(name)
        return sorted(names)

    def shards(self, dataset: str) -> list[str]:
        folder = f"{self.root}/{check_dataset_name(dataset)}"
        self._forget_listings(folder)
        if not self.fs.exists(folder):
            return []
        return sorted(path for path in self.fs.ls(folder, detail=False) if path.endswith(SHARD_SUFFIX))

    def _forget_listings(self, path: str) -> None:
        # Object-store filesystems cache listings; another process may have added shards since.
        if not self.is_local:
            self.fs.invalidate_cache(path)

    def has(self, dataset: str) -> bool:
        return bool(self.shards(dataset))

    def columns(self, dataset: str) -> dict[str, str]:
        """Column name -> DuckDB type of a data set (empty when it does not exist)."""
        if not self.has(dataset):
            return {}
        rows = self._query(f"DESCRIBE SELECT * FROM {dataset}").fetchall()
        return {name: type_ for name, type_, *_ in rows}

    def datasets(self) -> list[DatasetInfo]:
        infos = []
        for name in self.dataset_names():
            (rows,) = self._query(f"SELECT count(*) FROM {name}").fetchall()[0]
            infos.append(DatasetInfo(name, rows, len(self.shards(name)), self.columns(name)))
        return infos

    def sql(self, query: str) -> pl.DataFrame:
        """Run read-only SQL over every data set (each is a view named after it)."""
        return pl.from_arrow(self.arrow(query))

    def arrow(self, query: str) -> pa.Table:
        return self._query(query).to_arrow_table()

    def without_done(
        self, dataset: str, table: pa.Table, key: str = "id", against: str = "parent_id", where: str | None = None
    ) -> pa.Table:
        """Rows of `table` whose `key` is not among the stored `against` values: resume by anti-join.

        The join runs in DuckDB over the shards; it returns row positions, so the input order is kept.
        """
        if table.num_rows == 0 or not self.has(dataset):
            return table
        condition = f" WHERE {where}" if where else ""
        positions = pa.array(np.arange(table.num_rows, dtype=np.int64))
        connection = self._connect()
        connection.register("__input_keys", pa.table({"__key": table.column(key), "__position": positions}))
        try:
            kept = self._query(
                f"SELECT __position FROM __input_keys ANTI JOIN "
                f"(SELECT {against} FROM {dataset}{condition}) AS done ON __input_keys.__key = done.{against}"
            ).to_arrow_table().column(0).to_numpy()
        finally:
            connection.unregister("__input_keys")
        return table.take(np.sort(kept))

    # ---- DuckDB plumbing -----------------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            self._connection = duckdb.connect()
            if not self.is_local:
                # DuckDB reads fsspec URLs through the registered filesystem: no extension download.
                self._connection.register_filesystem(self.fs)
        return self._connection

    def _refresh_views(self) -> None:
        """One view per data set. A local view is a glob DuckDB expands at each query, so it is made
        once; an object-store view lists its shards, so it is made anew for every query."""
        connection = self._connect()
        for name in self.dataset_names(known=self._views if self.is_local else set()):
            if name in self._views and self.is_local:
                continue
            connection.execute(
                f"CREATE OR REPLACE TEMP VIEW {name} AS "
                f"SELECT * FROM read_parquet({self._source(name)})"
            )
            self._views.add(name)

    def _source(self, dataset: str) -> str:
        if self.is_local:
            return f"'{self.root}/{dataset}/*{SHARD_SUFFIX}'"
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return "[" + ", ".join(f"'{protocol}://{path}'" for path in self.shards(dataset)) + "]"

    def _query(self, query: str) -> duckdb.DuckDBPyRelation:
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise StoreError(f"invalid SQL: {_first_line(exc)}") from None
        if not statements:
            raise StoreError("empty SQL query")
        for statement in statements:
            if statement.type not in READ_ONLY_STATEMENTS:
                raise StoreError(
                    f"refused: the store is read-only through SQL ({statement.type.name} statement); "
                    "data sets change only through pipeline runs"
                )
        if len(statements) > 1:
            raise StoreError("one SQL statement at a time, please")
        self._refresh_views()
        try:
            return self._connect().sql(query)
        except duckdb.Error as exc:
            raise StoreError(f"SQL error: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n")[:2]).strip()
