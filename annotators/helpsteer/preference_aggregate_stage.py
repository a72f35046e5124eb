"""Stage `helpsteer_preference_aggregate`: every rater of a pair of responses (LLM judges, other
models, humans from `import_preferences` or the rating app) -> one HelpSteer2-Preference row: the
most similar preferences averaged and rounded, high disagreement flagged. The preference twin of
`helpsteer_aggregate`.

Raters' rows are grouped by `pair_key`, a hash of (prompt, response_1, response_2) in that order: a
rater who saw the two responses the other way round is another pair (its "Response 1" is the other
text, and so is every reference in its justification).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import Field

from annotators.grouping import require_input_columns
from annotators.helpsteer.aggregate import aggregate_preferences
from factory.errors import FactoryError
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig
from schemas.ratings import AggregatedPreferenceRow

REQUIRED = ["id", "prompt", "response_1", "response_2", "preference_strength", "rater"]
OPTIONAL = ["response_1_id", "response_2_id", "justification"]


def pair_key(prompt: str, response_1: str, response_2: str) -> str:
    return stable_hash("preference-pair", prompt, response_1, response_2)


class PreferenceAggregateConfig(StageConfig):
    keep: int = Field(default=3, ge=1, description="Raters kept per pair: the ones whose preferences are most similar.")
    max_spread: float = Field(
        default=2.0, ge=0, description="Flag high_disagreement when the kept raters' strengths span more than this."
    )
    min_raters: int = Field(default=1, ge=1, description="Pairs with fewer raters are left out.")


def _check_strengths(frame: pl.DataFrame) -> None:
    """A strength off the -3..3 scale stops the run before anything is written, naming the row."""
    bad = frame.filter(~pl.col("preference_strength").is_between(-3, 3))
    if bad.height:
        row = bad.row(0, named=True)
        raise FactoryError(f"stage helpsteer_preference_aggregate: input row {row['id']!r}: field 'preference_strength': "
                           f"{row['preference_strength']} is outside -3..3 ({bad.height} such row(s))")


def group_pairs(rows: pa.Table) -> pa.Table:
    """One work item per pair (`id` = pair key) with each rater's row id, rater, strength, justification
    and response ids as lists in input order. Error rows and rows without a strength are left out."""
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    frame = frame.filter(pl.col("preference_strength").is_not_null())
    if not frame.schema["preference_strength"].is_integer():
        raise FactoryError("stage helpsteer_preference_aggregate: column 'preference_strength' must be an integer, "
                           f"not {frame.schema['preference_strength']}")
    _check_strengths(frame)
    frame = frame.with_columns(*(pl.lit(None, pl.String).alias(c) for c in OPTIONAL if c not in frame.columns))
    keys = [pair_key(p, a, b) for p, a, b in zip(frame["prompt"], frame["response_1"], frame["response_2"], strict=True)]
    frame = frame.with_columns(pl.Series("pair_key", keys, pl.String),
                               pl.col("preference_strength").cast(pl.Int64), pl.col("rater").cast(pl.String))
    grouped = frame.group_by("pair_key", maintain_order=True).agg(
        pl.col("id").alias("member_ids"), pl.col("prompt").first(), pl.col("response_1").first(),
        pl.col("response_2").first(), pl.col("rater"), pl.col("preference_strength"), pl.col("justification"),
        pl.col("response_1_id").drop_nulls().first(), pl.col("response_2_id").drop_nulls().first(),
    ).rename({"pair_key": "id"})
    return grouped.to_arrow()


def representative(strengths: list[int], justifications: list[str | None], kept: list[int], strength: int) -> str | None:
    """The justification of the first kept rater whose strength is nearest the aggregate (the data
    card's top-level statement is one of its three most similar preferences; which one it does not say)."""
    written = [i for i in kept if justifications[i] and justifications[i].strip()]
    return justifications[min(written, key=lambda i: (abs(strengths[i] - strength), i))] if written else None


class HelpSteerPreferenceAggregateStage(Stage):
    Config = PreferenceAggregateConfig
    Record = AggregatedPreferenceRow
    default_output = "aggregated_preferences"

    config: PreferenceAggregateConfig

    @classmethod
    def reads(cls, config: PreferenceAggregateConfig) -> list[str]:
        return list(REQUIRED)

    @classmethod
    def prepare_input(cls, config: PreferenceAggregateConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, REQUIRED, "helpsteer_preference_aggregate")
        grouped = group_pairs(rows)
        keep = [len(raters) >= config.min_raters for raters in grouped.column("rater").to_pylist()]
        return grouped.filter(pa.array(keep, pa.bool_()))

    def process(self, rows: list[dict[str, Any]]) -> list[AggregatedPreferenceRow]:
        records = []
        for row in rows:
            strengths: list[int] = row["preference_strength"]
            result = aggregate_preferences(strengths, self.config.keep, self.config.max_spread)
            records.append(AggregatedPreferenceRow(
                **self.lineage(row["id"]), pair_key=row["id"],
                prompt=row["prompt"], response_1=row["response_1"], response_2=row["response_2"],
                response_1_id=row["response_1_id"], response_2_id=row["response_2_id"],
                preference_strength=result.strength, preference_mean=result.mean,
                justification=representative(strengths, row["justification"], result.kept, result.strength),
                raters=row["rater"], strengths=strengths, source_ids=row["member_ids"],
                kept_raters=[row["rater"][i] for i in result.kept], kept_ids=[row["member_ids"][i] for i in result.kept],
                spread=result.spread, high_disagreement=result.high_disagreement,
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> AggregatedPreferenceRow:
        return AggregatedPreferenceRow(**self.lineage(row["id"]), pair_key=row["id"], prompt=row.get("prompt") or "",
                                       response_1=row.get("response_1") or "", response_2=row.get("response_2") or "",
                                       source_ids=row.get("member_ids") or [], error=message)
