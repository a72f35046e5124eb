"""Seed files (JSONL or Parquet) -> validated rows, a chunk at a time, so a file of any size is read
in bounded memory.

`scan_seed_file` checks the whole file (or its first `limit` rows) before anything is written: a
bad line is reported with its file and line, a repeated id with both lines. `read_seed_chunks`
then reads the checked rows again, chunk by chunk, each with the scanned schema (so an extra field
keeps one type in every chunk), to load them into the store or hand them to a stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from factory.errors import FactoryError
from factory.ids import stable_hash
from schemas import SeedPrompt

# Rows parsed, validated and loaded at a time: a chunk's Python objects (~1-2 kB a row) bound the
# memory a seed file takes, and a 1M-row file is loaded in 50 commits.
SEED_CHUNK_ROWS = 20_000
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


class SeedFileError(FactoryError):
    pass


@dataclass(frozen=True)
class SeedScan:
    """A checked seed file: how many rows a run reads from it, and the columns they have."""

    path: Path
    rows: int
    schema: pa.Schema
    limit: int | None
    chunk_rows: int


def scan_seed_file(path: str | Path, limit: int | None = None, chunk_rows: int | None = None) -> SeedScan:
    """Validate the file (only its first `limit` rows when given: nothing after them is read),
    streaming; raises SeedFileError naming the file and line of the first fault."""
    path = Path(path)
    chunk_rows = chunk_rows or SEED_CHUNK_ROWS  # read here, not at import: tests make chunks small
    schema: pa.Schema | None = None
    ids: list[pa.Array] = []
    numbers: list[pa.Array] = []
    rows = 0
    for chunk in _validated_chunks(path, limit, chunk_rows, schema=None):
        try:
            schema = chunk.schema if schema is None else pa.unify_schemas([schema, chunk.schema],
                                                                         promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _type_change(path, chunk.column("source_line")[0].as_py(), exc) from None
        # Only ids and line numbers are kept across chunks, to find a repeated id at the end.
        ids.append(chunk.column("id").combine_chunks())
        numbers.append(chunk.column("source_line").combine_chunks())
        rows += chunk.num_rows
    if schema is None:
        raise SeedFileError(f"{path}: no seed rows")
    _refuse_repeated_ids(path, ids, numbers)
    return SeedScan(path, rows, schema, limit, chunk_rows)


def read_seed_chunks(scan: SeedScan) -> Iterator[pa.Table]:
    """The scanned rows again, chunk by chunk, every chunk with the scanned schema. Columns: id,
    prompt, system_prompt, any extra fields of the file, source_line."""
    return _validated_chunks(scan.path, scan.limit, scan.chunk_rows, scan.schema)


def read_seed_file(path: str | Path, limit: int | None = None) -> pa.Table:
    """The whole (checked) file as one table: for callers that want every row at once."""
    scan = scan_seed_file(path, limit)
    return pa.concat_tables(read_seed_chunks(scan))


# ---- reading and validating ---------------------------------------------------------------------

def _where(path: Path, number: int) -> str:
    return f"{path}: row {number}" if path.suffix == ".parquet" else f"{path}:{number}"


def _validated_chunks(path: Path, limit: int | None, chunk_rows: int, schema: pa.Schema | None) -> Iterator[pa.Table]:
    records = _records(path)
    if limit is not None:
        records = islice(records, limit)  # stops reading the file after `limit` rows
    for chunk in _chunks(records, chunk_rows):
        rows = [_validated(path, number, record) for number, record in chunk]
        try:
            table = pa.Table.from_pylist(rows, schema=schema) if schema is not None else _table(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _type_change(path, chunk[0][0], exc, checked=schema is not None) from None
        yield table


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> a table with every field any row has (pyarrow's from_pylist would take the first row's
    fields only and silently drop a field that first appears on a later line)."""
    names = [name for name in dict.fromkeys(name for row in rows for name in row) if name != "source_line"]
    return pa.table({name: [row.get(name) for row in rows] for name in [*names, "source_line"]})


def _type_change(path: Path, chunk_start: int, exc: Exception, checked: bool = False) -> SeedFileError:
    changed = " (the file changed since it was checked)" if checked else ""
    return SeedFileError(f"{_where(path, chunk_start)}: extra fields must keep one type across lines "
                         f"(this chunk starts here){changed}: {exc}")


def _chunks(records: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, parsed record) for each record of the file, read as they are asked for."""
    if not path.is_file():
        raise SeedFileError(f"{path}: seed file not found")
    if path.suffix == ".parquet":
        return _parquet_records(path)
    if path.suffix not in JSONL_SUFFIXES:
        raise SeedFileError(f"{path}: seed files are .jsonl or .parquet")
    return _jsonl_records(path)


def _parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=SEED_CHUNK_ROWS)  # a row group at a time
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except (OSError, pa.ArrowException) as exc:
        raise SeedFileError(f"{path}: not a readable Parquet file: {exc}") from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    # The standard library's parser, line by line: its errors name the line and column, where
    # Arrow's block reader reports neither (and would drop the blank lines that line numbers count).
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise SeedFileError(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from None


def _validated(path: Path, number: int, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise SeedFileError(f"{_where(path, number)}: expected a JSON object with a 'prompt' field")
    try:
        seed = SeedPrompt.model_validate(record)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise SeedFileError(f"{_where(path, number)}: field '{field}': {error['msg']}") from None
    row = seed.model_dump()
    row["id"] = str(seed.id) if seed.id is not None else stable_hash(seed.prompt, seed.system_prompt or "")
    row["source_line"] = number
    return row


def _refuse_repeated_ids(path: Path, ids: list[pa.Array], numbers: list[pa.Array]) -> None:
    """The earliest line whose id an earlier line already has, as SeedFileError. Arrow's hash
    kernels: a 1M-row file costs ~50 MB here (a polars window over it took ~200 MB)."""
    keys = pa.chunked_array(ids, pa.string())
    if pc.count_distinct(keys).as_py() == len(keys):
        return
    counts = pc.value_counts(keys)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    mask = pc.is_in(keys, value_set=repeated)
    lines = pa.chunked_array(numbers, pa.int64()).filter(mask)
    first_seen: dict[str, int] = {}
    for seed_id, number in zip(keys.filter(mask).to_pylist(), lines.to_pylist()):  # in file order
        if seed_id in first_seen:
            unit = "row" if path.suffix == ".parquet" else "line"
            raise SeedFileError(f"{_where(path, number)}: duplicate id {seed_id!r} (first at {unit} {first_seen[seed_id]})")
        first_seen[seed_id] = number
