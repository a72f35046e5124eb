"""Every trainer, ≥ 2 steps on the tiny model inside a local Ray Train worker (slow: starts Ray)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from factory.cli import main
from schemas.training import TrainingRunRecord
from trainers.config import load_train_config
from trainers.multi_objective import MultiObjectiveScorer
from trainers.run import train
from tests.trainers.conftest import write_config

pytestmark = pytest.mark.slow

PROBE = "model.layers.0.mlp.down_proj.weight"  # a backbone weight every model here has


def _stored(store, record_id: str) -> dict:
    rows = store.sql(f"SELECT * FROM training_runs WHERE id = '{record_id}'").to_dicts()
    assert len(rows) == 1
    return rows[0]


def _check_record(row: dict) -> None:
    optional = {"message"}
    assert all(row[k] is not None for k in TrainingRunRecord.model_fields if k not in optional), row
    assert row["status"] == "completed"
    assert len(row["data_row_ids"]) == row["data_row_count"] > 0 and len(row["data_ids_hash"]) == 64
    assert row["steps"] >= 2 and math.isfinite(row["final_loss"])
    assert len(json.loads(row["metrics"])) >= 2 and json.loads(row["eval_metrics"])
    assert (Path(row["checkpoint_path"]) / "summary.json").exists()
    assert row["device"] == "cpu" and row["precision"] == "fp32"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_sft_lora_through_the_cli(tmp_path, tiny_model_dir, train_store, ray_session, capsys):
    path = write_config(tmp_path, tiny_model_dir, data={"dataset": "responses"}, lora={"r": 4})
    assert main(["train", "sft", "--config", str(path), "--store", train_store.location]) == 0
    assert "trained sft/sft on 7 rows (1 held out): 2 steps" in capsys.readouterr().out
    row = train_store.sql("SELECT * FROM training_runs WHERE kind = 'sft' ORDER BY started_at DESC LIMIT 1").to_dicts()[0]
    _check_record(row)
    assert "eval_loss" in json.loads(row["eval_metrics"])
    adapter = load_file(str(Path(row["final_model_path"]) / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at zero


@pytest.mark.parametrize("kind, overrides, eval_key", [
    ("dpo", {"data": {"dataset": "pairs"}}, "eval_rewards/accuracies"),
    ("simpo", {"data": {"dataset": "helpsteer_pairs"}}, "eval_rewards/margins"),
    ("rm", {"data": {"dataset": "pairs"}, "rm": {"objective": "bt"}}, "eval_accuracy"),
    ("rm", {"data": {"dataset": "pairs"}, "rm": {"objective": "scaled_bt"}}, "eval_accuracy"),
    ("rm", {"data": {"dataset": "pairs"}, "rm": {"objective": "regression_then_scaled_bt",
                                                 "regression_data": {"dataset": "ratings"}}}, "eval_accuracy"),
    ("rm", {"data": {"dataset": "ratings"}, "rm": {"objective": "regression"}}, "eval_loss"),
])
def test_full_fine_tuning(kind, overrides, eval_key, tmp_path, tiny_model_dir, train_store, ray_session):
    record = train(load_train_config(write_config(tmp_path, tiny_model_dir, **overrides), kind), train_store).record
    row = _stored(train_store, record.id)
    _check_record(row)
    assert eval_key in json.loads(row["eval_metrics"])
    before, after = _weights(tiny_model_dir), _weights(Path(row["final_model_path"]))
    assert not torch.equal(before[PROBE], after[PROBE])


def test_multi_objective_scorer(tmp_path, tiny_model_dir, train_store, ray_session):
    config = write_config(tmp_path, tiny_model_dir, data={"dataset": "ratings"},
                          rm={"objective": "multi_objective", "gating_steps": 20, "gating_batch_size": 8,
                              "gating_hidden_dim": 16, "ridge_alphas": [0.1, 10.0], "ridge_validation_fraction": 0.3})
    record = train(load_train_config(config, "rm"), train_store).record
    row = _stored(train_store, record.id)
    _check_record(row)
    evaluation = json.loads(row["eval_metrics"])
    weights = [v for k, v in evaluation.items() if k.startswith("weight_")]
    assert len(weights) == 5 and math.isclose(sum(weights), 1.0, rel_tol=1e-4)  # one gate weight per objective
    attributes = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    assert all(evaluation[f"ridge_alpha_{a}"] in (0.1, 10.0) for a in attributes)  # the α chosen per objective
    assert all(0 <= evaluation[f"verbosity_penalty_{a}"] <= 1 for a in attributes if a != "verbosity")
    scorer = MultiObjectiveScorer.load(row["final_model_path"])
    scores = scorer.score(["write a short poem about the sea"], ["the sea and the sky are blue"])
    assert len(scores) == 1 and math.isfinite(scores[0])
    assert set(scorer.score_objectives(["hi"], ["hello"])[0]) == {"helpfulness", "correctness", "coherence",
                                                                 "complexity", "verbosity"}


def test_resume_continues_the_step_count(tmp_path, tiny_model_dir, train_store, ray_session):
    path = write_config(tmp_path, tiny_model_dir, data={"dataset": "pairs"}, rm={"objective": "bt"},
                        run_name="resumable")
    first = train(load_train_config(path, "rm"), train_store).record
    config = load_train_config(path, "rm")
    config.training.max_steps = 4
    second = train(config, train_store).record
    assert (first.steps, first.resumed_from_step) == (2, 0)
    assert (second.steps, second.resumed_from_step) == (4, 2)
    assert [entry["step"] for entry in json.loads(second.metrics)][-2:] == [3, 4]
    assert second.output_dir == first.output_dir and second.checkpoint_path != first.checkpoint_path
