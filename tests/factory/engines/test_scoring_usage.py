"""Accounting for scoring calls (issue 16, item 6): `logprobs` and `option_probs` read prompt and
response (prefill) and generate nothing, so what they read counts as input tokens and none as output,
in the metered usage, per stage and in the `runs` table."""

from __future__ import annotations

import json
from typing import Any

from factory.engines import Scores
from factory.engines.metered import MeteredEngine
from factory.engines.scoring import split_for_scoring
from factory.stage import Stage
from schemas import BaseRow
from tests.factory.engines.fault_server import FaultServer

CONVERSATION = [{"role": "user", "content": "write a short poem about the sea"}]
RESPONSE = "the sky is blue"


def test_transformers_scoring_counts_prompt_and_response_as_input(tiny_engine):
    prompt, answer = split_for_scoring(tiny_engine.tokenizer, CONVERSATION, RESPONSE)
    metered = MeteredEngine(tiny_engine)
    scores = metered.logprobs([CONVERSATION, CONVERSATION], [RESPONSE, RESPONSE])
    assert isinstance(scores, Scores) and len(scores[0]) == len(answer)
    assert metered.usage.prompt_tokens == 2 * (len(prompt) + len(answer))
    assert metered.usage.completion_tokens == 0


def test_option_probs_count_what_they_read(tiny_engine):
    metered = MeteredEngine(tiny_engine)
    metered.option_probs([CONVERSATION], ["yes", "no"])
    expected = sum(len(p) + len(a) for p, a in (split_for_scoring(tiny_engine.tokenizer, CONVERSATION, option)
                                                for option in ("yes", "no")))
    assert (metered.usage.prompt_tokens, metered.usage.completion_tokens) == (expected, 0)


def test_openai_scoring_counts_the_echoed_tokens_as_input():
    def echo(number, path, payload):
        text = payload["prompt"]
        cut = text.index("Assistant:") + len("Assistant:")
        tokens, offsets = [text[:cut], " ye", "s", "!"], [0, cut, cut + 3, len(text)]
        return 200, json.dumps({"choices": [{"text": text + "!", "logprobs": {
            "tokens": tokens, "token_logprobs": [None, -1.5, -0.25, -3.0], "text_offset": offsets}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}), 0.0

    from factory.engines import ModelSpec, load_engine

    with FaultServer(echo) as server:
        metered = MeteredEngine(load_engine(ModelSpec(name="m", backend="openai", base_url=server.url)))
        assert metered.logprobs([CONVERSATION], ["yes"]) == [[-1.5, -0.25]]
    assert (metered.usage.prompt_tokens, metered.usage.completion_tokens) == (3, 0)


class ScoreRow(BaseRow):
    total: float | None = None


class ScoreStage(Stage):
    """Sums the log-probability of a fixed response to each prompt: a scoring stage, nothing generated."""

    Record = ScoreRow
    default_output = "scores"
    model_roles = ("model",)

    @classmethod
    def reads(cls, config: Any) -> list[str]:
        return ["id", "prompt"]

    def process(self, rows: list[dict[str, Any]]) -> list[BaseRow]:
        conversations = [[{"role": "user", "content": row["prompt"]}] for row in rows]
        scores = self.engines["model"].logprobs(conversations, [RESPONSE] * len(rows))
        return [ScoreRow(**self.lineage(row["id"]), total=sum(s)) for row, s in zip(rows, scores, strict=True)]

    def failed_row(self, row: dict[str, Any], message: str) -> BaseRow:
        return ScoreRow(**self.lineage(row["id"]), error=message)


def test_a_scoring_stage_reports_input_tokens_in_runs(tmp_path, tiny_model_dir):
    from factory.config import load_pipeline
    from factory.runner import PipelineRunner
    from factory.store import Store
    from tests.helpers import prompts, write_pipeline

    raw = {
        "name": "score", "executor": "local",
        "models": {"m": {"name": str(tiny_model_dir), "dtype": "float32"}},
        "stages": [{"stage": f"{__name__}:ScoreStage", "name": "score", "input": {"seed": "prompts.jsonl"},
                    "model": "m"}],
    }
    store = Store(tmp_path / "store")
    (summary,) = PipelineRunner(load_pipeline(write_pipeline(tmp_path, raw, prompts(3))), store).run()
    assert summary.error_rows == 0
    assert summary.prompt_tokens > 3 * len(RESPONSE.split()) and summary.completion_tokens == 0
    runs = store.sql("SELECT prompt_tokens, completion_tokens FROM runs")
    assert runs["prompt_tokens"].to_list() == [summary.prompt_tokens] and runs["completion_tokens"].to_list() == [0]
