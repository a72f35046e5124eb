"""Every multi-agent stage in one pipeline on a tiny random model, then calibrate, report and export."""

import json

import datasets
import pytest

from annotators.offline.calibrate import calibrate
from annotators.offline.report import write_report
from factory.config import load_pipeline
from factory.errors import ConfigError
from factory.cli import EXPORT_FORMATS  # every package's formats, as `factory export` has them
from factory.export import export_dataset
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import prompts, write_pipeline

COMPARE = ["feedback:tiny:final", "feedback:tiny:round0"]


def pipeline(model: str) -> dict:
    m = {"name": model, "dtype": "float32"}
    return {"name": "judges", "executor": "local", "models": {"m": m, "m2": dict(m)}, "stages": [
        {"stage": "feedback_loop", "input": {"seed": "prompts.jsonl"}, "models": {"generator": "m", "reviewer": "m2"},
         "config": {"rounds": 1, "max_new_tokens": 8, "review_max_new_tokens": 4, "configuration": "tiny"}},
        {"stage": "feedback_answers", "input": {"dataset": "feedback_turns"}, "config": {"configuration": "tiny"}},
        {"stage": "judge", "name": "pairwise", "input": {"dataset": "responses"}, "model": "m",
         "config": {"compare": COMPARE, "variants": [{"name": "plain"}, {"name": "strict", "system_prompt": "Be strict."}]}},
        {"stage": "judge", "name": "pairwise_generate", "input": {"dataset": "responses"}, "model": "m",
         "config": {"compare": COMPARE, "mode": "generate", "max_new_tokens": 4}},
        {"stage": "judge", "name": "single", "input": {"dataset": "responses"}, "model": "m", "config": {"strategy": "single"}},
        {"stage": "judge", "name": "ranking", "input": {"dataset": "responses"}, "model": "m",
         "config": {"strategy": "ranking", "max_new_tokens": 6}},
        {"stage": "jury", "input": {"dataset": "responses"}, "models": {"model": "m", "model_2": "m2"},
         "config": {"compare": COMPARE, "jurors": [{"name": "j1"}, {"name": "j2", "role": "model_2"}]}},
        {"stage": "debate", "input": {"dataset": "responses"}, "model": "m",
         "config": {"compare": COMPARE, "rounds": 1, "max_new_tokens": 4, "agents": [{"name": "Pro"}, {"name": "Con"}]}},
        {"stage": "win_rates", "input": {"dataset": "judgments"}, "config": {"n_boot": 20}},
    ]}


def test_multiagent_pipeline_calibrate_report_export(tmp_path, long_model_dir):
    store = Store(tmp_path / "store")
    path = write_pipeline(tmp_path, pipeline(str(long_model_dir)), prompts(3))
    summaries = {s.stage: s for s in PipelineRunner(load_pipeline(path), store).run()}
    assert summaries["feedback_loop"].rows == 9 and summaries["feedback_answers"].rows == 6
    assert summaries["pairwise"].rows == 6 and summaries["pairwise"].error_rows == 0
    assert summaries["pairwise_generate"].rows == 3  # 4 random tokens: usually error rows, never a crash
    assert summaries["single"].rows == 6 and summaries["ranking"].rows == 3
    assert summaries["jury"].rows == 3 and summaries["debate"].rows == 3
    judgments = store.sql("SELECT * FROM judgments").to_dicts()
    for row in judgments:
        assert (row["error"] is None) or row["raw_output"] is not None
        if row["strategy"] == "pairwise" and row["error"] is None and row["method"] != "jury":
            assert row["verdict"] in ("A", "B", "tie") and row["configurations"] == COMPARE
            assert row["position_bias"] == ({row["verdict_forward"], row["verdict_reverse"]} == {"A", "B"})
        if row["strategy"] == "single":
            assert 1 <= row["score"] <= 5
    debate = next(r for r in judgments if r["method"] == "debate")
    assert len(json.loads(debate["transcript"])) == 4
    rates = store.sql("SELECT * FROM win_rates").to_dicts()
    evaluators = {r["evaluator"] for r in rates}
    assert {"judge:pairwise:" + long_model_dir.name + "/plain", "jury:pairwise:jury", "debate:pairwise:debate"} <= evaluators
    for rate in rates:
        assert 0 <= rate["win_rate"] <= 1 and 0 <= rate["lc_win_rate"] <= 1 and rate["n"] >= 1
    assert PipelineRunner(load_pipeline(path), store).run()[-1].rows == 0  # resumes: nothing new to rate

    labels = tmp_path / "human.jsonl"
    pairs = [r for r in judgments if r["evaluator"].endswith("/plain")]
    labels.write_text("".join(json.dumps({"prompt": r["prompt"], "response_1": r["candidates"][0],
                                          "response_2": r["candidates"][1], "verdict": v, "rater": rater}) + "\n"
                              for r in pairs for rater, v in (("ann", "A"), ("bob", r["verdict"]))))
    ranked = calibrate(store, str(labels), n_boot=20)
    assert {"cohen_kappa", "weighted_kappa", "fleiss_kappa"} <= set(ranked["metric"].to_list())
    assert store.sql("SELECT count(*) AS n FROM agreement")["n"][0] > len(ranked)

    files = write_report(store, tmp_path / "report")
    assert {f.name for f in files} == {"win_rates.png", "agreement_pairwise.png", "report.md"}
    assert all(f.stat().st_size > 1000 for f in files if f.suffix == ".png")
    assert "![win rates](win_rates.png)" in (tmp_path / "report" / "report.md").read_text()

    decisive = [r for r in judgments if r["strategy"] == "pairwise" and r["verdict"] in ("A", "B") and r["error"] is None]
    ranks = [r for r in judgments if r["strategy"] == "ranking" and r["ranking"]]
    result = export_dataset(store, "judgments", tmp_path / "dpo", fmt="judge-dpo", formats=EXPORT_FORMATS)
    assert result.rows == len(decisive) + len(ranks)
    # Loadable with the TRL columns whether or not the random judge was decisive (an empty export too).
    exported = datasets.load_from_disk(str(tmp_path / "dpo"))
    assert exported.num_rows == result.rows and set(exported.column_names) == {"prompt", "chosen", "rejected"}
    for row in exported:
        assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]


def test_jury_roles_are_checked_before_launch(tmp_path, long_model_dir):
    config = pipeline(str(long_model_dir))
    config["stages"][6]["models"]["model_9"] = "m"
    with pytest.raises(ConfigError, match=r"has no model role 'model_9' \(roles: model, model_2, model_3, model_4\)"):
        load_pipeline(write_pipeline(tmp_path, config, prompts(1)))
