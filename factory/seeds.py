"""Seed files (JSONL or Parquet) -> validated rows. A bad line is reported with its file and line,
and nothing from the file is written (the whole file is validated first)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from factory.errors import FactoryError
from factory.ids import stable_hash
from schemas import SeedPrompt


class SeedFileError(FactoryError):
    pass


def _records(path: Path) -> list[tuple[int, Any]]:
    """(line or row number, parsed record) for each record of the file."""
    if path.suffix == ".parquet":
        try:
            return [(number, row) for number, row in enumerate(pq.read_table(path).to_pylist(), start=1)]
        except (OSError, pa.ArrowException) as exc:
            raise SeedFileError(f"{path}: not a readable Parquet file: {exc}") from None
    if path.suffix not in (".jsonl", ".json", ".ndjson"):
        raise SeedFileError(f"{path}: seed files are .jsonl or .parquet")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise SeedFileError(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    return records


def read_seed_file(path: str | Path) -> pa.Table:
    """Columns: id, prompt, system_prompt, source_line, plus any extra fields of the file."""
    path = Path(path)
    if not path.is_file():
        raise SeedFileError(f"{path}: seed file not found")
    unit = "row" if path.suffix == ".parquet" else "line"
    rows = []
    first_seen: dict[str, int] = {}
    for number, record in _records(path):
        where = f"{path}:{number}" if unit == "line" else f"{path}: row {number}"
        if not isinstance(record, dict):
            raise SeedFileError(f"{where}: expected a JSON object with a 'prompt' field")
        try:
            seed = SeedPrompt.model_validate(record)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise SeedFileError(f"{where}: field '{field}': {error['msg']}") from None
        row = seed.model_dump()
        row["id"] = str(seed.id) if seed.id is not None else stable_hash(seed.prompt, seed.system_prompt or "")
        if row["id"] in first_seen:
            raise SeedFileError(f"{where}: duplicate id {row['id']!r} (first at {unit} {first_seen[row['id']]})")
        first_seen[row["id"]] = number
        row["source_line"] = number
        rows.append(row)
    if not rows:
        raise SeedFileError(f"{path}: no seed rows")
    try:
        return pa.Table.from_pylist(rows)
    except pa.ArrowException as exc:
        raise SeedFileError(f"{path}: extra fields must keep one type across lines: {exc}") from None
