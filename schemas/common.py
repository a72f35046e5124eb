"""Fields every row carries, and the pydantic -> Arrow mapping the store writes with."""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class BaseRow(BaseModel):
    """Lineage and provenance shared by every output row (DESIGN.md §3)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Deterministic hash of the stage fingerprint, the input row id and the sample index.")
    parent_id: str | None = Field(description="Id of the input row this row was made from (None for seed rows).")
    run_id: str = Field(description="Id of the run that wrote this row.")
    created_at: dt.datetime = Field(description="UTC time the row was made.")
    stage: str = Field(description="Name of the pipeline stage that wrote this row.")
    fingerprint: str = Field(
        description="Hash of the stage type and every config field that affects its output; resume compares it."
    )
    model: str | None = Field(default=None, description="Model name as resolved (bundled name, hub id or path).")
    template: str | None = Field(default=None, description="Prompt template name and hash.")
    sampling: str | None = Field(default=None, description="Sampling parameters as JSON.")
    error: str | None = Field(default=None, description="Why this row failed; None for a good row.")


_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
}


def _arrow_type(annotation: Any) -> pa.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return _arrow_type(inner[0])
    if origin is list:
        (item,) = typing.get_args(annotation)
        return pa.list_(_arrow_type(item))
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no Arrow type for {annotation}")


def arrow_schema(record_type: type[BaseModel]) -> pa.Schema:
    """The Arrow schema of a record type; every column nullable so error rows fit."""
    return pa.schema([pa.field(name, _arrow_type(field.annotation)) for name, field in record_type.model_fields.items()])


def rows_to_arrow(rows: list[BaseModel], record_type: type[BaseModel]) -> pa.Table:
    schema = arrow_schema(record_type)
    return pa.Table.from_pylist([row.model_dump() for row in rows], schema=schema)
