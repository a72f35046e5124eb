"""The store: one Delta Lake table per data set, queried with DuckDB through a read-only gate
(DESIGN.md §3).

- Every change is one atomic Delta commit: an append (one per finished batch), a replace (delete
  + add in one commit), a delete, a compaction. Readers see one table version per query and never
  lose a file mid-query: files leave only through `vacuum` after a retention period.
- Writers never store an id twice. An append commits at exactly the version after the one this
  writer last checked its rows against (`without_done`, or its own previous commit); if another
  writer committed in between, the commit fails, the batch loses the ids stored meanwhile, and it
  is tried again on the new version. This holds on object stores too (conditional PUTs).
- Queries go through `factory.store.gate`: read-only, on a fresh locked-down connection.
- The location is a local folder or an object-store URL (`s3://bucket/prefix`): delta-rs writes it,
  fsspec lists it and lets DuckDB read it without an extension download.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import convert_to_deltalake, write_deltalake
from filelock import FileLock
from fsspec.implementations.local import LocalFileSystem

from factory.errors import StoreError
from factory.store.gate import View, check_read_only, first_line, open_gated, query_tables, referenced_names
from factory.store.names import (ARTIFACTS_FOLDER, DATASET_NAME, DatasetName, check_dataset_name, dataset_name_problem, quote_identifier,
                                 quote_literal)
from factory.store.tables import (COMPACT_TARGET_BYTES, EXACT_VERSION, TABLE_CONFIGURATION, WRITER, CommitFailedError, DeltaError, DeltaTable,
                                  append_at_version, create_table, open_table, storage_options, table_schema)

__all__ = ["Store", "DatasetInfo", "DatasetName", "VersionPin", "check_dataset_name", "dataset_name_problem", "quote_identifier",
           "query_tables"]

LOG_FOLDER = "_delta_log"
LEGACY_TEMP_SUFFIX = ".parquet.tmp"
AUTO_COMPACT_EVERY = 32      # commits by one Store to a data set between checks of its file count
AUTO_COMPACT_FILES = 128     # more files than this: compact (one commit, safe while others read and write)
MAX_COMMIT_ATTEMPTS = 50     # conflicting commits by other writers before an append gives up
DEFAULT_RETENTION_HOURS = 168  # Delta's own default: a week before vacuum may remove an unreferenced file
VersionPin = Mapping[str, int] | int | None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    rows: int
    files: int
    version: int
    columns: dict[str, str]


class Store:
    """A folder of data sets. Cheap to construct; opens nothing until used. Thread-safe."""

    def __init__(self, location: str | os.PathLike[str]):
        self.location = str(location)
        self.fs, root = fsspec.core.url_to_fs(self.location)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.is_local else root.rstrip("/")
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self._url_root = self.root if self.is_local else f"{protocol}://{self.root}"
        self._options = None if self.is_local else storage_options(self.location)
        self._writers: dict[str, DeltaTable] = {}  # per data set: this writer's handle
        self._checked: dict[str, int] = {}  # per data set: the version this writer's pending rows were checked at
        self._readers: dict[str, DeltaTable] = {}
        self._commits: dict[str, int] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    @property
    def url(self) -> str:
        """The store's absolute location: a resolved local folder, or the object-store URL."""
        return self._url_root

    def uri(self, dataset: str) -> str:
        return f"{self._url_root}/{check_dataset_name(dataset)}"

    def artifacts_uri(self, kind: str) -> str:
        """Where files of `kind` that are no data set live in the store (`_artifacts/KIND`)."""
        return f"{self._url_root}/{ARTIFACTS_FOLDER}/{kind}"

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

    def append(self, dataset: str, table: pa.Table, key: str = "id") -> int | None:
        """Commit `table` as one new version; returns it (None when nothing was left to write).

        Rows whose `key` another writer stored since this writer's rows were checked (by
        `without_done`) are dropped first, so concurrent runs of one stage never store an id twice.
        A table without the `key` column is appended as it is (nothing to tell its rows apart by).
        """
        check_dataset_name(dataset)
        if table.num_rows == 0:
            return None
        with self._lock:
            for _ in range(MAX_COMMIT_ATTEMPTS):
                handle = self._writers.get(dataset) or self._writer(dataset)
                if handle is None:
                    self._create(dataset, table)
                    continue
                first_look = dataset not in self._checked
                checked = self._checked.get(dataset) == handle.version() or key not in table.column_names
                if not checked:  # first look, or someone else committed since: drop what is stored
                    table = self._not_stored(dataset, handle, table, key)
                    if table.num_rows == 0:
                        return None
                    checked = first_look  # a writer that never checked has no other rows pending
                try:
                    append_at_version(handle, self._conform(dataset, handle, table))
                except CommitFailedError:
                    handle.update_incremental()  # another writer won this version: check against it
                    continue
                if checked:  # our own rows only since the check: the check still holds
                    self._checked[dataset] = handle.version()
                self._after_commit(dataset, handle)
                return handle.version()
        raise StoreError(f"data set {dataset!r}: gave up after {MAX_COMMIT_ATTEMPTS} commits by other writers "
                         "won the race; try again")

    def replace(self, dataset: str, table: pa.Table, match: Mapping[str, Sequence[str]] | None = None) -> int:
        """Delete the rows matching `match` (default: the ids in `table`) and add `table`, in one
        commit: a reader or a crash sees the old rows or the new ones, never neither."""
        check_dataset_name(dataset)
        if table.num_rows == 0:
            raise StoreError(f"data set {dataset!r}: replace needs at least one row")
        match = match or {"id": table.column("id").to_pylist()}
        predicate = " AND ".join(
            f"{quote_identifier(column)} IN ({', '.join(quote_literal(str(v)) for v in sorted(set(values)))})"
            for column, values in match.items()
        )
        with self._lock:
            handle = self._writer(dataset)
            if handle is None:
                return self.append(dataset, table) or 0
            try:
                write_deltalake(handle, self._conform(dataset, handle, table), mode="overwrite",
                                predicate=predicate, writer_properties=WRITER)
            except (DeltaError, OSError) as exc:
                raise StoreError(f"data set {dataset!r}: replace failed, nothing changed: {first_line(exc)}") from None
            self._after_commit(dataset, handle)
            return handle.version()

    def delete(self, dataset: str, ids: Sequence[str]) -> int:
        """Remove rows by id in one commit; returns how many were removed."""
        ids = sorted(set(ids))
        with self._lock:
            handle = self._writer(dataset) if ids else None
            if handle is None:
                return 0
            metrics = handle.delete(f"{quote_identifier('id')} IN ({', '.join(quote_literal(i) for i in ids)})")
            return int(metrics.get("num_deleted_rows", 0))

    def compact(self, dataset: str) -> dict[str, Any]:
        """Bin-pack small files into large ones in one commit, and checkpoint the log, so listing
        the table stays fast. Readers in flight keep their files (they go only with `vacuum`)."""
        with self._lock:
            handle = open_table(self.uri(dataset), self._options, dataset)
            if handle is None:
                return {}
            before = handle.version()
            try:
                metrics = handle.optimize.compact(target_size=COMPACT_TARGET_BYTES, writer_properties=WRITER)
            except (DeltaError, OSError) as exc:
                raise StoreError(f"data set {dataset!r}: compaction skipped (a concurrent change): "
                                 f"{first_line(exc)}") from None
            if handle.version() != before:
                handle.create_checkpoint()
            writer = self._writers.get(dataset)
            if writer is not None and writer.version() + 1 == handle.version() == before + 1:
                # Only our compaction happened since, and it adds no rows: checked rows stay checked.
                was_checked = self._checked.get(dataset) == writer.version()
                writer.update_incremental()
                if was_checked:
                    self._checked[dataset] = writer.version()
            return metrics

    def vacuum(self, dataset: str, retention_hours: int = DEFAULT_RETENTION_HOURS) -> list[str]:
        """Delete files no version newer than `retention_hours` ago needs; returns them."""
        handle = open_table(self.uri(dataset), self._options, dataset)
        if handle is None:
            return []
        removed = handle.vacuum(retention_hours=retention_hours, dry_run=False,
                                enforce_retention_duration=False)
        handle.cleanup_metadata()
        return removed

    def migrate(self) -> list[str]:
        """Turn data sets written by the Parquet-shard store (before Delta Lake) into tables, in
        place: the shards stay and a log naming them is written. Idempotent; returns their names."""
        migrated = []
        for name in self.legacy_datasets():
            folder = f"{self.root}/{name}"
            for path in self.fs.ls(folder, detail=False):
                if path.endswith(LEGACY_TEMP_SUFFIX):  # a shard its writer never finished
                    self.fs.rm(path)
            try:
                convert_to_deltalake(self.uri(name), storage_options=self._options)
            except (DeltaError, OSError) as exc:
                raise StoreError(f"data set {name!r}: migration failed, nothing changed: {first_line(exc)}") from None
            migrated.append(name)
        return migrated

    def _create(self, dataset: str, table: pa.Table) -> None:
        """An empty table with the batch's columns. Two writers racing here make the same empty
        table; their rows then go through the ordinary checked append."""
        try:
            DeltaTable.create(self.uri(dataset), _storable(table).schema, mode="ignore",
                              storage_options=self._options, configuration=TABLE_CONFIGURATION)
        except (DeltaError, OSError) as exc:
            if open_table(self.uri(dataset), self._options, dataset) is None:
                raise StoreError(f"data set {dataset!r} cannot be created in {self.location}: "
                                 f"{first_line(exc)}") from None

    def _writer(self, dataset: str) -> DeltaTable | None:
        """This writer's handle, moved to the latest version (the caller re-checks its rows there)."""
        handle = self._writers.get(dataset)
        if handle is None:
            self._refuse_legacy(dataset)
            handle = open_table(self.uri(dataset), self._options, dataset)
            if handle is None:
                return None
            self._writers[dataset] = handle
        else:
            handle.update_incremental()
        return handle

    def _conform(self, dataset: str, handle: DeltaTable, table: pa.Table) -> pa.Table:
        """Every file of a data set has the table's schema, so readers need not unify schemas per query."""
        schema = table_schema(handle)
        if set(schema.names) < set(table.column_names):
            schema = self._add_columns(handle, table.schema)
        if table.column_names != schema.names:
            raise StoreError(
                f"data set {dataset!r} has columns {schema.names}; refusing a batch with {table.column_names}"
            )
        try:
            return table.cast(schema)  # e.g. an all-null column typed `null` in this batch
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise StoreError(f"data set {dataset!r}: batch does not match its column types: {exc}") from None

    def _add_columns(self, handle: DeltaTable, schema: pa.Schema) -> pa.Schema:
        """A record type gained columns (a newer factory writing an older store): rewrite the table
        with them, null in the old rows, in one commit at the version this writer checked."""
        current = handle.to_pyarrow_table()
        for field in schema:
            if field.name not in current.column_names:
                current = current.append_column(field, pa.nulls(current.num_rows, field.type))
        write_deltalake(handle, current.select(schema.names).cast(schema), mode="overwrite", schema_mode="overwrite",
                        writer_properties=WRITER, commit_properties=EXACT_VERSION)
        return table_schema(handle)

    def _not_stored(self, dataset: str, handle: DeltaTable, table: pa.Table, key: str) -> pa.Table:
        return self._anti_join(self._view(dataset, handle), table, key, key)

    def _after_commit(self, dataset: str, handle: DeltaTable) -> None:
        count = self._commits[dataset] = self._commits.get(dataset, 0) + 1
        if count % AUTO_COMPACT_EVERY == 0 and len(handle.file_uris()) > AUTO_COMPACT_FILES:
            with contextlib.suppress(StoreError):  # a busy table is compacted next time
                self.compact(dataset)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise runs of one stage on a local store, so a second run waits instead of repeating
        the work. (Correctness does not depend on it: appends never store an id twice.)"""
        if not self.is_local:
            yield
            return
        folder = Path(self.root) / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{name}.lock")):
            yield

    # ---- reading -------------------------------------------------------------------------------

    def dataset_names(self) -> list[str]:
        """Data sets (Delta tables) in the store, sorted."""
        return sorted(name for name, is_table in self._folders() if is_table)

    def legacy_datasets(self) -> list[str]:
        """Folders of Parquet shards written before the store used Delta Lake (`factory migrate`)."""
        return sorted(name for name, is_table in self._folders()
                      if not is_table and any(p.endswith(".parquet") for p in self.fs.ls(f"{self.root}/{name}", detail=False)))

    def _folders(self) -> list[tuple[str, bool]]:
        if not self.is_local:
            self.fs.invalidate_cache(self.root)  # another process may have added data sets since
        if not self.fs.exists(self.root):
            return []
        folders = []
        for entry in self.fs.ls(self.root, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and DATASET_NAME.match(name) and name != ARTIFACTS_FOLDER:
                folders.append((name, self.fs.exists(f"{self.root}/{name}/{LOG_FOLDER}")))
        return folders

    def _refuse_legacy(self, dataset: str) -> None:
        folder = f"{self.root}/{dataset}"
        if self.fs.exists(folder) and not self.fs.exists(f"{folder}/{LOG_FOLDER}") and any(
                path.endswith(".parquet") for path in self.fs.ls(folder, detail=False)):
            raise StoreError(f"data set {dataset!r} was written by an older version of the factory; "
                             f"run `factory migrate --store {self.location}` once")

    def has(self, dataset: str) -> bool:
        return self._reader(dataset) is not None

    def version(self, dataset: str) -> int | None:
        handle = self._reader(dataset)
        return None if handle is None else handle.version()

    def versions(self) -> dict[str, int]:
        """The current version of every data set: a snapshot to read again later with `as_of`."""
        return {name: version for name in self.dataset_names() if (version := self.version(name)) is not None}

    def files(self, dataset: str) -> list[str]:
        """The data files of the current version (empty when the data set does not exist)."""
        handle = self._reader(dataset)
        return [] if handle is None else handle.file_uris()

    def columns(self, dataset: str) -> dict[str, str]:
        """Column name -> DuckDB type of a data set (empty when it does not exist)."""
        handle = self._reader(dataset)
        if handle is None:
            return {}
        relation = duckdb.connect().from_arrow(table_schema(handle).empty_table())
        return {name: str(type_) for name, type_ in zip(relation.columns, relation.types)}

    def datasets(self) -> list[DatasetInfo]:
        infos = []
        for name in self.dataset_names():
            handle = self._reader(name)
            if handle is not None:
                infos.append(DatasetInfo(name, handle.count(), len(handle.file_uris()), handle.version(),
                                         self.columns(name)))
        return infos

    def sql(self, query: str, params: Sequence[Any] | None = None, as_of: VersionPin = None) -> pl.DataFrame:
        """Read-only SQL over every data set (each is a table named after it); `params` fill `?`s;
        `as_of` reads data sets at earlier versions (one version for all, or per data set)."""
        return pl.from_arrow(self.arrow(query, params, as_of))

    def arrow(self, query: str, params: Sequence[Any] | None = None, as_of: VersionPin = None) -> pa.Table:
        check_read_only(query)
        names = referenced_names(query)
        views, broken = [], {}
        for name in sorted(self.dataset_names() if names is None else names):
            try:
                view = self._view_or_none(name, _pinned(as_of, name))
            except StoreError as exc:
                if names is not None:  # the query names it: its damage is the answer
                    raise
                broken[name] = str(exc)  # opened only because the names were unknown: fail only if used
                continue
            if view is not None:
                views.append(view)
        return self._execute(views, query, params, broken=broken)

    def arrow_new_files(self, dataset: str, query: str, seen_files: Sequence[str],
                        params: Sequence[Any] | None = None) -> tuple[pa.Table, list[str]]:
        """`query` (over `dataset` alone) on the rows of its data files not in `seen_files`, and the
        files of the version read: a reader polling a growing data set reads each commit once. A
        compaction rewrites files, so their rows come again; callers de-duplicate by id."""
        check_read_only(query)
        handle = self._reader(dataset)
        if handle is None:
            raise StoreError(f"data set {dataset!r} does not exist")
        files = handle.file_uris()
        seen = set(seen_files)
        view = View(dataset, [f for f in files if f not in seen], table_schema(handle), self.uri(dataset))
        return self._execute([view], query, params), files

    def without_done(self, dataset: str, table: pa.Table, key: str = "id", against: str = "parent_id",
                     where: str | None = None, params: Sequence[Any] | None = None) -> pa.Table:
        """Rows of `table` whose `key` is not among the stored `against` values: resume by anti-join.

        `where` (SQL with `?` placeholders filled from `params`) narrows the stored rows. Checked
        against the latest version, which this writer's next append then commits after. The input
        order is kept.
        """
        if table.num_rows == 0:
            return table
        with self._lock:
            handle = self._writer(dataset)
            if handle is None:
                return table
            self._checked[dataset] = handle.version()
            return self._anti_join(self._view(dataset, handle), table, key, against, where, params)

    def _anti_join(self, view: View, table: pa.Table, key: str, against: str, where: str | None = None,
                   params: Sequence[Any] | None = None) -> pa.Table:
        positions = pa.array(np.arange(table.num_rows, dtype=np.int64))
        keys = pa.table({"__key": table.column(key), "__position": positions})
        condition = f" WHERE {where}" if where else ""
        query = (f"SELECT __position FROM __input_keys ANTI JOIN (SELECT {quote_identifier(against)} AS __done "
                 f"FROM {quote_identifier(view.name)}{condition}) AS done ON __input_keys.__key = done.__done")
        kept = self._execute([view], query, params, {"__input_keys": keys}).column(0).to_numpy()
        return table.take(np.sort(kept))

    # ---- plumbing ------------------------------------------------------------------------------

    def _reader(self, dataset: str, version: int | None = None) -> DeltaTable | None:
        if dataset_name_problem(dataset):
            return None
        if version is not None:
            self._refuse_legacy(dataset)
            handle = open_table(self.uri(dataset), self._options, dataset, version)
            if handle is None:
                raise StoreError(f"data set {dataset!r} does not exist")
            return handle
        with self._lock:
            handle = self._readers.get(dataset)
            if handle is not None:
                handle.update_incremental()
                return handle
            self._refuse_legacy(dataset)
            handle = open_table(self.uri(dataset), self._options, dataset)
            if handle is not None:
                self._readers[dataset] = handle
            return handle

    def _view_or_none(self, dataset: str, version: int | None) -> View | None:
        handle = self._reader(dataset, version)
        return None if handle is None else self._view(dataset, handle)

    def _view(self, dataset: str, handle: DeltaTable) -> View:
        return View(dataset, handle.file_uris(), table_schema(handle), self.uri(dataset))

    def _execute(self, views: list[View], query: str, params: Sequence[Any] | None,
                 tables: Mapping[str, pa.Table] | None = None, broken: Mapping[str, str] | None = None) -> pa.Table:
        connection, unreadable = open_gated(views, None if self.is_local else self.fs, tables)
        unreadable = {name: f"data set {name!r} cannot be read: {reason}" for name, reason in unreadable.items()}
        unreadable.update(broken or {})
        try:
            return connection.sql(query, params=params).to_arrow_table()
        except duckdb.Error as exc:
            message = first_line(exc)
            for name, reason in unreadable.items():  # a view we could not define: say why
                if f'"{name}"' in message.lower() or f"name {name} " in message.lower():
                    raise StoreError(reason) from None
            for view in views:  # a damaged file: name the data set, so the user knows what to repair
                if view.folder in message:
                    raise StoreError(f"data set {view.name!r} cannot be read: {message}") from None
            raise StoreError(f"SQL error: {message}") from None
        finally:
            connection.close()


def _pinned(as_of: VersionPin, dataset: str) -> int | None:
    if as_of is None or isinstance(as_of, int):
        return as_of
    return as_of.get(dataset)


def _storable(table: pa.Table) -> pa.Table:
    """Delta has no `null` type: a first batch whose column is all null stores it as a string."""
    if not any(pa.types.is_null(field.type) for field in table.schema):
        return table
    schema = pa.schema([field.with_type(pa.string()) if pa.types.is_null(field.type) else field
                        for field in table.schema])
    return table.cast(schema)
