"""Work items made of several input rows: all N responses of a prompt, pairs of responses.

`Stage.prepare_input` runs these in the driver on every selected input row, before resume, so a
work item's `id` must be deterministic: it is the group's key (the prompt's id), and the output
rows carry it as `parent_id`, which is what the resume anti-join compares.
"""

from __future__ import annotations

import itertools

import polars as pl
import pyarrow as pa

from factory.columns import require_columns
from factory.ids import stable_hash


def require_input_columns(rows: pa.Table, columns: list[str], stage: str) -> None:
    require_columns(columns, rows.column_names, f"stage {stage}", "its input has")


def group_rows(rows: pa.Table, key: str, columns: list[str], drop_null: str | None = None) -> pa.Table:
    """One row per distinct `key` (as `id`), with each of `columns` as a list in input order; the
    member rows' own `id`s become the list column `member_ids`.

    Rows whose `drop_null` column is null (failed upstream rows) are left out: there is nothing to score.
    """
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    if drop_null is not None:
        frame = frame.filter(pl.col(drop_null).is_not_null())
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    frame = frame.filter(pl.col(key).is_not_null())
    members = [pl.col("id").alias("member_ids")] + [pl.col(c) for c in columns if c not in ("id", key)]
    grouped = frame.group_by(key, maintain_order=True).agg(members).rename({key: "id"})
    return grouped.to_arrow()


def pair_rows(rows: pa.Table, key: str, max_pairs: int | None) -> pa.Table:
    """Pairs (i < j) of rows sharing `key`, each a work item with a deterministic id.

    Columns: id, prompt, response_1, response_2, response_1_id, response_2_id; at most `max_pairs`
    per key (the first ones in input order), since n responses give n(n-1)/2 pairs.
    """
    grouped = group_rows(rows, key, ["prompt", "response"], drop_null="response")
    items: dict[str, list] = {name: [] for name in
                              ("id", "group", "prompt", "response_1", "response_2", "response_1_id", "response_2_id")}
    for group in grouped.to_pylist():
        ids = group["member_ids"]
        for i, j in list(itertools.combinations(range(len(ids)), 2))[:max_pairs]:
            items["id"].append(stable_hash("pair", ids[i], ids[j]))
            items["group"].append(group["id"])
            items["prompt"].append(group["prompt"][i])
            items["response_1"].append(group["response"][i])
            items["response_2"].append(group["response"][j])
            items["response_1_id"].append(ids[i])
            items["response_2_id"].append(ids[j])
    return pa.table(items, schema=pa.schema([(name, pa.string()) for name in items]))
