"""Pieces every trainer shares: device and precision, TRL config arguments, tokenizer, LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from factory.models import resolve_model
from trainers.config import TrainConfig


def device_kind(use_gpu: bool) -> str:
    return "cuda" if use_gpu and torch.cuda.is_available() else "cpu"


def pick_precision(requested: str, device: str) -> str:
    """bf16 only where the device supports it: TRL 1.16 configs default to bf16=True, which fails on CPU."""
    if requested != "auto":
        if device == "cpu" and requested != "fp32":
            return "fp32"  # mixed precision on CPU is refused by accelerate for fp16 and slow for bf16
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def common_args(config: TrainConfig, output_dir: Path, precision: str, device: str,
                max_steps: int | None = None, save: bool = True) -> dict[str, Any]:
    """Keyword arguments accepted by every TRL config (all subclass transformers.TrainingArguments)."""
    opt = config.training
    return {
        "output_dir": str(output_dir),
        "max_steps": max_steps or opt.max_steps,
        "learning_rate": opt.learning_rate,
        "per_device_train_batch_size": opt.batch_size,
        "per_device_eval_batch_size": opt.batch_size,
        "gradient_accumulation_steps": opt.gradient_accumulation_steps,
        "warmup_steps": opt.warmup_steps,
        "logging_steps": opt.logging_steps,
        "save_strategy": "steps" if save else "no",
        "save_steps": opt.save_steps,
        "save_total_limit": 1,  # Ray Train keeps its own copies; the HF folder is scratch
        "eval_strategy": "no",  # evaluated once at the end, see ray_train
        "seed": opt.seed,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": device == "cpu",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": True,
    }


def load_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_path(config: TrainConfig) -> str:
    """What from_pretrained loads: bundled names become their cached folder."""
    return resolve_model(config.model)


def lora_config(config: TrainConfig, task_type: str) -> Any:
    if config.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=config.lora.target_modules, task_type=task_type)
