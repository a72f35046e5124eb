"""Stages `import_ratings` and `import_preferences`: human labels from a seed file (JSONL/Parquet)
into the same tables as LLM labels (`ratings`, `helpsteer_preferences`), with the rater's id, so
agreement between humans and LLM raters is a join on `response_key` (or on the response pair).

Every line needs a unique `id` (several raters label the same prompt, and the seed loader would
otherwise derive equal ids from equal prompts). Values are checked before any row is written: a bad
one fails the run with its line number and field.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from annotators.helpsteer.stage import response_key
from factory.errors import FactoryError
from factory.stage import SideInputs, Stage, StageConfig
from schemas.ratings import ATTRIBUTES, HelpSteerPreferenceRow, RatingRow


def _where(row: dict[str, Any]) -> str:
    return f"human labels, seed line {row.get('source_line', '?')}"


def _text(row: dict[str, Any], field: str) -> None:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise FactoryError(f"{_where(row)}: field '{field}': a non-empty string is required")


def _score(row: dict[str, Any], field: str, low: int, high: int, integer: bool) -> None:
    value = row.get(field)
    if value is None:
        return
    # NaN and infinity are floats too (JSON lines may hold them); neither is a score.
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (integer and value != int(value))):
        raise FactoryError(f"{_where(row)}: field '{field}': expected {'an integer' if integer else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise FactoryError(f"{_where(row)}: field '{field}': {value} is outside {low}..{high}")


class ImportRatingsStage(Stage):
    """Lines: id, prompt, response, rater, any of the five attributes (0-4), optional justification, response_id."""

    Config = StageConfig
    Record = RatingRow
    default_output = "ratings"

    @classmethod
    def reads(cls, config: StageConfig) -> list[str]:
        return ["id", "prompt", "response", "rater"]

    @classmethod
    def prepare_input(cls, config: StageConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        for row in rows.to_pylist():
            for field in ("prompt", "response", "rater"):
                _text(row, field)
            if all(row.get(a) is None for a in ATTRIBUTES):
                raise FactoryError(f"{_where(row)}: no rating: give at least one of {', '.join(ATTRIBUTES)}")
            for attribute in ATTRIBUTES:
                _score(row, attribute, 0, 4, integer=False)
        return rows

    def process(self, rows: list[dict[str, Any]]) -> list[RatingRow]:
        return [RatingRow(
            **self.lineage(row["id"]), template="human", response_id=row.get("response_id"),
            response_key=response_key(row["prompt"], row["response"]), prompt=row["prompt"], response=row["response"],
            rater=str(row["rater"]), source="human", justification=row.get("justification"),
            **{a: None if row.get(a) is None else float(row[a]) for a in ATTRIBUTES},
        ) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> RatingRow:
        prompt, response = str(row.get("prompt") or ""), str(row.get("response") or "")
        return RatingRow(**self.lineage(row["id"]), response_key=response_key(prompt, response), prompt=prompt,
                         response=response, rater=str(row.get("rater")), source="human", error=message)


def _optional_text(row: dict[str, Any], field: str) -> None:
    if row.get(field) is not None and not isinstance(row[field], str):
        raise FactoryError(f"{_where(row)}: field '{field}': expected a string, got {row[field]!r}")


def justification_of(row: dict[str, Any]) -> str | None:
    """`justification`, else the data card's `preference_statement` + `preference_elaboration` joined
    (the export splits them back at the first sentence)."""
    if row.get("justification"):
        return row["justification"]
    parts = [row.get(f, "").strip() for f in ("preference_statement", "preference_elaboration") if row.get(f)]
    return " ".join(p for p in parts if p) or None


class ImportPreferencesStage(Stage):
    """Lines: id, prompt, response_1, response_2, preference_strength (-3..3), rater, optional
    justification (or the data card's preference_statement / preference_elaboration)."""

    Config = StageConfig
    Record = HelpSteerPreferenceRow
    default_output = "helpsteer_preferences"

    @classmethod
    def reads(cls, config: StageConfig) -> list[str]:
        return ["id", "prompt", "response_1", "response_2", "preference_strength", "rater"]

    @classmethod
    def prepare_input(cls, config: StageConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        for row in rows.to_pylist():
            for field in ("prompt", "response_1", "response_2", "rater"):
                _text(row, field)
            if row.get("preference_strength") is None:
                raise FactoryError(f"{_where(row)}: field 'preference_strength': required (-3..3)")
            _score(row, "preference_strength", -3, 3, integer=True)
            for field in ("justification", "preference_statement", "preference_elaboration"):
                _optional_text(row, field)
        return rows

    def process(self, rows: list[dict[str, Any]]) -> list[HelpSteerPreferenceRow]:
        return [HelpSteerPreferenceRow(
            **self.lineage(row["id"]), template="human", prompt=row["prompt"], response_1=row["response_1"],
            response_2=row["response_2"], response_1_id=row.get("response_1_id"), response_2_id=row.get("response_2_id"),
            rater=str(row["rater"]), source="human", preference_strength=int(row["preference_strength"]),
            justification=justification_of(row),
        ) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> HelpSteerPreferenceRow:
        return HelpSteerPreferenceRow(**self.lineage(row["id"]), prompt=str(row.get("prompt") or ""),
                                      response_1=str(row.get("response_1") or ""), response_2=str(row.get("response_2") or ""),
                                      rater=str(row.get("rater")), source="human", error=message)
