"""Stage `jury`: LLMs-as-a-Jury. Several jurors (different models and/or prompts) judge each item;
pairwise verdicts are aggregated by majority vote (no strict plurality of A or B -> tie), single
scores by their mean. Every juror's own verdict is kept in `jurors` (JSON).

Jurors name a model role: `model` (required) and optionally `model_2` .. `model_4`, so a jury of up
to four different models runs in one actor, each model loaded once.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from annotators.judges.core import PairMode, judge_pairs, majority, score_single
from annotators.judges.items import (JURY_ROLES, CandidateConfig, build_items, candidate_columns, candidate_stream_unit,
                                     item_fields, model_label)
from annotators.judges.prompts import CRITERIA
from factory.errors import FactoryError
from factory.stage import SideInputs, Stage, StageContext, StreamUnit
from schemas.judging import JudgmentRow

class Juror(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Juror name, unique in the jury.")
    role: Literal["model", "model_2", "model_3", "model_4"] = Field(default="model", description="Model role this juror uses.")
    system_prompt: str | None = Field(default=None, description="System message (persona) of this juror.")


class JuryConfig(CandidateConfig):
    name: str = Field(default="jury", description="Jury name; the evaluator is 'jury:<strategy>:<name>'.")
    strategy: Literal["single", "pairwise"] = Field(default="pairwise", description="Jurors score one response or compare a pair.")
    jurors: list[Juror] = Field(min_length=1, description="The jurors; each judges every item.")
    mode: PairMode = Field(default="probs", description="Pairwise verdicts from P('A') vs P('B') or generated 'Verdict: X'.")
    criteria: str = Field(default=CRITERIA, description="What 'better' means.")
    tie_margin: float = Field(default=0.0, ge=0.0, lt=0.5, description="Probs mode: |P(A) - 0.5| at or below this is a tie.")
    max_new_tokens: int = Field(default=128, ge=1, description="Generate mode: tokens of each verdict text.")


class JuryStage(Stage):
    Config = JuryConfig
    Record = JudgmentRow
    default_output = "judgments"
    model_roles = ("model",)
    optional_model_roles = JURY_ROLES[1:]

    config: JuryConfig

    def __init__(self, context: StageContext):
        super().__init__(context)
        names = [juror.name for juror in self.config.jurors]
        if len(set(names)) != len(names):
            raise FactoryError(f"stage {context.name}: config.jurors: juror names must be unique ({', '.join(names)})")
        for i, juror in enumerate(self.config.jurors):
            if juror.role not in self.engines:
                raise FactoryError(f"stage {context.name}: config.jurors[{i}].role: no model given for role {juror.role!r}")

    @classmethod
    def reads(cls, config: JuryConfig) -> list[str]:
        return candidate_columns(config)

    @classmethod
    def stream_unit(cls, config: JuryConfig) -> StreamUnit:
        return candidate_stream_unit(config, config.strategy)

    @classmethod
    def prepare_input(cls, config: JuryConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        return build_items(config, rows, config.strategy, "jury")

    def _row(self, row: dict[str, Any], **values: Any) -> JudgmentRow:
        return JudgmentRow(**self.lineage(row["id"]), model=self.engines["model"].name,
                           template=f"jury/v1:{self.config.strategy}:{self.config.mode}", method="jury",
                           evaluator=f"jury:{self.config.strategy}:{self.config.name}", strategy=self.config.strategy,
                           **item_fields(row), **values)

    def process(self, rows: list[dict[str, Any]]) -> list[JudgmentRow]:
        config = self.config
        votes: list[list[dict[str, Any]]] = [[] for _ in rows]
        for juror in config.jurors:
            engine = self.engines[juror.role]
            label = {"juror": juror.name, "model": model_label(engine.name)}
            if config.strategy == "single":
                scores = score_single(engine, juror.system_prompt, [(r["prompt"], r["candidates"][0]) for r in rows],
                                      config.criteria)
                for k, score in enumerate(scores):
                    votes[k].append({**label, "score": score})
                continue
            verdicts = judge_pairs(engine, juror.system_prompt, [(r["prompt"], *r["candidates"][:2]) for r in rows],
                                   config.criteria, config.mode, config.tie_margin, config.max_new_tokens)
            for k, p in enumerate(verdicts):
                votes[k].append({**label, "verdict": p.verdict, "forward": p.forward, "reverse": p.reverse,
                                 "position_bias": p.position_bias, "error": p.error})
        records = []
        for row, cast in zip(rows, votes, strict=True):
            if config.strategy == "single":
                records.append(self._row(row, score=sum(v["score"] for v in cast) / len(cast), jurors=json.dumps(cast)))
                continue
            valid = [v for v in cast if v["error"] is None]
            if not valid:
                records.append(self._row(row, jurors=json.dumps(cast), error="every juror's verdict was unparsable"))
                continue
            records.append(self._row(row, verdict=majority([v["verdict"] for v in valid]), jurors=json.dumps(cast),
                                     position_bias=any(v["position_bias"] for v in valid)))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> JudgmentRow:
        return self._row(row, error=message)
