"""Stage `debate`: LLM Debate. Two or more judge agents argue about a pair for `rounds` rounds, each
seeing the transcript so far; then a judge gives the verdict with the transcript in its prompt.

Position bias: the whole debate runs twice, once with the pair as (A, B) and once as (B, A), and the
final verdicts are combined like a pairwise judge's (a flip is a tie). Both transcripts are kept in
`transcript` (JSON list of {order, round, agent, text}).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from annotators.judges.core import PairMode, conversation, judge_pairs
from annotators.judges.items import JURY_ROLES, CandidateConfig, build_items, candidate_columns, candidate_stream_unit, item_fields
from annotators.judges.prompts import CRITERIA, debate_prompt
from factory.engines import SamplingParams
from factory.errors import FactoryError
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageContext, StreamUnit
from schemas.judging import JudgmentRow

Role = Literal["model", "model_2", "model_3", "model_4"]


class DebateAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Agent name, as it appears in the transcript.")
    role: Role = Field(default="model", description="Model role this agent uses.")
    system_prompt: str | None = Field(default=None, description="System message (persona or assigned stance).")


class DebateConfig(CandidateConfig):
    name: str = Field(default="debate", description="Debate name; the evaluator is 'debate:pairwise:<name>'.")
    agents: list[DebateAgent] = Field(min_length=2, description="The debating agents, speaking in this order each round.")
    rounds: int = Field(default=2, ge=1, description="Rounds of arguments (each agent speaks once per round).")
    judge_role: Role = Field(default="model", description="Model role giving the final verdict.")
    judge_system_prompt: str | None = Field(default=None, description="System message of the final judge.")
    mode: PairMode = Field(default="probs", description="Final verdict from P('A') vs P('B') or a generated 'Verdict: X'.")
    criteria: str = Field(default=CRITERIA, description="What 'better' means.")
    tie_margin: float = Field(default=0.0, ge=0.0, lt=0.5, description="Probs mode: |P(A) - 0.5| at or below this is a tie.")
    max_new_tokens: int = Field(default=96, ge=1, description="Tokens per argument (and per generated verdict).")
    temperature: float = Field(default=0.0, ge=0.0, description="Argument sampling temperature (0 = greedy).")
    seed: int | None = Field(default=0, description="Sampling seed, mixed with the batch's first id, round and agent.")


def render(turns: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"{t['agent']} (round {t['round']}): {t['text']}" for t in turns)


class DebateStage(Stage):
    Config = DebateConfig
    Record = JudgmentRow
    default_output = "judgments"
    model_roles = ("model",)
    optional_model_roles = JURY_ROLES[1:]

    config: DebateConfig

    def __init__(self, context: StageContext):
        super().__init__(context)
        roles = [(f"agents[{i}].role", a.role) for i, a in enumerate(self.config.agents)] + [("judge_role", self.config.judge_role)]
        for field, role in roles:
            if role not in self.engines:
                raise FactoryError(f"stage {context.name}: config.{field}: no model given for role {role!r}")

    @classmethod
    def reads(cls, config: DebateConfig) -> list[str]:
        return candidate_columns(config)

    @classmethod
    def stream_unit(cls, config: DebateConfig) -> StreamUnit:
        return candidate_stream_unit(config, "pairwise")

    @classmethod
    def prepare_input(cls, config: DebateConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        return build_items(config, rows, "pairwise", "debate")

    def _row(self, row: dict[str, Any], **values: Any) -> JudgmentRow:
        return JudgmentRow(**self.lineage(row["id"]), model=self.engines[self.config.judge_role].name,
                           template=f"debate/v1:{self.config.mode}", method="debate",
                           evaluator=f"debate:pairwise:{self.config.name}", strategy="pairwise", **item_fields(row), **values)

    def process(self, rows: list[dict[str, Any]]) -> list[JudgmentRow]:
        config = self.config
        # Debates: (row index, order) with the pair as presented in that order.
        debates = [(k, order) for k in range(len(rows)) for order in ("AB", "BA")]
        shown = {(k, o): (rows[k]["candidates"][0], rows[k]["candidates"][1])[:: 1 if o == "AB" else -1] for k, o in debates}
        turns: dict[tuple[int, str], list[dict[str, Any]]] = {d: [] for d in debates}
        for round_ in range(1, config.rounds + 1):
            for a, agent in enumerate(config.agents):
                seed = None if config.seed is None else int(stable_hash(config.seed, rows[0]["id"], round_, a, length=8), 16)
                sampling = SamplingParams(n=1, max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=seed)
                conversations = [conversation(agent.system_prompt, debate_prompt(
                    agent.name, rows[k]["prompt"], *shown[(k, o)], render(turns[(k, o)]), config.criteria)) for k, o in debates]
                for d, generation in zip(debates, self.engines[agent.role].generate(conversations, sampling), strict=True):
                    if generation.error is not None:
                        raise RuntimeError(f"agent {agent.name}: {generation.error}")
                    text = generation.completions[0].text if generation.completions else ""
                    turns[d].append({"order": d[1], "round": round_, "agent": agent.name, "text": text})
        verdicts = judge_pairs(self.engines[config.judge_role], config.judge_system_prompt,
                               [(r["prompt"], r["candidates"][0], r["candidates"][1]) for r in rows], config.criteria,
                               config.mode, config.tie_margin, config.max_new_tokens,
                               transcripts=[(render(turns[(k, "AB")]), render(turns[(k, "BA")])) for k in range(len(rows))])
        return [self._row(row, verdict=p.verdict, verdict_forward=p.forward, verdict_reverse=p.reverse,
                          p_a_forward=p.p_forward, p_a_reverse=p.p_reverse, position_bias=p.position_bias,
                          raw_output=p.raw_output, error=p.error,
                          transcript=json.dumps(turns[(k, "AB")] + turns[(k, "BA")]))
                for k, (row, p) in enumerate(zip(rows, verdicts, strict=True))]

    def failed_row(self, row: dict[str, Any], message: str) -> JudgmentRow:
        return self._row(row, error=message)
