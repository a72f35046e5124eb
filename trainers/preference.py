"""Preference optimisation: DPO with TRL's DPOTrainer, SimPO with TRL's CPO trainer.

SimPO is CPO with `loss_type="simpo"` and `cpo_alpha=0` (no NLL term): a reference-free loss on the
length-averaged log-probabilities with target margin γ (DESIGN.md §4). DPO sums log-probs instead
and keeps a frozen reference (the base model; with LoRA, the adapter switched off).
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase, Trainer
from trl import DPOConfig, DPOTrainer

from trainers.common import lora_config
from trainers.config import TrainConfig


def _cpo():
    # Moved to trl.experimental in recent releases; older ones export it at the top level.
    try:
        from trl.experimental.cpo import CPOConfig, CPOTrainer
    except ImportError:  # pragma: no cover - older TRL
        from trl import CPOConfig, CPOTrainer  # type: ignore[attr-defined,no-redef]
    return CPOConfig, CPOTrainer


def build_preference(config: TrainConfig, train: datasets.Dataset, eval_: datasets.Dataset | None,
                     model_path: str, tokenizer: PreTrainedTokenizerBase, args: dict[str, Any]) -> Trainer:
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    peft = lora_config(config, "CAUSAL_LM")
    if config.kind == "dpo":
        dpo_args = DPOConfig(**args, beta=config.dpo.beta, max_length=config.training.max_length)
        return DPOTrainer(model=model, args=dpo_args, train_dataset=train, eval_dataset=eval_,
                          processing_class=tokenizer, peft_config=peft)
    CPOConfig, CPOTrainer = _cpo()
    simpo_args = CPOConfig(**args, loss_type="simpo", cpo_alpha=0.0, beta=config.simpo.beta,
                           simpo_gamma=config.simpo.gamma, max_length=config.training.max_length)
    return CPOTrainer(model=model, args=simpo_args, train_dataset=train, eval_dataset=eval_,
                      processing_class=tokenizer, peft_config=peft)
