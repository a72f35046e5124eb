"""Stage `feedback_answers`: the round-0 and final answers of one feedback-loop configuration, from
`feedback_turns` into `responses` (so judges, win rates and exports treat them like any response).

The runner writes one data set per stage, hence this second stage. The configuration is named in
`template`: 'feedback:<configuration>:round0' (the generator alone: the single-agent baseline) and
'feedback:<configuration>:final' (after the reviews); `sample_index` is 0 and 1. Both rows have the
prompt's id as `parent_id`, like `generate`'s responses, so pairs can be built per prompt.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import Field

from annotators.grouping import require_input_columns
from factory.errors import FactoryError
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit
from schemas import ResponseRow

WHICH = ("round0", "final")


def answer_template(configuration: str, which: str) -> str:
    return f"feedback:{configuration}:{which}"


class FeedbackAnswersConfig(StageConfig):
    configuration: str = Field(description="Which feedback-loop configuration's turns to take (its `configuration`).")


class FeedbackAnswersStage(Stage):
    Config = FeedbackAnswersConfig
    Record = ResponseRow
    default_output = "responses"

    config: FeedbackAnswersConfig

    @classmethod
    def reads(cls, config: FeedbackAnswersConfig) -> list[str]:
        return ["id", "parent_id", "configuration", "prompt", "round", "role", "text", "final"]

    @classmethod
    def stream_unit(cls, config: FeedbackAnswersConfig) -> StreamUnit:
        return "parent"  # a loop's turns for one prompt are committed together

    @classmethod
    def prepare_input(cls, config: FeedbackAnswersConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        """One work item per prompt (id = the prompt's id) holding its round-0 and final generator turns."""
        require_input_columns(rows, cls.reads(config), "feedback_answers")
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.filter((pl.col("configuration") == config.configuration) & (pl.col("role") == "generator")
                             & pl.col("text").is_not_null())
        if "error" in frame.columns:
            frame = frame.filter(pl.col("error").is_null())
        if frame.is_empty() and rows.num_rows:
            found = sorted(set(rows.column("configuration").to_pylist()))
            raise FactoryError(f"feedback_answers: no turns of configuration {config.configuration!r} "
                               f"(the input has: {', '.join(map(str, found))})")
        columns = ["model", "prompt", "text", "finish_reason", "prompt_tokens", "completion_tokens"]
        columns = [c for c in columns if c in frame.columns]
        first = frame.filter(pl.col("round") == 0).select("parent_id", *[pl.col(c).alias(f"round0_{c}") for c in columns])
        last = frame.filter(pl.col("final")).select("parent_id", *[pl.col(c).alias(f"final_{c}") for c in columns])
        items = first.join(last, on="parent_id", how="inner").rename({"parent_id": "id"})
        return items.sort("id").to_arrow()

    def process(self, rows: list[dict[str, Any]]) -> list[ResponseRow]:
        records = []
        for row in rows:
            for index, which in enumerate(WHICH):
                records.append(ResponseRow(
                    **self.lineage(row["id"], index), model=row.get(f"{which}_model"),
                    template=answer_template(self.config.configuration, which),
                    prompt=row[f"{which}_prompt"], response=row[f"{which}_text"], sample_index=index,
                    finish_reason=row.get(f"{which}_finish_reason"), prompt_tokens=row.get(f"{which}_prompt_tokens") or 0,
                    completion_tokens=row.get(f"{which}_completion_tokens") or 0,
                ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> ResponseRow:
        return ResponseRow(**self.lineage(row["id"], 0), template=answer_template(self.config.configuration, "round0"),
                           prompt=str(row.get("round0_prompt") or ""), sample_index=0, error=message)
