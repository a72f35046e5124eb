"""Pieces every method shares: the `Method` interface, the worker's payload and the run's summary,
device and precision, TRL config arguments, tokenizer, LoRA."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import polars as pl
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Trainer

from factory.columns import require_columns
from factory.errors import FactoryError
from factory.models import resolve_model
from trainers.config import DataSource, TrainConfig


class TrainingDataError(FactoryError):
    """The selected rows cannot train this kind of model (no rows, missing columns)."""


class NoTrainingRows(TrainingDataError):
    """The query selected no usable rows (a pipeline's training step skips; `factory train` fails)."""


def require(frame: pl.DataFrame, needs: list[str], what: str) -> None:
    """Each need is a column or 'a|b' alternatives; one message names every missing one."""
    require_columns(needs, frame.columns, what, "the rows have", TrainingDataError)


Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Extra:
    """A second selection a method trains on (the regression phase's ratings, the gate's pairs)."""

    name: str  # its key in WorkerPayload.extra
    source: DataSource
    what: str  # the config field, in errors: "rm.regression_data"
    label: str  # what the recorded query calls it: "regression phase"
    rows: Callable[[pl.DataFrame], Rows]


@dataclass
class WorkerPayload:
    """What each Ray Train worker gets: the checked config and the converted rows."""

    config: TrainConfig
    train: datasets.Dataset
    eval: datasets.Dataset | None
    extra: dict[str, datasets.Dataset] = field(default_factory=dict)


@dataclass
class RunSummary:
    """What a run reports (its checkpoint's summary.json), then recorded in `training_runs`."""

    device: str
    precision: str
    train_rows: int
    resumed_from_step: int = 0
    steps: int = 0
    final_loss: float | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)
    resume_source: str | None = None
    checkpoint: str | None = None  # set by the driver: where the run's last checkpoint is
    final_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunSummary:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


class Method(ABC):
    """One training method: how store rows become its data set, and the trainer that fits it.
    trainers/methods.py finds them by kind."""

    kind: str

    @abstractmethod
    def rows(self, config: Any, frame: pl.DataFrame, what: str) -> Rows:
        """Store rows -> TRL-format records; missing columns raise TrainingDataError naming them."""

    def extras(self, config: Any) -> list[Extra]:
        """Further selections the method needs besides `data` (none by default)."""
        return []

    @abstractmethod
    def trainer(self, payload: WorkerPayload, model_path: str, tokenizer: PreTrainedTokenizerBase,
                args: dict[str, Any], scratch: Path) -> Trainer:
        """The transformers/TRL trainer, built from TRL's config arguments `args` (common_args)."""


class DirectFit(Method):
    """A method that, for some configs, fits without a Trainer (no steps to checkpoint): `fit` then
    runs on one worker."""

    @abstractmethod
    def fits_directly(self, config: Any) -> bool:
        """True when this config fits directly rather than through `trainer`."""

    @abstractmethod
    def fit(self, payload: WorkerPayload, model_path: str, out: Path) -> dict[str, Any]:
        """Fit and save the model to `out`; returns RunSummary fields (steps, final_loss, log_history, eval)."""


def direct_fit(method: Method, config: Any) -> DirectFit | None:
    """The method, when it fits this config directly; None when a Trainer fits it."""
    return method if isinstance(method, DirectFit) and method.fits_directly(config) else None


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
