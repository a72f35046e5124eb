"""Training steps that end a pipeline (`train:` in the pipeline YAML), run by the runner after its stages.

A step whose run already reached max_steps on the same rows is skipped (trainers.run), so a re-run
of a finished pipeline trains nothing; more data starts a new run, more `max_steps` resumes it. A
step whose query selects no rows (a `--limit` run whose answers all stopped at the length limit,
say) is skipped with the reason: the stages' data is kept and the run succeeds.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from factory.errors import ConfigError
from factory.store import Store
from trainers.config import TrainConfig, load_train_config
from trainers.data import NoTrainingRows
from trainers.run import train


def step_config(kind: str, config_path: Path, where: str | None, source: str) -> TrainConfig:
    """The step's training config, checked (called before the stages run, and again before training)."""
    try:
        config = load_train_config(config_path, kind)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if where:
        config.data.where = f"({config.data.where}) AND ({where})" if config.data.where else where
    return config


def run_train_step(kind: str, config_path: Path, store: Store, where: str | None, console: Console) -> int:
    """Train (or skip); returns the number of `training_runs` rows written (0 or 1)."""
    config = step_config(kind, config_path, where, f"train {kind}")
    label = f"train [bold]{kind}[/] ({config_path.name})"
    try:
        outcome = train(config, store)
    except NoTrainingRows as exc:
        console.print(f"{label}: skipped, no training rows: {escape(str(exc))}")
        return 0
    record = outcome.record
    if outcome.already_done:
        console.print(f"{label}: run {record.run_name} already done on these rows ({record.steps} steps); "
                      f"model {record.final_model_path}")
        return 0
    resumed = f" (resumed from step {record.resumed_from_step})" if record.resumed_from_step else ""
    console.print(f"{label} -> training_runs: {record.steps} steps{resumed}, final loss {record.final_loss}, "
                  f"model {record.final_model_path}, data snapshot {record.data_ids_hash[:16]} "
                  f"({record.data_row_count} rows); {record.seconds:.1f}s")
    return 1
