"""Stage `helpsteer_preference`: HelpSteer2-Preference strength (-3..+3) between two responses to a
prompt, judged in both orders (position bias) with an optional written justification.

The scale is the HelpSteer2-Preference data card's seven points, 0 ("about the same") included:
without it a judge that finds two responses equal must still pick a side, which inflates
|strength| and so the scaled-BT weight. Strength in each order is the expectation over the
normalised probabilities of the seven answers '-3' .. '3'; the reverse order's value is negated
back to (1, 2) terms, the two are averaged and rounded into `preference_strength` (0 when the
average is within 0.5 of a tie).
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from pydantic import Field

from annotators.grouping import pair_rows, require_input_columns
from factory.engines import Conversation, SamplingParams
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit
from schemas.ratings import HelpSteerPreferenceRow

STRENGTHS = [-3, -2, -1, 0, 1, 2, 3]

# The data card's wording, line for line (nvidia/HelpSteer2, "Preferences").
SCALE = """-3: Response 1 is much better than Response 2
-2: Response 1 is better than Response 2
-1: Response 1 is slightly better than Response 2
0: Response 1 is about the same as Response 2
1: Response 2 is slightly better than Response 1
2: Response 2 is better than Response 1
3: Response 2 is much better than Response 1"""


def preference_prompt(prompt: str, first: str, second: str, justify: bool) -> str:
    task = ("Explain in two or three sentences which response is better and why."
            if justify else "Answer with one number from the scale and nothing else.")
    return (
        "Compare two responses to the same prompt for overall helpfulness, correctness and clarity.\n\n"
        f"[Prompt]\n{prompt}\n[End of prompt]\n\n[Response 1]\n{first}\n[End of response 1]\n\n"
        f"[Response 2]\n{second}\n[End of response 2]\n\nScale:\n{SCALE}\n\n{task}"
    )


def expected_strength(probabilities: list[float]) -> float:
    total = sum(probabilities)
    if total <= 0:
        raise ValueError("every strength option has probability 0")
    return sum(s * p for s, p in zip(STRENGTHS, probabilities, strict=True)) / total


def round_strength(value: float) -> int:
    """The nearest point of the -3..3 scale; halves go away from zero, so rounding is the same for
    either response (half-to-even would pull +0.5 and -1.5 alike towards an even number)."""
    return max(-3, min(3, int(math.copysign(math.floor(abs(value) + 0.5), value))))


def combine(forward: float, reverse_flipped: float) -> tuple[int, bool]:
    """(preference strength, position consistent) from both orders, in (1, 2) terms."""
    return round_strength((forward + reverse_flipped) / 2), (forward > 0) == (reverse_flipped > 0)


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
        # Groups keyed by the upstream's parent_id are whole once committed (one upstream input each).
        return "parent" if config.group_by == "parent_id" else None

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
