"""Stage `helpsteer`: five HelpSteer2 attributes, 0-4, for each response, by one or more LLM raters.

Each rater variant (a system prompt and/or rubric wording) of the stage's model is one rater and
writes one `ratings` row per response. Mode 'expectation' scores an attribute as the expectation over
the normalised probabilities of '0'..'4' (never fails to parse); mode 'generate' asks for a written
justification ending in 'Score: N' and parses it (unparsable -> error row with the text).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from annotators.helpsteer.parse import RatingParseError, parse_score
from annotators.helpsteer.rubrics import expectation, rating_prompt
from factory.engines import Conversation, SamplingParams
from factory.ids import stable_hash
from factory.stage import Stage, StageConfig
from schemas.ratings import ATTRIBUTES, RatingRow

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


def response_key(prompt: str, response: str) -> str:
    return stable_hash("response", prompt, response)


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
