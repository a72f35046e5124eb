"""SFT with TRL's SFTTrainer: full fine-tuning or LoRA, assistant-only loss for conversations.

Rows: a `messages` column as it is, else `prompt`/`instruction` + `response` (+ `system_prompt`) as
conversational `messages` (factory.formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import polars as pl
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from trl import SFTConfig as SFTConfig_
from trl import SFTTrainer
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from factory import formats
from trainers.common import Method, Rows, WorkerPayload, lora_config, require
from trainers.config import SFTConfig


def template_marks_assistant(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when TRL can mask non-assistant tokens itself: the template has `{% generation %}` markers,
    or TRL ships a training variant of it."""
    if tokenizer.chat_template is None:
        return False
    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        return False
    return True


def split_last_turn(example: dict[str, Any]) -> dict[str, Any]:
    """messages -> conversational prompt/completion at the last assistant turn.

    TRL's completion-only loss then trains on that turn alone: assistant-only loss for templates
    without generation markers (SmolLM2's, ChatML). Earlier assistant turns are context only.
    """
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": messages[last:last + 1]}


def as_prompt_completion(dataset: datasets.Dataset | None) -> datasets.Dataset | None:
    if dataset is None:
        return None
    return dataset.map(split_last_turn, remove_columns=["messages"])


class SFT(Method):
    kind = "sft"

    def rows(self, config: SFTConfig, frame: pl.DataFrame, what: str) -> Rows:
        if "messages" in frame.columns:
            return [{"messages": row["messages"]} for row in frame.iter_rows(named=True) if row["messages"]]
        require(frame, [formats.PROMPT, "response"], what + " (or a `messages` column)")
        return [{"messages": row["messages"]} for row in formats.sft_messages(frame)]

    def trainer(self, payload: WorkerPayload, model_path: str, tokenizer: PreTrainedTokenizerBase,
                args: dict[str, Any], scratch: Path) -> SFTTrainer:
        config, train, eval_ = payload.config, payload.train, payload.eval
        assistant_only = config.sft.assistant_only_loss
        markers = assistant_only and template_marks_assistant(tokenizer)
        if assistant_only and not markers:
            train, eval_ = as_prompt_completion(train), as_prompt_completion(eval_)
        sft_args = SFTConfig_(**args, max_length=config.training.max_length, assistant_only_loss=markers,
                              completion_only_loss=True if assistant_only and not markers else None)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        return SFTTrainer(model=model, args=sft_args, train_dataset=train, eval_dataset=eval_,
                          processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
