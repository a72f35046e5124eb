"""SFT with TRL's SFTTrainer: full fine-tuning or LoRA, assistant-only loss for conversations."""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer
from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from trainers.common import lora_config
from trainers.config import TrainConfig


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


def build_sft(config: TrainConfig, train: datasets.Dataset, eval_: datasets.Dataset | None, model_path: str,
              tokenizer: PreTrainedTokenizerBase, args: dict[str, Any]) -> SFTTrainer:
    assistant_only = config.sft.assistant_only_loss
    markers = assistant_only and template_marks_assistant(tokenizer)
    if assistant_only and not markers:
        train, eval_ = as_prompt_completion(train), as_prompt_completion(eval_)
    sft_args = SFTConfig(**args, max_length=config.training.max_length, assistant_only_loss=markers,
                         completion_only_loss=True if assistant_only and not markers else None)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    return SFTTrainer(model=model, args=sft_args, train_dataset=train, eval_dataset=eval_,
                      processing_class=tokenizer, peft_config=lora_config(config, "CAUSAL_LM"))
