"""Training steps that end a pipeline (`train:` in the pipeline YAML), run by the runner after its stages.

`plan_train_step` is the plug-in the CLI hands to factory.config.load_pipeline: it checks a step's
kind and training YAML while the pipeline loads (before any stage runs) and returns the step, which
the runner calls after the stages with the config it checked.

A step whose run already reached max_steps on the same rows is skipped (trainers.run), so a re-run
of a finished pipeline trains nothing; more data starts a new run, more `max_steps` resumes it. A
step whose query selects no rows (a `--limit` run whose answers all stopped at the length limit,
say) is skipped with the reason: the stages' data is kept and the run succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from factory.config import TrainStep
from factory.errors import ConfigError
from factory.store import Store
from trainers.config import KINDS, TrainConfig, load_train_config
from trainers.data import NoTrainingRows
from trainers.run import train


def narrowed(config: TrainConfig, where: str | None) -> TrainConfig:
    """The config with an extra SQL predicate on its training rows (`where:` of a step, `--where`)."""
    if where:
        config.data.where = f"({config.data.where}) AND ({where})" if config.data.where else where
    return config


@dataclass
class TrainStepRun:
    """A checked training step: `step(store, console)` trains (or skips) and returns the number of
    `training_runs` rows written (0 or 1)."""

    kind: str
    config_path: Path
    config: TrainConfig

    def __call__(self, store: Store, console: Console) -> int:
        label = f"train [bold]{self.kind}[/] ({self.config_path.name})"
        try:
            outcome = train(self.config, store)
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


def plan_train_step(step: TrainStep, base_dir: Path, source: str) -> TrainStepRun:
    """The step checked (factory.config.PlanTraining): `source` names it (`pipeline.yaml: train[0]`),
    errors add `.kind` or `.config`; the training YAML is relative to the pipeline's folder."""
    if step.kind not in KINDS:
        raise ConfigError(f"{source}.kind: unknown training kind {step.kind!r} (choose from {', '.join(KINDS)})")
    path = step.config if step.config.is_absolute() else base_dir / step.config
    if not path.is_file():
        raise ConfigError(f"{source}.config: training config {step.config} not found")
    try:
        config = load_train_config(path, step.kind)
    except ConfigError as exc:
        raise ConfigError(f"{source}.config: {exc}") from None
    return TrainStepRun(step.kind, path, narrowed(config, step.where))
