"""`factory train {sft,rm,dpo,simpo} --config train.yaml`: the CLI (factory/cli.py) calls it on use."""

from __future__ import annotations

import json

from factory.store import Store
from trainers.config import load_train_config
from trainers.pipeline import narrowed
from trainers.run import train


def train_command(kind: str, config_path: str, store: Store, where: str | None = None,
                  max_steps: int | None = None) -> int:
    config = narrowed(load_train_config(config_path, kind), where)
    if max_steps is not None:
        config.training.max_steps = max_steps
    outcome = train(config, store)
    record = outcome.record
    if outcome.already_done:
        print(f"run {record.run_name} already done on these rows: {record.steps} steps "
              f"(max_steps {config.training.max_steps}); nothing trained (raise --max-steps to continue it)")
        print(f"model: {record.final_model_path}")
        print(f"recorded in training_runs: id {record.id}")
        return 0
    loss = "n/a" if record.final_loss is None else f"{record.final_loss:.4f}"
    resumed = f" (resumed from step {record.resumed_from_step})" if record.resumed_from_step else ""
    print(f"trained {record.kind}/{record.method} on {record.train_rows} rows ({record.eval_rows} held out): "
          f"{record.steps} steps{resumed}, final loss {loss}, {record.seconds:.1f} s")
    print(f"eval: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in json.loads(record.eval_metrics).items()})}")
    print(f"model: {record.final_model_path}")
    print(f"recorded in training_runs: id {record.id}, data snapshot {record.data_ids_hash[:16]} "
          f"({record.data_row_count} rows)")
    return 0
