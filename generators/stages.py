"""Stage `generate`: n sampled responses per prompt from one model -> data set `responses`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from factory.engines import Conversation, SamplingParams
from factory.ids import stable_hash
from factory.stage import Stage, StageConfig
from schemas import ResponseRow

TEMPLATE = "generate/v1"  # the prompt is the conversation as given; bump when that changes


class GenerateConfig(StageConfig):
    prompt_column: str = Field(default="prompt", description="Input column holding the user prompt.")
    system_prompt: str | None = Field(
        default=None, description="System message for every prompt; else the row's `system_prompt` column if any."
    )
    n: int = Field(default=1, ge=1, description="Responses sampled per prompt.")
    max_new_tokens: int = Field(default=256, ge=1, description="Longest response, in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, description="0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(default=0, description="Sampling seed, mixed with each batch's first row id.")


class GenerateStage(Stage):
    Config = GenerateConfig
    Record = ResponseRow
    default_output = "responses"
    model_roles = ("model",)

    config: GenerateConfig

    @classmethod
    def reads(cls, config: GenerateConfig) -> list[str]:
        return ["id", config.prompt_column]

    def _sampling(self, rows: list[dict[str, Any]]) -> SamplingParams:
        seed = self.config.seed
        if seed is not None:
            # Same batch -> same seed, so a re-run of a batch reproduces its text.
            seed = int(stable_hash(seed, rows[0]["id"], length=8), 16)
        return SamplingParams(
            n=self.config.n, max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature, top_p=self.config.top_p, seed=seed,
        )

    def _system(self, row: dict[str, Any]) -> str | None:
        return self.config.system_prompt or row.get("system_prompt") or None

    def _conversation(self, row: dict[str, Any]) -> Conversation:
        system = self._system(row)
        prompt = row[self.config.prompt_column]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"column {self.config.prompt_column!r} is empty or not text")
        head = [{"role": "system", "content": system}] if system else []
        return head + [{"role": "user", "content": prompt}]

    def process(self, rows: list[dict[str, Any]]) -> list[ResponseRow]:
        engine = self.engines["model"]
        sampling = self._sampling(rows)
        generations = engine.generate([self._conversation(row) for row in rows], sampling)
        records = []
        for row, generation in zip(rows, generations, strict=True):
            if generation.error is not None:
                records.append(self.failed_row(row, generation.error))
                continue
            for index, completion in enumerate(generation.completions):
                records.append(ResponseRow(
                    **self.lineage(row["id"], index),
                    model=engine.name,
                    template=TEMPLATE,
                    sampling=sampling.model_dump_json(),
                    prompt=row[self.config.prompt_column],
                    system_prompt=self._system(row),
                    response=completion.text,
                    sample_index=index,
                    finish_reason=completion.finish_reason,
                    prompt_tokens=generation.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> ResponseRow:
        prompt = row.get(self.config.prompt_column)
        return ResponseRow(
            **self.lineage(row["id"], 0),
            model=self.engines["model"].name,
            template=TEMPLATE,
            prompt=prompt if isinstance(prompt, str) else str(prompt),
            system_prompt=self._system(row),
            sample_index=0,
            error=message,
        )
