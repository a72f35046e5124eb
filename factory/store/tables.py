"""Delta Lake tables through delta-rs (the `deltalake` package): how one data set is opened,
committed to, compacted and vacuumed. No SQL here; the store composes these with the gate."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from factory.errors import StoreError
from factory.store.gate import first_line

# Retries 0: a commit lands at exactly the version after the one its writer read, or fails, so a
# writer can re-check its rows against what another writer committed meanwhile (DESIGN.md §3).
EXACT_VERSION = CommitProperties(max_commit_retries=0)
WRITER = WriterProperties(compression="SNAPPY")  # as pyarrow writes by default: fast to write and read
# File statistics for the first columns only (every record type starts with id, parent_id, run_id,
# created_at): engines that skip files by statistics (Spark, Trino, delta-rs) can look rows up by
# id and lineage, and each commit skips min/max over long text columns (~10% faster appends).
TABLE_CONFIGURATION = {"delta.dataSkippingNumIndexedCols": "4"}
COMPACT_TARGET_BYTES = 64 * 1024 * 1024  # bounds the rewrite a compaction does on a large table

__all__ = ["CommitFailedError", "DeltaError", "DeltaTable", "TableNotFoundError", "storage_options",
           "open_table", "create_table", "append_at_version", "table_schema"]


def storage_options(location: str) -> dict[str, str] | None:
    """delta-rs options for an object store URL, from the same environment boto3 and s3fs read.

    S3 has no atomic rename, so commits use conditional PUTs (If-None-Match), which AWS S3, MinIO
    and moto honour: two writers can never both create one log version.
    """
    scheme = urlparse(location).scheme
    if scheme not in ("s3", "s3a"):
        return None
    options = {"conditional_put": "etag"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return options


def open_table(uri: str, options: dict[str, str] | None, name: str, version: int | None = None) -> DeltaTable | None:
    """The table at `uri` (at `version`, else the latest), or None when there is none yet."""
    try:
        return DeltaTable(uri, version=version, storage_options=options)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError, ValueError) as exc:
        if version is not None and "version" in str(exc).lower():
            raise StoreError(f"data set {name!r} has no version {version}: {first_line(exc)}") from None
        raise StoreError(f"data set {name!r}: its table log cannot be read: {first_line(exc)}") from None


def create_table(uri: str, options: dict[str, str] | None, table: pa.Table) -> None:
    """Create a table with its first rows; raises CommitFailedError-like DeltaError if one appeared."""
    write_deltalake(uri, table, mode="error", storage_options=options, writer_properties=WRITER)


def append_at_version(handle: DeltaTable, table: pa.Table) -> None:
    """Commit `table` as version handle.version() + 1, or raise CommitFailedError."""
    write_deltalake(handle, table, mode="append", writer_properties=WRITER, commit_properties=EXACT_VERSION)


def table_schema(handle: DeltaTable) -> pa.Schema:
    return pa.schema(handle.schema().to_arrow())
