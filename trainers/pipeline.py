"""Training steps that end a pipeline (`train:` in the pipeline YAML), run by the runner after its stages.

A step whose run already completed on the same rows with at least as many steps is skipped, so a
re-run of a finished pipeline trains nothing; more data or more `max_steps` resumes the run.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from factory.store import Store
from trainers.config import load_train_config
from trainers.data import load_training_data
from trainers.run import RUNS_DATASET, run_name, train


def run_train_step(kind: str, config_path: Path, store: Store, where: str | None, console: Console) -> int:
    """Train (or skip); returns the number of `training_runs` rows written (0 or 1)."""
    config = load_train_config(config_path, kind)
    if where:
        config.data.where = f"({config.data.where}) AND ({where})" if config.data.where else where
    name = run_name(config)
    snapshot = load_training_data(config, store).snapshot
    if store.has(RUNS_DATASET):
        done = store.sql(
            f"SELECT steps FROM {RUNS_DATASET} WHERE run_name = ? AND status = 'completed' "
            "AND data_ids_hash = ? ORDER BY finished_at DESC LIMIT 1", [name, snapshot.ids_hash]
        )
        if done.height and done["steps"][0] >= config.training.max_steps:
            console.print(f"train [bold]{kind}[/] ({config_path.name}): run {name} already done on these rows")
            return 0
    record = train(config, store)
    console.print(f"train [bold]{kind}[/] ({config_path.name}) -> training_runs: {record.steps} steps, final loss "
                  f"{record.final_loss}, model {record.final_model_path}, data snapshot {record.data_ids_hash[:16]} "
                  f"({record.data_row_count} rows); {record.seconds:.1f}s")
    return 1
