"""Stage `skillmix.dedup`: drop near-duplicate instructions -> data set `instructions_dedup`.

Near-duplicates are found over all input rows at once, so the choice is made in `prepare_input` (in
the driver): rows in example order, each dropped when its MiniLM embedding has cosine >= `threshold`
with an earlier kept row. Kept rows are copied with new lineage (`parent_id` = the original id; token counts stay with the
original, so runs do not count them twice).
Error rows are left out.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from factory.stage import SideInputs, Stage, StageConfig
from generators.skillmix.diversity import embed, near_duplicate_groups
from schemas.common import BaseRow
from schemas.skillmix import InstructionRow

LINEAGE = set(BaseRow.model_fields) - {"model", "template", "sampling", "error"}


class DedupConfig(StageConfig):
    column: str = Field(default="instruction", description="Text column compared.")
    threshold: float = Field(default=0.9, ge=0.0, le=1.0, description="Cosine similarity at or above which a row is a near-duplicate.")
    embedding_model: str = Field(default="minilm-l6", description="sentence-transformers model: bundled name or folder.")


class DedupStage(Stage):
    Config = DedupConfig
    Record = InstructionRow
    default_output = "instructions_dedup"

    config: DedupConfig

    @classmethod
    def reads(cls, config: DedupConfig) -> list[str]:
        return ["id", config.column]

    @classmethod
    def prepare_input(cls, config: DedupConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        if "error" in rows.column_names:
            rows = rows.filter(rows.column("error").is_null())
        rows = rows.filter(rows.column(config.column).is_valid())
        order = [("example_index", "ascending"), ("id", "ascending")] if "example_index" in rows.column_names \
            else [("id", "ascending")]
        rows = rows.sort_by(order)
        leaders = near_duplicate_groups(embed(rows.column(config.column).to_pylist(), config.embedding_model),
                                        config.threshold)
        return rows.take(pa.array([row for row, leader in enumerate(leaders) if row == leader], pa.int64()))

    def process(self, rows: list[dict[str, Any]]) -> list[InstructionRow]:
        # Token counts stay with the original rows: the run summary must not count them twice.
        fields = set(InstructionRow.model_fields) - LINEAGE - {"prompt_tokens", "completion_tokens"}
        return [InstructionRow(**self.lineage(row["id"]), **{k: row[k] for k in fields if k in row}) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> InstructionRow:
        return InstructionRow(**self.lineage(row["id"]), example_index=int(row.get("example_index") or 0), error=message)
