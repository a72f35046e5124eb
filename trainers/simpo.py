"""SimPO with TRL's CPO trainer: `loss_type="simpo"` and `cpo_alpha=0` (no NLL term), a
reference-free loss on the length-averaged log-probabilities with target margin γ (DESIGN.md §4).
Rows: preference pairs, as DPO's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase, Trainer

from trainers.common import Method, Rows, WorkerPayload, lora_config
from trainers.config import SimPOConfig
from trainers.dpo import preference_rows


def _cpo():
    # Moved to trl.experimental in recent releases; older ones export it at the top level.
    try:
        from trl.experimental.cpo import CPOConfig, CPOTrainer
    except ImportError:  # pragma: no cover - older TRL
        from trl import CPOConfig, CPOTrainer  # type: ignore[attr-defined,no-redef]
    return CPOConfig, CPOTrainer


class SimPO(Method):
    kind = "simpo"

    def rows(self, config: SimPOConfig, frame: pl.DataFrame, what: str) -> Rows:
        return preference_rows(frame, what)

    def trainer(self, payload: WorkerPayload, model_path: str, tokenizer: PreTrainedTokenizerBase,
                args: dict[str, Any], scratch: Path) -> Trainer:
        config = payload.config
        CPOConfig, CPOTrainer = _cpo()
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        simpo_args = CPOConfig(**args, loss_type="simpo", cpo_alpha=0.0, beta=config.simpo.beta,
                               simpo_gamma=config.simpo.gamma, max_length=config.training.max_length)
        return CPOTrainer(model=model, args=simpo_args, train_dataset=payload.train, eval_dataset=payload.eval,
                          processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
