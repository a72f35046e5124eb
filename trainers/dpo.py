"""DPO with TRL's DPOTrainer: summed log-probabilities against a frozen reference (the base model;
with LoRA, the adapter switched off). Rows: preference pairs in TRL's conversational format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from trl import DPOConfig as DPOConfig_
from trl import DPOTrainer

from factory import formats
from trainers.common import Method, Rows, WorkerPayload, lora_config, require
from trainers.config import DPOConfig


def preference_rows(frame: pl.DataFrame, what: str) -> Rows:
    """Conversational prompt/chosen/rejected from either pair layout (factory.formats), columns checked."""
    require(frame, formats.pair_needs(frame.columns), what)
    return formats.preference_rows(frame)


class DPO(Method):
    kind = "dpo"

    def rows(self, config: DPOConfig, frame: pl.DataFrame, what: str) -> Rows:
        return preference_rows(frame, what)

    def trainer(self, payload: WorkerPayload, model_path: str, tokenizer: PreTrainedTokenizerBase,
                args: dict[str, Any], scratch: Path) -> DPOTrainer:
        config = payload.config
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        dpo_args = DPOConfig_(**args, beta=config.dpo.beta, max_length=config.training.max_length)
        return DPOTrainer(model=model, args=dpo_args, train_dataset=payload.train, eval_dataset=payload.eval,
                          processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
