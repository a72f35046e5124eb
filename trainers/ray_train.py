"""Every trainer runs inside a Ray Train TorchTrainer: one CPU worker locally, N GPU workers on a cluster.

Checkpoints: TRL/transformers saves one every `save_steps` (and at the last step) in a scratch
folder of the worker; Ray's RayTrainReportCallback copies it into the run's Ray storage
(`HOME/RUN_NAME/checkpoint_*`, HOME from trainers.artifacts: the store's `_artifacts/train-runs` or
`output_dir`, local or s3://). Resume: Ray restores the run's checkpoint list from that storage when
the same run name starts again, `ray.train.get_checkpoint()` returns the latest, and transformers
continues from its step. A checkpoint already at `max_steps` is reported again, untrained: a run
never trains past `max_steps`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.trainer_utils import get_last_checkpoint

from factory.errors import FactoryError
from trainers.artifacts import as_location, ray_storage
from trainers.common import (
    RunSummary,
    WorkerPayload,
    common_args,
    direct_fit,
    device_kind,
    load_tokenizer,
    model_path,
    pick_precision,
)
from trainers.methods import METHODS

CHECKPOINT_SUBDIR = "checkpoint"  # where RayTrainReportCallback puts the transformers checkpoint
FINAL_SUBDIR = "final"  # the trained model (or adapter, or scorer) in the run's last checkpoint
SUMMARY_FILE = "summary.json"


class TrainingFailed(FactoryError):
    """The Ray Train run raised; the message is the worker's error."""


def build_trainer(payload: WorkerPayload, path: str, args: dict[str, Any], scratch: Path) -> Trainer:
    """The method's trainer (trainers.methods.METHODS) on the payload's rows."""
    return METHODS[payload.config.kind].trainer(payload, path, load_tokenizer(path), args, scratch)


def _step_of(checkpoint_dir: Path) -> int:
    state = checkpoint_dir / "trainer_state.json"
    return int(json.loads(state.read_text())["global_step"]) if state.exists() else 0


def _report_callback() -> Any:
    from ray.train.huggingface.transformers import RayTrainReportCallback

    class IntermediateReports(RayTrainReportCallback):
        """Reports checkpoints before the last step; the last goes with the final report (one copy, with
        the summary), because Ray's Result keeps only the metrics reported with a checkpoint."""

        def on_save(self, args, state, control, **kwargs):
            if state.global_step < state.max_steps:
                super().on_save(args, state, control, **kwargs)

    return IntermediateReports()


def _final_report(summary: RunSummary, rank: int, trainer: Trainer | None = None,
                  fill: Callable[[Path], None] | None = None) -> None:
    """Rank 0 reports a checkpoint with `checkpoint/` (resume state), `final/` (the model) and `summary.json`."""
    import ray.train

    metrics = {"step": summary.steps, "loss": summary.final_loss}
    if rank != 0:
        ray.train.report(metrics=metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if trainer is not None:
            last = get_last_checkpoint(trainer.args.output_dir) or summary.resume_source
            if last:
                shutil.copytree(last, folder / CHECKPOINT_SUBDIR)
            trainer.save_model(str(folder / FINAL_SUBDIR))  # the adapter only, under LoRA
            trainer.processing_class.save_pretrained(str(folder / FINAL_SUBDIR))
        if fill is not None:
            fill(folder / FINAL_SUBDIR)
        (folder / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), default=float))
        ray.train.report(metrics=metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def worker_loop(loop_config: dict[str, WorkerPayload]) -> None:
    """Runs in each Ray Train worker. Transformers' own checkpoints go to a scratch folder on the
    worker's disk; what survives is what Ray copies into the run's storage."""
    with tempfile.TemporaryDirectory(prefix="factory-train-") as scratch:
        _train(loop_config["payload"], Path(scratch))


def _train(payload: WorkerPayload, scratch: Path) -> None:
    import ray.train

    config, method = payload.config, METHODS[payload.config.kind]
    device = device_kind(config.ray.use_gpu)
    precision = pick_precision(config.training.precision, device)
    rank = ray.train.get_context().get_world_rank()
    path = model_path(config)
    summary = RunSummary(device=device, precision=precision, train_rows=len(payload.train))

    if (direct := direct_fit(method, config)) is not None:  # no steps to checkpoint (multi-objective): one worker fits
        def fit(out: Path) -> None:
            for key, value in direct.fit(payload, path, out).items():  # before summary.json is written
                setattr(summary, key, value)

        _final_report(summary, rank, fill=fit if rank == 0 else None)
        return

    checkpoint = ray.train.get_checkpoint() if config.resume else None
    with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(None) as folder:
        source = Path(folder) / CHECKPOINT_SUBDIR if folder is not None else None
        step = _step_of(source) if source is not None else 0
        if source is not None and step >= config.training.max_steps:
            _report_finished(Path(folder), step, config.training.max_steps, rank)
            return
        trainer = build_trainer(payload, path, common_args(config, scratch / "hf", precision, device), scratch)
        trainer.add_callback(_report_callback())
        if source is not None:
            summary.resumed_from_step, summary.resume_source = step, str(source)
        trainer.train(resume_from_checkpoint=str(source) if source is not None else None)
        _finish(trainer, summary, rank)  # inside: the resume source may be all there is to copy


def _report_finished(folder: Path, step: int, max_steps: int, rank: int) -> None:
    """The restored checkpoint is at or past max_steps: report it again as this run's result,
    training nothing (transformers would otherwise take another step past max_steps)."""
    import ray.train

    if not (folder / SUMMARY_FILE).exists():  # an intermediate checkpoint: there is no final model to give
        raise TrainingFailed(f"the run's last checkpoint is at step {step}, past max_steps {max_steps}, and holds "
                             "no final model; raise max_steps to finish it, or set resume: false to start over")
    summary = RunSummary.from_dict(json.loads((folder / SUMMARY_FILE).read_text()))
    summary.resumed_from_step = summary.steps = step
    metrics = {"step": step, "loss": summary.final_loss}
    if rank != 0:
        ray.train.report(metrics=metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        (Path(tmp) / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), default=float))
        ray.train.report(metrics=metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _finish(trainer: Trainer, summary: RunSummary, rank: int) -> None:
    summary.eval = trainer.evaluate() if trainer.eval_dataset is not None else {}
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    summary.steps, summary.log_history = trainer.state.global_step, logs
    summary.final_loss = float(logs[-1]["loss"]) if logs else None
    _final_report(summary, rank, trainer=trainer)


def launch(payload: WorkerPayload, home: str, name: str) -> RunSummary:
    """Fit in a TorchTrainer whose storage is `home/name`; returns the workers' summary plus the
    locations of the last checkpoint and the final model (URLs on an object store)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from factory.placement import ensure_ray

    ensure_ray()
    config = payload.config
    storage_path, filesystem = ray_storage(home)
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"payload": payload},
        scaling_config=ray.train.ScalingConfig(num_workers=config.ray.num_workers, use_gpu=config.ray.use_gpu,
                                               resources_per_worker={"CPU": config.ray.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=name, storage_path=storage_path, storage_filesystem=filesystem,
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error; keep its message
        cause = exc.__cause__ or exc
        raise TrainingFailed(f"training run {name} failed: {type(cause).__name__}: "
                             f"{str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}") from exc
    if result.checkpoint is None:
        raise TrainingFailed(f"training run {name} reported no checkpoint")
    with result.checkpoint.filesystem.open_input_file(f"{result.checkpoint.path}/{SUMMARY_FILE}") as handle:
        summary = RunSummary.from_dict(json.loads(handle.read()))
    summary.checkpoint = as_location(home, result.checkpoint.path)
    summary.final_model = f"{summary.checkpoint}/{FINAL_SUBDIR}"
    return summary
