"""HelpSteer2's stages, in the order a pipeline uses them:

- `helpsteer`: five HelpSteer2 attributes, 0-4, for each response, by one or more LLM raters. Each
  rater variant (a system prompt and/or rubric wording) of the stage's model is one rater and writes
  one `ratings` row per response. Mode 'expectation' scores an attribute as the expectation over the
  normalised probabilities of '0'..'4' (never fails to parse); mode 'generate' asks for a written
  justification ending in 'Score: N' and parses it (unparsable -> error row with the text).
- `import_ratings` / `import_preferences`: human labels from a seed file (JSONL/Parquet) into the same
  tables as LLM labels (`ratings`, `helpsteer_preferences`), with the rater's id, so agreement between
  humans and LLM raters is a join on `response_key` (or on the response pair). Every line needs a
  unique `id` (several raters label the same prompt, and the seed loader would otherwise derive equal
  ids from equal prompts). Values are checked before any row is written (human.py): a bad one fails
  the run with its line number and field.
- `helpsteer_aggregate`: every rater of a response (LLM variants, other models, humans) -> one
  HelpSteer2 row: the most agreeing raters averaged, high disagreement flagged.
- `helpsteer_preference`: HelpSteer2-Preference strength (-3..+3) between two responses to a prompt,
  judged in both orders (position bias) with an optional written justification (the scale and the
  maths: preference.py).
- `helpsteer_preference_aggregate`: every rater of a pair of responses (LLM judges, other models,
  humans from `import_preferences` or the rating app) -> one HelpSteer2-Preference row: the most
  similar preferences averaged and rounded, high disagreement flagged. Raters' rows are grouped by
  `pair_key`, a hash of (prompt, response_1, response_2) in that order: a rater who saw the two
  responses the other way round is another pair (its "Response 1" is the other text, and so is every
  reference in its justification).

Logic: rubrics.py (rating prompts), parse.py (scores, justifications), preference.py (strength scale),
aggregate.py (keys, grouping, aggregation), human.py (checks of human labels).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from annotators.grouping import group_rows, pair_rows, require_input_columns
from annotators.helpsteer.aggregate import (PAIR_COLUMNS, aggregate, aggregate_preferences, group_pairs, representative,
                                            response_key)
from annotators.helpsteer.human import check_optional_text, check_score, check_text, justification_of, where
from annotators.helpsteer.parse import RatingParseError, parse_score
from annotators.helpsteer.preference import STRENGTHS, combine, expected_strength, preference_prompt
from annotators.helpsteer.rubrics import expectation, rating_prompt
from factory.engines import Conversation, SamplingParams
from factory.errors import FactoryError
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit, grouped_by
from schemas.ratings import (ATTRIBUTES, AggregatedPreferenceRow, AggregatedRatingRow, HelpSteerPreferenceRow,
                             RatingRow)

Attribute = Literal["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
SCORES = ["0", "1", "2", "3", "4"]


class RaterVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Rater name; the row's `rater` is '<model>/<name>'.")
    system_prompt: str | None = Field(default=None, description="System message of this rater (a persona, strictness).")
    rubrics: dict[Attribute, str] = Field(default_factory=dict, description="Rubric text overriding the default per attribute.")


class HelpSteerConfig(StageConfig):
    prompt_column: str = Field(default="prompt", description="Input column with the user prompt.")
    response_column: str = Field(default="response", description="Input column with the response to rate.")
    attributes: list[Attribute] = Field(default=list(ATTRIBUTES), min_length=1, description="Attributes to rate (others stay null).")
    raters: list[RaterVariant] = Field(
        default_factory=lambda: [RaterVariant(name="default")], min_length=1,
        description="Prompt variants, each an independent rater (aggregate them with stage helpsteer_aggregate).",
    )
    mode: Literal["expectation", "generate"] = Field(
        default="expectation", description="'expectation' over P('0'..'4'), or 'generate' a justification + 'Score: N'."
    )
    max_new_tokens: int = Field(default=96, ge=1, description="Generate mode: tokens per attribute justification.")


class HelpSteerStage(Stage):
    Config = HelpSteerConfig
    Record = RatingRow
    default_output = "ratings"
    model_roles = ("model",)

    config: HelpSteerConfig

    @classmethod
    def reads(cls, config: HelpSteerConfig) -> list[str]:
        return ["id", config.prompt_column, config.response_column]

    def _conversation(self, rater: RaterVariant, attribute: str, prompt: str, response: str) -> Conversation:
        head = [{"role": "system", "content": rater.system_prompt}] if rater.system_prompt else []
        text = rating_prompt(attribute, prompt, response, rater.rubrics.get(attribute), self.config.mode == "generate")
        return head + [{"role": "user", "content": text}]

    def process(self, rows: list[dict[str, Any]]) -> list[RatingRow]:
        engine = self.engines["model"]
        for row in rows:
            for column in (self.config.prompt_column, self.config.response_column):
                if not isinstance(row[column], str):
                    raise ValueError(f"column {column!r} is empty")
        jobs = [(r, v, a) for r in range(len(rows)) for v in range(len(self.config.raters)) for a in self.config.attributes]
        conversations = [self._conversation(self.config.raters[v], a, rows[r][self.config.prompt_column],
                                            rows[r][self.config.response_column]) for r, v, a in jobs]
        scores: dict[tuple[int, int], dict[str, float | None]] = {}
        notes: dict[tuple[int, int], list[str]] = {}
        errors: dict[tuple[int, int], str] = {}
        if self.config.mode == "expectation":
            for (r, v, a), probabilities in zip(jobs, engine.option_probs(conversations, SCORES), strict=True):
                scores.setdefault((r, v), {})[a] = expectation(probabilities)
        else:
            sampling = SamplingParams(n=1, max_new_tokens=self.config.max_new_tokens, temperature=0.0)
            for (r, v, a), generation in zip(jobs, engine.generate(conversations, sampling), strict=True):
                text = generation.completions[0].text if generation.completions else ""
                notes.setdefault((r, v), []).append(f"{a}: {text}")
                try:
                    scores.setdefault((r, v), {})[a] = float(parse_score(text))
                except RatingParseError as exc:
                    errors.setdefault((r, v), f"RatingParseError: {a}: {exc}")
        records = []
        for r, row in enumerate(rows):
            prompt, response = row[self.config.prompt_column], row[self.config.response_column]
            for v, rater in enumerate(self.config.raters):
                records.append(RatingRow(
                    **self.lineage(row["id"], v), model=engine.name, template=f"helpsteer/v1:{self.config.mode}",
                    response_id=row["id"], response_key=response_key(prompt, response), prompt=prompt,
                    response=response, rater=f"{engine.name}/{rater.name}", source="llm",
                    justification="\n".join(notes[(r, v)]) if (r, v) in notes else None,
                    error=errors.get((r, v)), **scores.get((r, v), {}),
                ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> RatingRow:
        prompt, response = row.get(self.config.prompt_column), row.get(self.config.response_column)
        prompt, response = (prompt if isinstance(prompt, str) else ""), (response if isinstance(response, str) else "")
        return RatingRow(**self.lineage(row["id"]), model=self.engines["model"].name, response_id=row["id"],
                         response_key=response_key(prompt, response), prompt=prompt, response=response,
                         rater=f"{self.engines['model'].name}/{self.config.raters[0].name}", source="llm", error=message)


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
                check_text(row, field)
            if all(row.get(a) is None for a in ATTRIBUTES):
                raise FactoryError(f"{where(row)}: no rating: give at least one of {', '.join(ATTRIBUTES)}")
            for attribute in ATTRIBUTES:
                check_score(row, attribute, 0, 4, integer=False)
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
                check_text(row, field)
            if row.get("preference_strength") is None:
                raise FactoryError(f"{where(row)}: field 'preference_strength': required (-3..3)")
            check_score(row, "preference_strength", -3, 3, integer=True)
            for field in ("justification", "preference_statement", "preference_elaboration"):
                check_optional_text(row, field)
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


class PreferenceConfig(StageConfig):
    group_by: str = Field(default="parent_id", description="Input column whose equal values are responses to one prompt.")
    max_pairs_per_prompt: int | None = Field(default=1, ge=1, description="Pairs judged per prompt (None: all n(n-1)/2).")
    justify: bool = Field(default=True, description="Also generate a written justification in each order.")
    max_new_tokens: int = Field(default=96, ge=1, description="Justification length, in tokens.")
    rater: str = Field(default="default", description="Rater name; the row's `rater` is '<model>/<rater>'.")
    system_prompt: str | None = Field(default=None, description="System message for the judge.")


class HelpSteerPreferenceStage(Stage):
    Config = PreferenceConfig
    Record = HelpSteerPreferenceRow
    default_output = "helpsteer_preferences"
    model_roles = ("model",)

    config: PreferenceConfig

    @classmethod
    def reads(cls, config: PreferenceConfig) -> list[str]:
        return ["id", config.group_by, "prompt", "response"]

    @classmethod
    def stream_unit(cls, config: PreferenceConfig) -> StreamUnit:
        return grouped_by(config.group_by)

    @classmethod
    def prepare_input(cls, config: PreferenceConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, cls.reads(config), "helpsteer_preference")
        return pair_rows(rows, config.group_by, config.max_pairs_per_prompt)

    def _conversation(self, prompt: str, first: str, second: str, justify: bool) -> Conversation:
        head = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        return head + [{"role": "user", "content": preference_prompt(prompt, first, second, justify)}]

    def process(self, rows: list[dict[str, Any]]) -> list[HelpSteerPreferenceRow]:
        engine = self.engines["model"]
        orders = [(row["response_1"], row["response_2"]) for row in rows] + [(row["response_2"], row["response_1"]) for row in rows]
        prompts = [row["prompt"] for row in rows] * 2
        scored = engine.option_probs([self._conversation(p, a, b, False) for p, (a, b) in zip(prompts, orders, strict=True)],
                                     [str(s) for s in STRENGTHS])
        strengths = [expected_strength(p) for p in scored]
        texts: list[str | None] = [None] * len(orders)
        if self.config.justify:
            sampling = SamplingParams(n=1, max_new_tokens=self.config.max_new_tokens, temperature=0.0)
            generations = engine.generate([self._conversation(p, a, b, True) for p, (a, b) in zip(prompts, orders, strict=True)],
                                          sampling)
            texts = [g.completions[0].text if g.completions else "" for g in generations]
        records, half = [], len(rows)
        for i, row in enumerate(rows):
            forward, reverse = strengths[i], -strengths[half + i]
            strength, consistent = combine(forward, reverse)
            records.append(HelpSteerPreferenceRow(
                **self.lineage(row["id"]), model=engine.name, template="helpsteer-preference/v2",
                prompt=row["prompt"], response_1=row["response_1"], response_2=row["response_2"],
                response_1_id=row["response_1_id"], response_2_id=row["response_2_id"],
                rater=f"{engine.name}/{self.config.rater}", source="llm", preference_strength=strength,
                strength_forward=forward, strength_reverse=reverse, position_consistent=consistent,
                justification=texts[i], justification_reverse=texts[half + i],
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> HelpSteerPreferenceRow:
        return HelpSteerPreferenceRow(
            **self.lineage(row["id"]), model=self.engines["model"].name, prompt=row.get("prompt") or "",
            response_1=row.get("response_1") or "", response_2=row.get("response_2") or "",
            rater=f"{self.engines['model'].name}/{self.config.rater}", source="llm", error=message,
        )


class PreferenceAggregateConfig(StageConfig):
    keep: int = Field(default=3, ge=1, description="Raters kept per pair: the ones whose preferences are most similar.")
    max_spread: float = Field(
        default=2.0, ge=0, description="Flag high_disagreement when the kept raters' strengths span more than this."
    )
    min_raters: int = Field(default=1, ge=1, description="Pairs with fewer raters are left out.")


class HelpSteerPreferenceAggregateStage(Stage):
    Config = PreferenceAggregateConfig
    Record = AggregatedPreferenceRow
    default_output = "aggregated_preferences"

    config: PreferenceAggregateConfig

    @classmethod
    def reads(cls, config: PreferenceAggregateConfig) -> list[str]:
        return list(PAIR_COLUMNS)

    @classmethod
    def prepare_input(cls, config: PreferenceAggregateConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, PAIR_COLUMNS, "helpsteer_preference_aggregate")
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
