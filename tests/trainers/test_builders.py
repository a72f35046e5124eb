"""Each trainer builder, two steps in this process (fast; test_train_ray.py runs them inside Ray)."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.common import WorkerPayload, common_args, load_tokenizer, pick_precision
from trainers.config import load_train_config
from trainers.data import load_training_data
from trainers.ray_train import build_trainer
from tests.trainers.conftest import write_config

CASES = [
    ("sft", {"data": {"dataset": "responses"}}),
    ("sft", {"data": {"dataset": "responses"}, "lora": {"r": 4}}),
    ("dpo", {"data": {"dataset": "pairs"}}),
    ("simpo", {"data": {"dataset": "pairs"}}),
    ("rm", {"data": {"dataset": "pairs"}, "rm": {"objective": "margin"}}),
    ("rm", {"data": {"dataset": "pairs"}, "rm": {"objective": "scaled_bt"}}),
    ("rm", {"data": {"dataset": "ratings"}, "rm": {"objective": "regression"}}),
]


@pytest.mark.parametrize("kind, overrides", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_two_steps(kind, overrides, tmp_path, tiny_model_dir, train_store):
    config = load_train_config(write_config(tmp_path, tiny_model_dir, **overrides), kind)
    data = load_training_data(config, train_store)
    payload = WorkerPayload(config, data.train, data.eval, data.extra)
    trainer = build_trainer(payload, str(tiny_model_dir), common_args(config, tmp_path / "hf", "fp32", "cpu"),
                            tmp_path / "run")
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    result = trainer.train()
    assert trainer.state.global_step == 2 and math.isfinite(result.training_loss)
    changed = [n for n, p in trainer.model.named_parameters() if n in trainable and not torch.equal(p, trainable[n])]
    assert changed
    assert (tmp_path / "hf" / "checkpoint-2").is_dir()  # the last step is always saved
    if trainer.eval_dataset is not None:
        assert math.isfinite(trainer.evaluate()["eval_loss"])


def test_precision_follows_the_device():
    assert pick_precision("auto", "cpu") == "fp32"
    assert pick_precision("bf16", "cpu") == "fp32"  # TRL's bf16 default would fail on CPU
    assert pick_precision("fp16", "cuda") == "fp16"


def test_tokenizer_gets_a_pad_token(tiny_model_dir):
    assert load_tokenizer(str(tiny_model_dir)).pad_token is not None
