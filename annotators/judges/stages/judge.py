"""Stage `judge`: one LLM evaluator with one of three prompting strategies -> data set `judgments`.

`variants` are prompt variants of the judge (a persona, a strictness); each is its own evaluator
configuration ('judge:<strategy>:<model>/<variant>') and writes its own row per item, so
`factory calibrate` can rank them by agreement with humans.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from annotators.judges.core import PairMode, judge_pairs, rank_candidates, score_single
from annotators.judges.items import (CandidateConfig, build_items, candidate_columns, candidate_stream_unit, item_fields,
                                     model_label)
from annotators.judges.prompts import CRITERIA
from factory.stage import SideInputs, Stage, StreamUnit
from schemas.judging import JudgmentRow

Strategy = Literal["single", "pairwise", "ranking"]


class JudgeVariant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Variant name; the evaluator is '<method>:<strategy>:<model>/<name>'.")
    system_prompt: str | None = Field(default=None, description="System message of this variant.")


class JudgeConfig(CandidateConfig):
    strategy: Strategy = Field(default="pairwise", description="'single' (Likert 1-5), 'pairwise' (A vs B, both orders) or 'ranking'.")
    mode: PairMode = Field(default="probs", description="Pairwise: verdict from P('A') vs P('B'), or 'generate' a parsed 'Verdict: X'.")
    criteria: str = Field(default=CRITERIA, description="What 'better' means, inserted in every judge prompt.")
    variants: list[JudgeVariant] = Field(default_factory=lambda: [JudgeVariant(name="default")], min_length=1,
                                         description="Prompt variants, each an evaluator configuration of its own.")
    tie_margin: float = Field(default=0.0, ge=0.0, lt=0.5, description="Probs mode: |P(A) - 0.5| at or below this is a tie.")
    max_new_tokens: int = Field(default=128, ge=1, description="Generate mode and ranking: tokens of the verdict text.")


class JudgeStage(Stage):
    Config = JudgeConfig
    Record = JudgmentRow
    default_output = "judgments"
    model_roles = ("model",)

    config: JudgeConfig

    @classmethod
    def reads(cls, config: JudgeConfig) -> list[str]:
        return candidate_columns(config)

    @classmethod
    def stream_unit(cls, config: JudgeConfig) -> StreamUnit:
        return candidate_stream_unit(config, config.strategy)

    @classmethod
    def prepare_input(cls, config: JudgeConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        return build_items(config, rows, config.strategy, "judge")

    def evaluator(self, variant: JudgeVariant) -> str:
        return f"judge:{self.config.strategy}:{model_label(self.engines['model'].name)}/{variant.name}"

    def _row(self, row: dict[str, Any], v: int, **values: Any) -> JudgmentRow:
        mode = self.config.mode if self.config.strategy == "pairwise" else ("probs" if self.config.strategy == "single" else "generate")
        return JudgmentRow(**self.lineage(row["id"], v), model=self.engines["model"].name,
                           template=f"judge/v1:{self.config.strategy}:{mode}", method="judge",
                           evaluator=self.evaluator(self.config.variants[v]), strategy=self.config.strategy,
                           **item_fields(row), **values)

    def process(self, rows: list[dict[str, Any]]) -> list[JudgmentRow]:
        engine, config = self.engines["model"], self.config
        records = []
        for v, variant in enumerate(config.variants):
            if config.strategy == "single":
                scores = score_single(engine, variant.system_prompt, [(r["prompt"], r["candidates"][0]) for r in rows],
                                      config.criteria)
                records += [self._row(r, v, score=s) for r, s in zip(rows, scores, strict=True)]
            elif config.strategy == "pairwise":
                verdicts = judge_pairs(engine, variant.system_prompt,
                                       [(r["prompt"], r["candidates"][0], r["candidates"][1]) for r in rows],
                                       config.criteria, config.mode, config.tie_margin, config.max_new_tokens)
                records += [self._row(r, v, verdict=p.verdict, verdict_forward=p.forward, verdict_reverse=p.reverse,
                                      p_a_forward=p.p_forward, p_a_reverse=p.p_reverse, position_bias=p.position_bias,
                                      raw_output=p.raw_output, error=p.error) for r, p in zip(rows, verdicts, strict=True)]
            else:
                ranked = rank_candidates(engine, variant.system_prompt, [(r["prompt"], r["candidates"]) for r in rows],
                                         config.criteria, config.max_new_tokens)
                records += [self._row(r, v, ranking=order, raw_output=raw, error=error)
                            for r, (order, raw, error) in zip(rows, ranked, strict=True)]
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> JudgmentRow:
        return self._row(row, 0, error=message)
