"""One training run: select and check the rows, train in Ray, append the `training_runs` row."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

from factory.ids import stable_hash
from factory.store import Store
from schemas import rows_to_arrow
from schemas.training import TrainingRunRecord
from trainers.config import TrainConfig
from trainers.data import load_training_data
from trainers.ray_train import TrainingFailed, launch

RUNS_DATASET = "training_runs"


def run_name(config: TrainConfig) -> str:
    """KIND-<config hash>. max_steps and resume are left out so a longer run of the same config resumes."""
    if config.run_name:
        return config.run_name
    settings = config.model_dump(mode="json", exclude={"resume": True, "training": {"max_steps"}})
    return f"{config.kind}-{stable_hash(settings, length=10)}"


def hyperparameters(config: TrainConfig) -> dict:
    method = {"sft": config.sft, "dpo": config.dpo, "simpo": config.simpo, "rm": config.rm}[str(config.kind)]
    return {**config.training.model_dump(mode="json"), "lora": config.lora.model_dump() if config.lora else None,
            "ray": config.ray.model_dump(), str(config.kind): method.model_dump(mode="json")}


def train(config: TrainConfig, store: Store) -> TrainingRunRecord:
    """Everything that can be checked is checked before Ray starts; one row is appended either way."""
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    store.ensure_writable()
    data = load_training_data(config, store)
    name = run_name(config)
    run_dir = config.output_dir / name
    fields = {
        "id": f"{name}-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
        "run_name": name, "kind": str(config.kind), "method": config.method(), "base_model": config.model,
        "config": config.model_dump_json(), "hyperparameters": json.dumps(hyperparameters(config)),
        "data_query": data.snapshot.query, "data_store": data.snapshot.store,
        "data_row_count": len(data.snapshot.row_ids), "data_ids_hash": data.snapshot.ids_hash,
        "data_row_ids": data.snapshot.row_ids, "source_run_ids": data.snapshot.source_run_ids,
        "train_rows": len(data.train), "eval_rows": len(data.eval) if data.eval is not None else 0,
        "output_dir": str(run_dir), "num_workers": config.ray.num_workers, "started_at": started,
        "data_versions": json.dumps(data.snapshot.versions),
    }
    try:
        summary = launch(config, run_dir, data.train, data.eval, data.extra)
    except TrainingFailed as exc:
        _append(store, TrainingRunRecord(**fields, status="failed", message=str(exc), resumed_from_step=0, steps=0,
                                         metrics="[]", eval_metrics="{}", device="", precision="",
                                         seconds=time.perf_counter() - clock,
                                         finished_at=dt.datetime.now(dt.timezone.utc)))
        raise
    record = TrainingRunRecord(
        **fields, status="completed", checkpoint_path=summary["checkpoint"], final_model_path=summary["final_model"],
        resumed_from_step=summary["resumed_from_step"], steps=summary["steps"], final_loss=summary["final_loss"],
        metrics=json.dumps(summary["log_history"]), eval_metrics=json.dumps(summary["eval"]),
        device=summary["device"], precision=summary["precision"], seconds=time.perf_counter() - clock,
        finished_at=dt.datetime.now(dt.timezone.utc))
    _append(store, record)
    return record


def _append(store: Store, record: TrainingRunRecord) -> None:
    store.append(RUNS_DATASET, rows_to_arrow([record], TrainingRunRecord))
