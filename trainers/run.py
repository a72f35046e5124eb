"""One training run: select and check the rows, train in Ray, append the `training_runs` row."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

from factory.store import Store
from factory.store.names import TRAINING_RUNS_DATASET
from schemas import rows_to_arrow
from schemas.training import TrainingRunRecord
from trainers.artifacts import exists, run_name, runs_home
from trainers.common import WorkerPayload, direct_fit
from trainers.config import TrainConfig
from trainers.data import load_training_data
from trainers.methods import METHODS
from trainers.ray_train import TrainingFailed, launch


@dataclass(frozen=True)
class TrainOutcome:
    record: TrainingRunRecord
    already_done: bool  # the run had reached max_steps before: nothing trained, `record` is its row


def hyperparameters(config: TrainConfig) -> dict:
    return {**config.training.model_dump(mode="json"), "lora": config.lora.model_dump() if config.lora else None,
            "ray": config.ray.model_dump(), config.kind: config.options().model_dump(mode="json")}


def finished_run(store: Store, name: str, config: TrainConfig) -> TrainingRunRecord | None:
    """The latest completed row of run `name` when it reached max_steps and its model still exists.
    A multi-objective fit has no step count to continue: once completed, it is done."""
    if not store.has(TRAINING_RUNS_DATASET):
        return None
    rows = store.sql(f"SELECT * FROM {TRAINING_RUNS_DATASET} WHERE run_name = ? AND status = 'completed' "
                     "ORDER BY finished_at DESC LIMIT 1", [name]).to_dicts()
    if not rows or not rows[0]["final_model_path"] or not exists(rows[0]["final_model_path"]):
        return None
    if direct_fit(METHODS[config.kind], config) is None and rows[0]["steps"] < config.training.max_steps:
        return None
    return TrainingRunRecord.model_validate({k: v for k, v in rows[0].items() if k in TrainingRunRecord.model_fields})


def train(config: TrainConfig, store: Store) -> TrainOutcome:
    """Everything that can be checked is checked before Ray starts; one row is appended either way.
    A run that already reached max_steps on these rows is not trained again (nor past max_steps)."""
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    store.ensure_writable()
    data = load_training_data(config, store)
    home = runs_home(config, store)
    name = run_name(config, store, data.snapshot.ids_hash)
    done = finished_run(store, name, config) if config.resume else None
    if done is not None:
        return TrainOutcome(done, already_done=True)
    run_dir = f"{home}/{name}"
    fields = {
        "id": f"{name}-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
        "run_name": name, "kind": config.kind, "method": config.method(), "base_model": config.model,
        "config": config.model_dump_json(), "hyperparameters": json.dumps(hyperparameters(config)),
        "data_query": data.snapshot.query, "data_store": data.snapshot.store,
        "data_row_count": len(data.snapshot.row_ids), "data_ids_hash": data.snapshot.ids_hash,
        "data_row_ids": data.snapshot.row_ids, "source_run_ids": data.snapshot.source_run_ids,
        "train_rows": len(data.train), "eval_rows": len(data.eval) if data.eval is not None else 0,
        "output_dir": run_dir, "num_workers": config.ray.num_workers, "started_at": started,
        "data_versions": json.dumps(data.snapshot.versions),
    }
    try:
        summary = launch(WorkerPayload(config, data.train, data.eval, data.extra), home, name)
    except TrainingFailed as exc:
        _append(store, TrainingRunRecord(**fields, status="failed", message=str(exc), resumed_from_step=0, steps=0,
                                         metrics="[]", eval_metrics="{}", device="", precision="",
                                         seconds=time.perf_counter() - clock,
                                         finished_at=dt.datetime.now(dt.timezone.utc)))
        raise
    record = TrainingRunRecord(
        **fields, status="completed", checkpoint_path=summary.checkpoint, final_model_path=summary.final_model,
        resumed_from_step=summary.resumed_from_step, steps=summary.steps, final_loss=summary.final_loss,
        metrics=json.dumps(summary.log_history), eval_metrics=json.dumps(summary.eval),
        device=summary.device, precision=summary.precision, seconds=time.perf_counter() - clock,
        finished_at=dt.datetime.now(dt.timezone.utc))
    _append(store, record)
    # A checkpoint already at max_steps (its row lost, say) is reported again, untrained: done before.
    resumed_at_the_end = record.resumed_from_step > 0 and record.resumed_from_step >= record.steps
    return TrainOutcome(record, already_done=resumed_at_the_end)


def _append(store: Store, record: TrainingRunRecord) -> None:
    store.append(TRAINING_RUNS_DATASET, rows_to_arrow([record], TrainingRunRecord))
