"""Work items for evaluators, built in the driver from `responses`-like rows (Stage.prepare_input).

Every item has list columns `candidate_ids`, `candidates`, `configurations` (one entry for single,
two for pairwise, up to `max_candidates` for ranking) plus `id`, `group_id`, `prompt`. A candidate's
configuration is an SQL expression over its row (default `template`: 'generate/v1',
'feedback:<name>:round0', 'feedback:<name>:final', ...), so any two setups can be compared.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from pydantic import Field, model_validator

from annotators.grouping import require_input_columns
from factory.errors import FactoryError, StoreError
from factory.ids import stable_hash
from factory.stage import StageConfig, StreamUnit, grouped_by
from factory.store import query_tables

JURY_ROLES = ("model", "model_2", "model_3", "model_4")  # the model roles of jurors and debate agents

ITEM_SCHEMA = pa.schema([("id", pa.string()), ("group_id", pa.string()), ("prompt", pa.string()),
                         ("candidate_ids", pa.list_(pa.string())), ("candidates", pa.list_(pa.string())),
                         ("configurations", pa.list_(pa.string()))])


class CandidateConfig(StageConfig):
    """How candidates are picked from the input rows (shared by judge, jury and debate)."""

    prompt_column: str = Field(default="prompt", description="Input column with the user prompt.")
    response_column: str = Field(default="response", description="Input column with the response text.")
    group_by: str = Field(default="parent_id", description="Input column whose equal values answer one prompt.")
    configuration: str = Field(default="template", description="SQL expression over an input row naming its configuration.")
    compare: list[str] | None = Field(
        default=None, min_length=2, max_length=2,
        description="Two configurations to pair per prompt (A = the first); None: pairs within each prompt in input order.",
    )
    max_pairs_per_group: int | None = Field(default=1, ge=1, description="Pairs per prompt when `compare` is None (None: all).")
    max_candidates: int = Field(default=4, ge=2, description="Ranking: candidates per prompt (the first ones).")

    @model_validator(mode="after")
    def _distinct(self) -> "CandidateConfig":
        if self.compare is not None and self.compare[0] == self.compare[1]:
            raise ValueError(f"compare: the two configurations are the same ({self.compare[0]!r})")
        return self


def candidate_columns(config: CandidateConfig) -> list[str]:
    """The input columns an evaluator stage reads."""
    return ["id", config.group_by, config.prompt_column, config.response_column]


def candidate_stream_unit(config: CandidateConfig, strategy: Literal["single", "pairwise", "ranking"]) -> StreamUnit:
    """One item per row when judging singly; else one item per group of `config.group_by`."""
    return "row" if strategy == "single" else grouped_by(config.group_by)


def _frame(config: CandidateConfig, rows: pa.Table, stage: str) -> pl.DataFrame:
    """Good input rows with `_configuration` added, in input order."""
    require_input_columns(rows, candidate_columns(config), stage)
    try:
        table = query_tables(f"SELECT *, CAST(({config.configuration}) AS VARCHAR) AS _configuration FROM input_rows",
                             {"input_rows": rows})
    except StoreError as exc:
        raise FactoryError(f"stage {stage}: config.configuration {config.configuration!r}: {exc}") from None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col(config.response_column).is_not_null() & pl.col(config.group_by).is_not_null())
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    return frame.with_columns(pl.col("_configuration").fill_null("(none)"))


def _item(item_id: str, group: str, prompt: str, members: list[dict], config: CandidateConfig) -> dict:
    return {"id": item_id, "group_id": group, "prompt": prompt,
            "candidate_ids": [m["id"] for m in members], "candidates": [m[config.response_column] for m in members],
            "configurations": [m["_configuration"] for m in members]}


def build_items(config: CandidateConfig, rows: pa.Table, strategy: Literal["single", "pairwise", "ranking"],
                stage: str) -> pa.Table:
    frame = _frame(config, rows, stage)
    items: list[dict] = []
    if strategy == "single":
        for row in frame.iter_rows(named=True):
            items.append(_item(row["id"], str(row[config.group_by]), row[config.prompt_column], [row], config))
        return pa.Table.from_pylist(items, schema=ITEM_SCHEMA)
    groups: dict[str, list[dict]] = {}
    for row in frame.iter_rows(named=True):
        groups.setdefault(str(row[config.group_by]), []).append(row)
    if config.compare is not None and not frame.is_empty():
        present = set(frame["_configuration"].to_list())
        absent = [c for c in config.compare if c not in present]
        if absent:
            raise FactoryError(f"stage {stage}: config.compare: no input rows of configuration(s) {', '.join(absent)} "
                               f"(found: {', '.join(sorted(present))})")
    for group, members in groups.items():
        prompt = members[0][config.prompt_column]
        if strategy == "ranking":
            chosen = members[: config.max_candidates]
            if len(chosen) >= 2:
                items.append(_item(group, group, prompt, chosen, config))
            continue
        if config.compare is not None:
            first = [m for m in members if m["_configuration"] == config.compare[0]][:1]
            second = [m for m in members if m["_configuration"] == config.compare[1]][:1]
            pairs = [(first[0], second[0])] if first and second else []
        else:
            pairs = [(members[i], members[j]) for i, j in itertools.combinations(range(len(members)), 2)]
            pairs = pairs[: config.max_pairs_per_group]
        for a, b in pairs:
            items.append(_item(stable_hash("pair", a["id"], b["id"]), group, prompt, [a, b], config))
    return pa.Table.from_pylist(items, schema=ITEM_SCHEMA)


def model_label(name: str) -> str:
    """A short model name for evaluator labels (the last part of a path or hub id)."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def item_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {"group_id": row.get("group_id"), "prompt": str(row.get("prompt") or ""),
            "candidate_ids": list(row.get("candidate_ids") or []), "candidates": list(row.get("candidates") or []),
            "configurations": list(row.get("configurations") or [])}
