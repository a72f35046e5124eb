"""Run a pipeline: check it, then for each stage read input, skip what is done, map, commit shards.

DESIGN.md §3: input rows = SQL over the store minus rows already in this stage's output (by the
stage's fingerprint and parent id), so a re-run does only what is missing.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from factory.config import CountInput, DatasetInput, Pipeline, PlannedStage, SeedInput
from factory.engines.metered import USAGE_KEY, Usage
from factory.errors import ConfigError, StoreError
from factory.models import BUNDLED, resolve_model
from factory.placement import EXECUTORS
from factory.seeds import read_seed_file
from factory.store import Store
from schemas import RunRecord, rows_to_arrow

RUNS_DATASET = "runs"


@dataclass
class StageSummary:
    stage: str
    output: str
    input_rows: int
    skipped_rows: int
    rows: int = 0
    error_rows: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_seconds: float = 0.0
    seconds: float = 0.0

    def add(self, batch: pa.Table) -> pa.Table:
        """Count a finished batch; returns it without the usage metadata the actor attached."""
        self.rows += batch.num_rows
        if "error" in batch.column_names:
            self.error_rows += batch.num_rows - batch.column("error").null_count
        raw = (batch.schema.metadata or {}).get(USAGE_KEY)
        if raw is not None:
            usage = Usage.from_json(raw)  # every engine call of the batch: turns, retries, scoring
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.engine_seconds += usage.seconds
        return batch.replace_schema_metadata(None)


def seed_dataset_name(stage: PlannedStage) -> str:
    assert isinstance(stage.spec.input, SeedInput)
    return stage.spec.input.dataset or re.sub(r"\W", "_", stage.spec.input.seed.stem)


class PipelineRunner:
    def __init__(self, pipeline: Pipeline, store: Store, limit: int | None = None,
                 executor: str | None = None, console: Console | None = None, retry_errors: bool = False):
        self.pipeline = pipeline
        self.store = store
        self.limit = limit
        self.retry_errors = retry_errors
        self.executor = executor or pipeline.config.executor
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._seed_tables: dict[int, pa.Table] = {}

    # ---- checks before any work ----------------------------------------------------------------

    def check(self) -> None:
        """Reject a pipeline whose stages read columns nothing writes; validate seed files."""
        self.store.ensure_writable()
        available = {info.name: set(info.columns) for info in self.store.datasets()}
        for stage in self.pipeline.stages:
            source = stage.spec.input
            if isinstance(source, SeedInput):
                table = read_seed_file(self.pipeline.seed_path(stage))  # a bad line fails here, before writing
                self._seed_tables[stage.index] = table
                dataset, columns, field = seed_dataset_name(stage), set(table.column_names), "input.seed"
                available.setdefault(dataset, set()).update(columns)  # later stages may read the seeds
            elif isinstance(source, CountInput):
                dataset, columns, field = "(count)", {"id", "index"}, "input.count"
            else:
                dataset, field = source.dataset, "input.dataset"
                if dataset not in available:
                    raise ConfigError(
                        f"{stage.path}.{field}: data set {dataset!r} is not in the store and no earlier stage writes it"
                    )
                columns = available[dataset]
            missing = [column for column in stage.stage_class.reads(stage.config) if column not in columns]
            if missing:
                raise ConfigError(
                    f"{stage.path}.{field}: stage '{stage.name}' reads column(s) {', '.join(missing)} that "
                    f"nothing writes to {dataset!r} (it has: {', '.join(sorted(columns))})"
                )
            available.setdefault(stage.output, set()).update(stage.stage_class.writes())

    # ---- running -------------------------------------------------------------------------------

    def prepare_models(self) -> None:
        """Convert bundled GGUF models here, once, with a word to the user, rather than silently
        inside the first actor (on a cluster each worker node still converts its own copy)."""
        names = {spec.name for stage in self.pipeline.stages for spec in stage.models.values()}
        for name in sorted(names):
            bundled = BUNDLED.get(name)
            if bundled and bundled.kind == "causal-lm" and not (bundled.cached_path() / "config.json").exists():
                self.console.print(f"preparing bundled model {name} (once; cached in {bundled.cached_path()})")
                resolve_model(name)

    def run(self) -> list[StageSummary]:
        self.check()
        self.prepare_models()
        self.console.print(f"run [bold]{self.run_id}[/] of pipeline '{self.pipeline.config.name}' "
                           f"on store {self.store.location} ({self.executor})")
        summaries = [self.run_stage(stage) for stage in self.pipeline.stages]
        for step in self.pipeline.config.train:
            # Imported by name on use: factory never imports the trainers package at load (DESIGN §2).
            run_train_step = importlib.import_module("trainers.pipeline").run_train_step
            run_train_step(step.kind, self.pipeline.train_config_path(step), self.store, step.where, self.console)
        return summaries

    def input_rows(self, stage: PlannedStage) -> pa.Table:
        source = stage.spec.input
        if isinstance(source, SeedInput):
            table = self._seed_tables[stage.index]
            dataset = seed_dataset_name(stage)
            # Seeds are loaded into the store once, so lineage joins work in SQL; re-loading adds nothing.
            self.store.append(dataset, self.store.without_done(dataset, table, against="id"))
        elif isinstance(source, CountInput):
            table = pa.table({"id": [str(i) for i in range(source.count)], "index": list(range(source.count))})
        else:
            assert isinstance(source, DatasetInput)
            where = f" WHERE {source.where}" if source.where else ""
            order = "created_at, id" if "created_at" in self.store.columns(source.dataset) else "id"
            try:
                table = self.store.arrow(f"SELECT * FROM {source.dataset}{where} ORDER BY {order}")
            except StoreError as exc:
                raise ConfigError(f"{stage.path}.input.where: {exc}") from None
        table = stage.stage_class.prepare_input(stage.config, table, self.store)
        return table.slice(0, self.limit) if self.limit is not None else table

    def run_stage(self, stage: PlannedStage) -> StageSummary:
        started = dt.datetime.now(dt.timezone.utc)
        clock = time.perf_counter()
        inputs = self.input_rows(stage)
        # Concurrent runs of one stage take turns; each computes what is missing once it holds the lock.
        with self.store.lock(f"{stage.output}-{stage.fingerprint}"):
            if self.retry_errors:
                self._retire_errors(stage, inputs)
            todo = self.store.without_done(stage.output, inputs, where=f"fingerprint = '{stage.fingerprint}'")
            summary = StageSummary(stage.name, stage.output, inputs.num_rows, inputs.num_rows - todo.num_rows)
            status, message = "completed", None
            try:
                if todo.num_rows:
                    self._map(stage, todo, summary)
            except BaseException as exc:
                status, message = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                summary.seconds = time.perf_counter() - clock
                self._record(stage, summary, status, message, started)
        self._print(summary)
        return summary

    def _retire_errors(self, stage: PlannedStage, inputs: pa.Table) -> None:
        """--retry-errors: drop this stage's error rows for these inputs, so they count as missing.
        Dropped before the retry, so an id is never stored twice; a crash in between only means the
        next run retries them again."""
        if "error" not in self.store.columns(stage.output) or inputs.num_rows == 0:
            return
        failed = self.store.arrow(
            f"SELECT id, parent_id FROM {stage.output} WHERE fingerprint = '{stage.fingerprint}' AND error IS NOT NULL"
        )
        wanted = set(inputs.column("id").to_pylist())
        ids = [row["id"] for row in failed.to_pylist() if row["parent_id"] in wanted]
        if ids:
            dropped = self.store.drop_rows(stage.output, ids)
            self.console.print(f"stage [bold]{stage.name}[/]: retrying {dropped} error rows")

    def _map(self, stage: PlannedStage, todo: pa.Table, summary: StageSummary) -> None:
        progress = Progress(TextColumn(f"[bold]{stage.name}[/]"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("rows in"), TimeElapsedColumn(), console=self.console, transient=True)
        with progress:
            task = progress.add_task(stage.name, total=todo.num_rows)
            for batch in EXECUTORS[self.executor](stage, self.run_id, todo):
                self.store.append(stage.output, summary.add(batch))  # the driver is the only writer
                progress.advance(task, len(set(batch.column("parent_id").to_pylist())))

    def _record(self, stage: PlannedStage, summary: StageSummary, status: str, message: str | None,
                started: dt.datetime) -> None:
        record = RunRecord(
            id=f"{self.run_id}/{stage.name}", run_id=self.run_id, pipeline=self.pipeline.config.name,
            stage=stage.name, status=status, output=stage.output, input_rows=summary.input_rows,
            skipped_rows=summary.skipped_rows, rows=summary.rows, error_rows=summary.error_rows,
            prompt_tokens=summary.prompt_tokens, completion_tokens=summary.completion_tokens,
            seconds=round(summary.seconds, 3), engine_seconds=round(summary.engine_seconds, 3),
            gpu_seconds=round(summary.seconds * stage.spec.resources.num_gpus * stage.spec.resources.concurrency, 3),
            config=json.dumps(stage.spec.model_dump(mode="json")),
            message=message, started_at=started, finished_at=dt.datetime.now(dt.timezone.utc),
        )
        self.store.append(RUNS_DATASET, rows_to_arrow([record], RunRecord))

    def _print(self, s: StageSummary) -> None:
        self.console.print(
            f"stage [bold]{s.stage}[/] -> {s.output}: {s.rows} rows ({s.error_rows} errors) from "
            f"{s.input_rows - s.skipped_rows} inputs, {s.skipped_rows} already done; "
            f"tokens in {s.prompt_tokens} out {s.completion_tokens}; {s.seconds:.1f}s "
            f"({s.engine_seconds:.1f}s in model calls)"
        )
