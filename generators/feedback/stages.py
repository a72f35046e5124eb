"""The feedback loop's stages (Fellowship of the LLMs, arXiv 2408.08688).

Stage `feedback_loop`: a generator answers, a reviewer (another model or persona) critiques, the
generator revises, for `rounds` rounds -> data set `feedback_turns`, one row per turn.

Both models live in one stage actor (roles `generator` and `reviewer`, each loaded once). The
Fellowship paper runs them as separate agents; here a round is one batched call per role over every
prompt of the batch that is still in the loop, which keeps each model busy with whole batches and
needs no cross-actor messaging. A reviewer that approves (a parsable 'Verdict: APPROVE') ends the
loop for that prompt when `early_stop` is on; an unparsable verdict counts as 'revise'.

Stage `feedback_answers`: the round-0 and final answers of one feedback-loop configuration, from
`feedback_turns` into `responses` (so judges, win rates and exports treat them like any response).

The runner writes one data set per stage, hence this second stage. The configuration is named in
`template`: 'feedback:<configuration>:round0' (the generator alone: the single-agent baseline) and
'feedback:<configuration>:final' (after the reviews); `sample_index` is 0 and 1. Both rows have the
prompt's id as `parent_id`, like `generate`'s responses, so pairs can be built per prompt.

Prompts and the reviewer's verdict parser: generators/feedback/prompts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import Field

from annotators.grouping import require_input_columns
from factory.engines import Completion, Conversation, Engine, SamplingParams
from factory.errors import FactoryError
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit
from generators.feedback.prompts import (REVIEW_TASK, REVIEWER_SYSTEM, REVISE_TASK, parse_approval,
                                         review_conversation, revise_conversation)
from schemas import ResponseRow
from schemas.judging import FeedbackTurnRow

TEMPLATE = "feedback/v1"
WHICH = ("round0", "final")


class FeedbackLoopConfig(StageConfig):
    configuration: str = Field(default="feedback_loop", description="Name of this setup; kept on every turn and answer.")
    prompt_column: str = Field(default="prompt", description="Input column holding the user prompt.")
    rounds: int = Field(default=2, ge=0, description="Review -> revise rounds after the first answer (0: single agent).")
    early_stop: bool = Field(default=True, description="Stop a prompt's loop when the reviewer approves.")
    system_prompt: str | None = Field(default=None, description="Generator system message.")
    reviewer_system_prompt: str | None = Field(default=REVIEWER_SYSTEM, description="Reviewer system message (its persona).")
    review_task: str = Field(default=REVIEW_TASK, description="Reviewer instruction; should ask for 'Verdict: APPROVE/REVISE'.")
    revise_task: str = Field(default=REVISE_TASK, description="Reviser instruction; '{review}' is replaced by the review.")
    max_new_tokens: int = Field(default=256, ge=1, description="Longest answer, in tokens.")
    review_max_new_tokens: int = Field(default=128, ge=1, description="Longest review, in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, description="Generator sampling temperature (0 = greedy).")
    review_temperature: float = Field(default=0.0, ge=0.0, description="Reviewer temperature (0 = greedy).")
    seed: int | None = Field(default=0, description="Sampling seed, mixed with the batch's first row id, round and role.")


@dataclass
class _Loop:
    """One prompt's state while its batch runs."""

    row: dict[str, Any]
    answer: str = ""
    turns: list[FeedbackTurnRow] = field(default_factory=list)
    error: str | None = None
    done: bool = False


class FeedbackLoopStage(Stage):
    Config = FeedbackLoopConfig
    Record = FeedbackTurnRow
    default_output = "feedback_turns"
    model_roles = ("generator", "reviewer")

    config: FeedbackLoopConfig

    @classmethod
    def reads(cls, config: FeedbackLoopConfig) -> list[str]:
        return ["id", config.prompt_column]

    def _sampling(self, rows: list[dict[str, Any]], round_: int, role: str) -> SamplingParams:
        generator = role == "generator"
        seed = self.config.seed
        if seed is not None:
            seed = int(stable_hash(seed, rows[0]["id"], round_, role, length=8), 16)
        return SamplingParams(n=1, seed=seed,
                              max_new_tokens=self.config.max_new_tokens if generator else self.config.review_max_new_tokens,
                              temperature=self.config.temperature if generator else self.config.review_temperature)

    def _prompt(self, row: dict[str, Any]) -> str:
        prompt = row[self.config.prompt_column]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"column {self.config.prompt_column!r} is empty or not text")
        return prompt

    def _turn(self, loop: _Loop, engine: Engine, round_: int, role: str, text: str, completion: Completion,
              prompt_tokens: int, sampling: SamplingParams, approved: bool | None = None) -> FeedbackTurnRow:
        return FeedbackTurnRow(
            **self.lineage(loop.row["id"], len(loop.turns)), model=engine.name, template=f"{TEMPLATE}:{role}",
            sampling=sampling.model_dump_json(), configuration=self.config.configuration,
            prompt=self._prompt(loop.row), round=round_, role=role, text=text, approved=approved,
            finish_reason=completion.finish_reason, prompt_tokens=prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )

    def _step(self, loops: list[_Loop], role: str, round_: int, conversations: list[Conversation]) -> list[str]:
        """One batched call of `role` for `loops`; records each turn, marks failures; returns the texts."""
        engine = self.engines[role]
        sampling = self._sampling([loop.row for loop in loops], round_, role)
        texts = []
        for loop, generation in zip(loops, engine.generate(conversations, sampling), strict=True):
            if generation.error is not None or not generation.completions:
                loop.error, loop.done = generation.error or "no completion", True
                texts.append("")
                continue
            completion = generation.completions[0]
            approved = parse_approval(completion.text) if role == "reviewer" else None
            loop.turns.append(self._turn(loop, engine, round_, role, completion.text, completion,
                                         generation.prompt_tokens, sampling, approved))
            texts.append(completion.text)
        return texts

    def process(self, rows: list[dict[str, Any]]) -> list[FeedbackTurnRow]:
        config = self.config
        loops = [_Loop(row) for row in rows]
        head = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
        first = self._step(loops, "generator", 0, [head + [{"role": "user", "content": self._prompt(r)}] for r in rows])
        for loop, text in zip(loops, first, strict=True):
            loop.answer = text
        for round_ in range(1, config.rounds + 1):
            active = [loop for loop in loops if not loop.done]
            if not active:
                break
            reviews = self._step(active, "reviewer", round_, [
                review_conversation(config.reviewer_system_prompt, self._prompt(loop.row), loop.answer, config.review_task)
                for loop in active])
            revising = []
            for loop, review in zip(active, reviews, strict=True):
                if loop.done:
                    continue
                if config.early_stop and loop.turns[-1].approved:
                    loop.done = True
                else:
                    revising.append((loop, review))
            if not revising:
                continue
            answers = self._step([loop for loop, _ in revising], "generator", round_, [
                revise_conversation(config.system_prompt, self._prompt(loop.row), loop.answer, review, config.revise_task)
                for loop, review in revising])
            for (loop, _), answer in zip(revising, answers, strict=True):
                if not loop.done:
                    loop.answer = answer
        records: list[FeedbackTurnRow] = []
        for loop in loops:
            if loop.error is not None:
                # Only the error row: --retry-errors then redoes the whole loop without duplicating turns.
                records.append(self.failed_row(loop.row, loop.error))
                continue
            last = max(i for i, turn in enumerate(loop.turns) if turn.role == "generator")
            loop.turns[last].final = True
            records.extend(loop.turns)
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> FeedbackTurnRow:
        prompt = row.get(self.config.prompt_column)
        return FeedbackTurnRow(
            **self.lineage(row["id"], 0), model=self.engines["generator"].name, template=f"{TEMPLATE}:generator",
            configuration=self.config.configuration, prompt=prompt if isinstance(prompt, str) else str(prompt),
            round=0, role="generator", error=message,
        )


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
