"""Data set `training_runs`: one row per `factory train` invocation (trainers/).

The data snapshot (query, store, row count, a hash and the list of the row ids, source run ids) lets a
team say later exactly which rows trained which checkpoint.
"""

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class TrainingRunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique id of this invocation (run_name + start time).")
    run_name: str = Field(description="Training run folder name; re-running with the same name resumes it.")
    kind: str = Field(description="'sft', 'rm', 'dpo' or 'simpo'.")
    method: str = Field(description="The loss: sft, dpo, simpo, bt, margin, scaled_bt, regression, "
                                    "regression_then_scaled_bt or multi_objective.")
    status: str = Field(description="'completed' or 'failed'.")
    message: str | None = Field(default=None, description="Error message when status is 'failed'.")
    base_model: str = Field(description="Model name as given (bundled name, folder or hub id).")
    config: str = Field(description="The whole training config as JSON.")
    hyperparameters: str = Field(description="Optimisation settings (steps, lr, batch, LoRA, precision) as JSON.")
    data_query: str = Field(description="The SQL that selected the training rows.")
    data_store: str = Field(description="Store location the query ran against.")
    data_row_count: int = Field(description="Rows the query returned (train + eval).")
    data_ids_hash: str = Field(description="sha256 over the sorted row ids: equal hashes mean equal snapshots.")
    data_row_ids: list[str] = Field(description="The ids of the rows used, sorted.")
    source_run_ids: list[str] = Field(description="Distinct `run_id`s of the rows (the factory runs that made them).")
    train_rows: int = Field(description="Examples trained on (after the held-out split and format conversion).")
    eval_rows: int = Field(description="Held-out examples evaluated at the end.")
    output_dir: str = Field(description="Folder of the run: Ray checkpoints and the final model.")
    checkpoint_path: str | None = Field(default=None, description="Last Ray Train checkpoint of this run.")
    final_model_path: str | None = Field(default=None, description="Saved final model, adapter or scorer.")
    resumed_from_step: int = Field(description="Global step the run resumed from (0 for a fresh run).")
    steps: int = Field(description="Global step reached.")
    final_loss: float | None = Field(default=None, description="Training loss of the last logging step.")
    metrics: str = Field(description="Per logging step metrics (loss, learning rate, ...) as a JSON list.")
    eval_metrics: str = Field(description="Held-out evaluation as JSON: SFT eval loss, RM pair accuracy, "
                                          "DPO/SimPO reward accuracy and margins.")
    device: str = Field(description="Device the workers trained on ('cpu', 'cuda').")
    precision: str = Field(description="'bf16', 'fp16' or 'fp32', picked from the device unless set.")
    num_workers: int = Field(description="Ray Train workers.")
    seconds: float = Field(description="Wall seconds of the whole invocation.")
    started_at: dt.datetime
    finished_at: dt.datetime
    data_versions: str | None = Field(default=None, description="JSON: data set -> Delta table version the training "
                                      "rows were read at; `factory sql --as-of ID` reads the store as it was then.")
