"""Reward models. BT and margin BT are TRL's RewardTrainer as is (a `margin` column switches the
margin on). Scaled BT and attribute regression, which TRL lacks, are small subclasses (DESIGN.md §4):

- scaled BT: m·(−log σ(r_c − r_r)), m = |preference strength| (HelpSteer2-Preference);
- regression: one head per HelpSteer attribute, MSE, missing labels (NaN) masked;
- regression_then_scaled_bt: the HelpSteer2-Preference recipe (arXiv 2410.01257), a regression model
  on `rm.regression_attributes` (default: `head_attribute` alone, the paper's helpfulness-only model)
  whose `head_attribute` row initialises the scalar head of a scaled-BT model trained from it;
- multi_objective: ArmoRM on a frozen backbone, fitted without a Trainer (trainers/multi_objective.py).

Rows: preference pairs (factory.formats) plus `margin` or `scale`; rating rows as conversational
`prompt`/`completion` plus `labels`, one float per attribute (None = missing, masked in the loss).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import datasets
import polars as pl
import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from trl import RewardConfig as RewardConfig_
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from factory import formats
from trainers.common import DirectFit, Extra, Rows, WorkerPayload, lora_config, require
from trainers.config import RewardConfig
from trainers.dpo import preference_rows
from trainers.multi_objective import train_multi_objective


def scaled_bt_loss(chosen: torch.Tensor, rejected: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """mean over pairs of |scale|·(−log σ(r_c − r_r))."""
    return (scale.abs() * -nn.functional.logsigmoid(chosen - rejected)).mean()


def regression_loss(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE over the labelled (non-NaN) entries only; 0 when a batch has no label at all."""
    mask = ~torch.isnan(labels)
    if not mask.any():
        return predictions.sum() * 0.0  # keeps the graph, contributes nothing
    return ((predictions - torch.nan_to_num(labels)) ** 2)[mask].mean()


class ScaledCollator(DataCollatorForPreference):
    """TRL's preference collator, also carrying each pair's `scale`."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        output["scale"] = torch.tensor([example["scale"] for example in examples], dtype=torch.float)
        return output


class ScaledBTRewardTrainer(RewardTrainer):
    """RewardTrainer with the scaled-BT loss; TRL's forward pass and metrics are kept."""

    def __init__(self, *args: Any, **kwargs: Any):
        tokenizer = kwargs["processing_class"]
        kwargs.setdefault("data_collator", ScaledCollator(pad_token_id=tokenizer.pad_token_id))
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "scale"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scale = inputs.pop("scale")
        _, outputs = super().compute_loss(model, inputs, return_outputs=True)
        chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        loss = scaled_bt_loss(chosen, rejected, scale.to(chosen.dtype))
        return (loss, outputs) if return_outputs else loss


def tokenize_rated(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> datasets.Dataset:
    """prompt + completion rendered with the chat template -> input_ids (truncated), labels kept."""

    def encode(example: dict[str, Any]) -> dict[str, Any]:
        text = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        labels = [math.nan if value is None else float(value) for value in example["labels"]]
        return {"input_ids": ids, "labels": labels}

    return dataset.map(encode, remove_columns=[c for c in dataset.column_names if c != "labels"])


class RatedCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            ids[row, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
            mask[row, : len(example["input_ids"])] = 1
        labels = torch.tensor([[math.nan if v is None else v for v in e["labels"]] for e in examples], dtype=torch.float)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class RegressionRewardTrainer(Trainer):
    """One output per attribute on a sequence-classification model, trained with masked MSE."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        loss = regression_loss(outputs.logits.float(), labels)
        return (loss, outputs) if return_outputs else loss


def _classifier(model_path: str, num_labels: int, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=num_labels, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token
    if num_labels > 1:
        model.config.problem_type = "regression"
    return model


def build_regression(config: RewardConfig, train: datasets.Dataset, eval_: datasets.Dataset | None, model_path: str,
                     tokenizer: PreTrainedTokenizerBase, args: dict[str, Any], attributes: list[str]) -> Trainer:
    """One output per attribute of `attributes` (the order of each row's `labels`)."""
    model = _classifier(model_path, len(attributes), tokenizer)
    peft = lora_config(config, "SEQ_CLS")
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)
    encode = lambda d: None if d is None else tokenize_rated(d, tokenizer, config.training.max_length)  # noqa: E731
    return RegressionRewardTrainer(model=model, args=TrainingArguments(**{**args, "remove_unused_columns": False}),
                                   train_dataset=encode(train), eval_dataset=encode(eval_),
                                   data_collator=RatedCollator(tokenizer.pad_token_id), processing_class=tokenizer)


def regression_phase(config: RewardConfig, rated: datasets.Dataset, model_path: str,
                     tokenizer: PreTrainedTokenizerBase, args: dict[str, Any], target: Path) -> Path:
    """Train the regression model once (kept in `target`, so a resumed run skips it) and save it merged."""
    if (target / "config.json").exists():
        return target
    phase_args = {**args, "output_dir": str(target) + "-scratch", "save_strategy": "no",
                  "max_steps": config.rm.regression_steps or config.training.max_steps}
    trainer = build_regression(config, rated, None, model_path, tokenizer, phase_args,
                               config.rm.regression_phase_attributes)
    trainer.train()
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # the next phase starts from plain weights
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def _scalar_from_regression(folder: Path, config: RewardConfig, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
    regression = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    row = config.rm.regression_phase_attributes.index(config.rm.head_attribute)
    # A 1-row head (new when the phase had several attributes, hence ignore_mismatched_sizes) starts as
    # the head attribute's row; with a one-attribute phase it is that row already.
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, ignore_mismatched_sizes=True,
                                                               dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.problem_type = None
    with torch.no_grad():
        model.score.weight.copy_(regression.score.weight[row : row + 1])
    return model


def regression_rows(frame: pl.DataFrame, attributes: list[str], what: str) -> Rows:
    require(frame, [formats.PROMPT, "response", *attributes], what)
    prompt = formats.prompt_column(frame.columns)
    return [{"prompt": formats.user_turns(row, prompt), "completion": formats.assistant(row["response"]),
             "labels": [None if row[a] is None else float(row[a]) for a in attributes]}
            for row in frame.iter_rows(named=True) if row["response"] is not None]


def _pairs(frame: pl.DataFrame, what: str) -> list[dict[str, Any]]:
    require(frame, formats.pair_needs(frame.columns), what)
    return formats.preference_pairs(frame)


class Reward(DirectFit):
    kind = "rm"

    def rows(self, config: RewardConfig, frame: pl.DataFrame, what: str) -> Rows:
        objective = config.rm.objective
        if objective in ("regression", "multi_objective"):
            return regression_rows(frame, config.rm.attributes, what)
        if objective == "bt":
            return preference_rows(frame, what)
        trl = lambda p: {"prompt": p["prompt"], "chosen": formats.assistant(p["chosen"]),  # noqa: E731
                         "rejected": formats.assistant(p["rejected"])}
        if objective == "margin":
            if "margin" not in frame.columns:
                require(frame, ["margin|preference_strength"], what)
            return [trl(p) | {"margin": float(p["margin"])} for p in _pairs(frame, what)]
        # scaled_bt (and the scaled-BT phase of regression_then_scaled_bt): the loss weight is |strength|
        require(frame, ["preference_strength"], what)
        return [trl(p) | {"scale": float(abs(p["strength"]))} for p in _pairs(frame, what)]

    def extras(self, config: RewardConfig) -> list[Extra]:
        rm = config.rm
        if rm.objective == "regression_then_scaled_bt":
            return [Extra("regression", rm.regression_data, "rm.regression_data", "regression phase",
                          lambda frame: regression_rows(frame, rm.regression_phase_attributes,
                                                        "rm.regression_data for the regression phase"))]
        if rm.objective == "multi_objective" and rm.pairs is not None:
            return [Extra("pairs", rm.pairs, "rm.pairs", "gating pairs", lambda frame: preference_rows(frame, "rm.pairs"))]
        return []

    def trainer(self, payload: WorkerPayload, model_path: str, tokenizer: PreTrainedTokenizerBase,
                args: dict[str, Any], scratch: Path) -> Trainer:
        config, train, eval_ = payload.config, payload.train, payload.eval
        objective = config.rm.objective
        if objective == "regression":
            return build_regression(config, train, eval_, model_path, tokenizer, args, config.rm.attributes)
        reward_args = RewardConfig_(**args, max_length=config.training.max_length)
        if objective == "regression_then_scaled_bt":
            folder = regression_phase(config, payload.extra["regression"], model_path, tokenizer, args,
                                      scratch / "regression")
            model = _scalar_from_regression(folder, config, tokenizer)
        else:
            model = _classifier(model_path, 1, tokenizer)
        trainer_class = RewardTrainer if objective in ("bt", "margin") else ScaledBTRewardTrainer
        return trainer_class(model=model, args=reward_args, train_dataset=train, eval_dataset=eval_,
                             processing_class=tokenizer, peft_config=lora_config(config, "SEQ_CLS"))

    def fits_directly(self, config: RewardConfig) -> bool:
        return config.rm.objective == "multi_objective"  # a fit on frozen embeddings: one worker does it

    def fit(self, payload: WorkerPayload, model_path: str, out: Path) -> dict[str, Any]:
        result = train_multi_objective(payload.config, payload.train, payload.eval, model_path, out,
                                       payload.extra.get("pairs"))
        weights = {f"weight_{k}": v for k, v in result.pop("mixing_weights").items()}
        return result | {"eval": {**result["eval"], **weights}}
