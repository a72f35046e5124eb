"""Stage `helpsteer_aggregate`: every rater of a response (LLM variants, other models, humans) ->
one HelpSteer2 row: the most agreeing raters averaged, high disagreement flagged."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from annotators.grouping import group_rows, require_input_columns
from annotators.helpsteer.aggregate import aggregate
from factory.stage import SideInputs, Stage, StageConfig
from schemas.ratings import ATTRIBUTES, AggregatedRatingRow


class AggregateConfig(StageConfig):
    keep: int = Field(default=3, ge=1, description="Raters kept per response: the ones that agree most.")
    max_spread: float = Field(
        default=2.0, ge=0, description="Flag high_disagreement when the kept raters' helpfulness spans more than this."
    )
    min_raters: int = Field(default=1, ge=1, description="Responses with fewer raters are left out.")


class HelpSteerAggregateStage(Stage):
    Config = AggregateConfig
    Record = AggregatedRatingRow
    default_output = "aggregated_ratings"

    config: AggregateConfig

    @classmethod
    def reads(cls, config: AggregateConfig) -> list[str]:
        return ["id", "response_key", "response_id", "prompt", "response", "rater", *ATTRIBUTES]

    @classmethod
    def prepare_input(cls, config: AggregateConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, cls.reads(config), "helpsteer_aggregate")
        grouped = group_rows(rows, "response_key", ["response_id", "prompt", "response", "rater", *ATTRIBUTES])
        keep = [len(raters) >= config.min_raters for raters in grouped.column("rater").to_pylist()]
        return grouped.filter(pa.array(keep, pa.bool_()))

    def process(self, rows: list[dict[str, Any]]) -> list[AggregatedRatingRow]:
        records = []
        for row in rows:
            ratings = [{a: row[a][i] for a in ATTRIBUTES} for i in range(len(row["rater"]))]
            result = aggregate(ratings, self.config.keep, self.config.max_spread)
            records.append(AggregatedRatingRow(
                **self.lineage(row["id"]), response_key=row["id"],
                response_id=next((r for r in row["response_id"] if r), None),
                prompt=row["prompt"][0], response=row["response"][0], **result.scores,
                raters=row["rater"], kept_raters=[row["rater"][i] for i in result.kept],
                spread=result.spread, high_disagreement=result.high_disagreement,
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> AggregatedRatingRow:
        return AggregatedRatingRow(**self.lineage(row["id"]), response_key=row["id"], prompt=(row.get("prompt") or [""])[0],
                                   response=(row.get("response") or [""])[0], error=message)
