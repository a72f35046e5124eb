"""HelpSteer2-Preference's recipe on the tiny model, in this process: a regression phase on the chosen
attributes (default: helpfulness alone, as the paper), then scaled BT whose scalar head starts as the
head attribute's regression row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from trainers.common import WorkerPayload, common_args, load_tokenizer
from trainers.config import load_train_config
from trainers.data import load_training_data
from trainers.reward import Reward
from tests.trainers.conftest import write_config

PROBE = "model.layers.0.mlp.down_proj.weight"
# Rating rows with the helpfulness column only: a helpfulness-only phase must not need the others.
HELPFULNESS_ONLY = "SELECT id, run_id, error, prompt, response, helpfulness FROM ratings"


@pytest.mark.parametrize("rm, regression_data, phase_attributes", [
    ({}, {"query": HELPFULNESS_ONLY}, ["helpfulness"]),
    ({"regression_attributes": ["helpfulness", "correctness"], "head_attribute": "correctness"},
     {"dataset": "ratings"}, ["helpfulness", "correctness"]),
], ids=["helpfulness-only-default", "two-attributes-head-correctness"])
def test_regression_phase_then_scaled_bt(rm, regression_data, phase_attributes, tmp_path, tiny_model_dir,
                                         train_store):
    overrides = {"objective": "regression_then_scaled_bt", "regression_data": regression_data} | rm
    config = load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "pairs"}, rm=overrides), "rm")
    data = load_training_data(config, train_store)
    assert len(data.extra["regression"][0]["labels"]) == len(phase_attributes)
    run_dir = tmp_path / "run"
    trainer = Reward().trainer(WorkerPayload(config, data.train, data.eval, data.extra), str(tiny_model_dir),
                               load_tokenizer(str(tiny_model_dir)), common_args(config, tmp_path / "hf", "fp32", "cpu"),
                               run_dir)

    regression = run_dir / "regression"
    assert AutoConfig.from_pretrained(regression).num_labels == len(phase_attributes)
    phase = load_file(str(regression / "model.safetensors"))
    assert not torch.equal(phase[PROBE], load_file(str(Path(tiny_model_dir) / "model.safetensors"))[PROBE])
    row = phase_attributes.index(config.rm.head_attribute)
    head = trainer.model.score.weight.detach().clone()
    assert head.shape[0] == 1
    torch.testing.assert_close(head, phase["score.weight"][row : row + 1])  # scalar head = the attribute's row
    torch.testing.assert_close(trainer.model.state_dict()[PROBE], phase[PROBE])  # backbone from the phase

    result = trainer.train()
    assert trainer.state.global_step == 2 and math.isfinite(result.training_loss)
    assert not torch.equal(trainer.model.score.weight.detach(), head)
