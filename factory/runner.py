"""Run a pipeline: check it, then for each stage read input, skip what is done, map, commit shards.

DESIGN.md §3: input rows = SQL over the store minus rows already in this stage's output (by the
stage's fingerprint and parent id), so a re-run does only what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from factory.columns import missing_columns
from factory.config import CountInput, Pipeline, PlannedStage, SeedInput
from factory.engines.metered import USAGE_KEY, Span, Usage, busy_seconds, merge_spans
from factory.engines.shared import SharedEngines
from factory.errors import ConfigError, StoreError
from factory.models import BUNDLED, resolve_model
from factory.placement import EXECUTORS, ensure_ray, ray_request
from factory.inputs import StageInput
from factory.ray_logs import ray_log_path
from factory.schedule import Scheduler, UpstreamFinished, plan
from factory.seeds import SeedScan, read_seed_chunks, scan_seed_file
from factory.store import Store
from factory.store.names import STAGE_RUNS_DATASET
from schemas import RunRecord, rows_to_arrow

POLL_SECONDS = 1.0  # a streaming stage with nothing to do looks at its input again after this long


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
    seconds: float = 0.0
    processed_inputs: int = 0
    busy: list[Span] = field(default_factory=list)  # the engine calls' spans, merged as they come

    @property
    def engine_seconds(self) -> float:
        """Seconds in which at least one model call of the stage ran (calls in flight together count once)."""
        return busy_seconds(self.busy)

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
            self.busy = merge_spans(self.busy + usage.spans)
        return batch.replace_schema_metadata(None)


class PipelineRunner:
    def __init__(self, pipeline: Pipeline, store: Store, limit: int | None = None,
                 executor: str | None = None, console: Console | None = None, retry_errors: bool = False,
                 streaming: bool | None = None, share_engines: bool = True):
        self.pipeline = pipeline
        self.store = store
        self.limit = limit
        self.retry_errors = retry_errors
        self.executor = executor or pipeline.config.executor
        self.streaming = pipeline.config.streaming if streaming is None else streaming
        self.share_engines = share_engines or self.streaming
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._seeds: dict[int, SeedScan] = {}  # per seed stage: its checked file (no rows held)
        self.scheduler: Scheduler | None = None
        # One line per running stage: rows in (of those known so far), rows out, errors, rate.
        self.progress = Progress(TextColumn("[bold]{task.fields[stage]}[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("rows in, {task.fields[rows]} out, {task.fields[errors]} errors, "
                                            "{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                                 console=self.console, transient=True)
        self._tasks: dict[int, TaskID] = {}
        self._clocks: dict[int, float] = {}

    # ---- checks before any work ----------------------------------------------------------------

    def check(self) -> None:
        """Reject a pipeline whose stages read columns nothing writes; validate seed files."""
        self.store.ensure_writable()
        available = {info.name: set(info.columns) for info in self.store.datasets()}
        for stage in self.pipeline.stages:
            source = stage.spec.input
            if isinstance(source, SeedInput):
                # The whole file (or its first --limit rows), streaming: a bad line fails here, before writing.
                scan = self._seeds[stage.index] = scan_seed_file(self.pipeline.seed_path(stage), self.limit)
                dataset, columns, field = self.pipeline.seed_dataset(stage), set(scan.schema.names), "input.seed"
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
            missing = missing_columns(stage.stage_class.reads(stage.config), columns)
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
        mode = "streaming" if self.streaming else "sequential"
        self.console.print(f"run [bold]{self.run_id}[/] of pipeline '{self.pipeline.config.name}' "
                           f"on store {self.store.location} ({self.executor}, {mode})")
        if self.executor == "ray":
            ensure_ray()  # here, in the driver's main thread, not in the first stage's thread
            if (log := ray_log_path()) is not None:
                self.console.print(f"Ray's own log lines go to {log}")
        self.load_seeds()
        # Each distinct model loads once for the whole run; released before any training step.
        with SharedEngines(self.executor, thread_safe=self.streaming) as engines, self.progress:
            if self.streaming:
                self.scheduler = Scheduler(plan(self.pipeline), lambda step, finished: self.run_stage(
                    step.stage, engines, finished, step.parent_fingerprints))
                summaries = self.scheduler.run()
            elif self.share_engines:
                summaries = [self.run_stage(stage, engines) for stage in self.pipeline.stages]
            else:  # the runner before shared engines, kept as the benchmarks' baseline: a load per stage
                summaries = []
                for stage in self.pipeline.stages:
                    with SharedEngines(self.executor) as own:
                        summaries.append(self.run_stage(stage, own))
        seeds = {self.pipeline.seed_dataset(self.pipeline.stages[index]) for index in self._seeds}
        self.compact({stage.output for stage in self.pipeline.stages} | seeds | {STAGE_RUNS_DATASET})
        for run_training in self.pipeline.training:  # checked when the pipeline loaded (plug-in, DESIGN §2)
            run_training(self.store, self.console)
        return summaries

    def load_seeds(self) -> None:
        """Each checked seed file into its data set, once, so lineage joins work in SQL: chunk by
        chunk, each a checked append of the ids not stored yet (a re-run adds nothing; a run stopped
        part-way is completed by the next)."""
        for index, scan in self._seeds.items():
            dataset = self.pipeline.seed_dataset(self.pipeline.stages[index])
            new = 0
            for chunk in read_seed_chunks(scan):
                missing = self.store.without_done(dataset, chunk, against="id")
                self.store.append(dataset, missing)
                new += missing.num_rows
            self.console.print(f"seeds {scan.path.name} -> {dataset}: {scan.rows} rows, {new} new")

    def run_stage(self, stage: PlannedStage, engines: SharedEngines,
                  upstream_finished: UpstreamFinished = lambda: True,
                  parent_fingerprints: list[str] | None = None) -> StageSummary:
        """Process what is missing of the stage's input, in rounds while its upstream still commits
        rows (streaming), until the upstream has finished and a last round found nothing left."""
        started = dt.datetime.now(dt.timezone.utc)
        clock = time.perf_counter()
        summary = StageSummary(stage.name, stage.output, 0, 0)
        versions: dict[str, int | None] | None = None
        source = StageInput(stage, self.pipeline, self.store, self._seeds.get(stage.index), self.limit,
                            parent_fingerprints)
        # Concurrent runs of one stage take turns; each computes what is missing once it holds the lock.
        with self.store.lock(f"{stage.output}-{stage.fingerprint}"):
            status, message = "completed", None
            try:
                while True:
                    last_round = upstream_finished()  # read before the input: then the input is complete
                    if not source.exists():  # its upstream has committed nothing yet
                        if last_round or self._stopping():
                            break
                        time.sleep(POLL_SECONDS)
                        continue
                    versions = versions or source.versions()
                    found = 0
                    for inputs in source.rounds(last_round):  # new work items: one table, or seed chunks
                        todo = self._todo(stage, inputs)
                        found += todo.num_rows
                        if todo.num_rows:
                            self._map(stage, todo, summary, engines)
                        if self._stopping():
                            break
                    if last_round or self._stopping():
                        break
                    if not found:
                        time.sleep(POLL_SECONDS)
            except BaseException as exc:
                status, message = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                summary.input_rows = source.offered
                summary.skipped_rows = summary.input_rows - summary.processed_inputs
                summary.seconds = time.perf_counter() - clock
                versions = versions or {}
                versions[stage.output] = self.store.version(stage.output)
                self._record(stage, summary, status, message, started, versions)
        self._print(summary)
        return summary

    def _todo(self, stage: PlannedStage, inputs: pa.Table) -> pa.Table:
        # --retry-errors: error rows count as missing; their retries replace them commit by commit,
        # so a crash part-way leaves each row either retried or still its old error, never gone.
        condition = "fingerprint = ? AND error IS NULL" if self._retrying(stage) else "fingerprint = ?"
        return self.store.without_done(stage.output, inputs, where=condition, params=[stage.fingerprint])

    def _retrying(self, stage: PlannedStage) -> bool:
        return self.retry_errors and "error" in self.store.columns(stage.output)

    def _stopping(self) -> bool:
        return self.scheduler is not None and self.scheduler.stop.is_set()

    def _map(self, stage: PlannedStage, todo: pa.Table, summary: StageSummary, engines: SharedEngines) -> None:
        retry = self._retrying(stage)
        task = self._task(stage, todo.num_rows)
        stage_engines = engines.for_stage(stage.models)
        engines.check_room(ray_request(stage), f"{stage.path}.resources")
        for batch in EXECUTORS[self.executor](stage, self.run_id, todo, stage_engines):
            batch = summary.add(batch)
            parents = sorted(set(batch.column("parent_id").to_pylist()))
            if retry and batch.num_rows:  # the driver is the only writer
                self.store.replace(stage.output, batch, {"fingerprint": [stage.fingerprint], "parent_id": parents})
            else:
                self.store.append(stage.output, batch)
            summary.processed_inputs += len(parents)
            rate = summary.processed_inputs / max(time.perf_counter() - self._clocks[stage.index], 1e-9)
            self.progress.update(task, advance=len(parents), rows=summary.rows, errors=summary.error_rows,
                                 rate=f"{rate:.1f}")
            if self._stopping():
                return

    def _task(self, stage: PlannedStage, rows: int) -> TaskID:
        """The stage's line in the run's progress display, its total grown by `rows`."""
        if stage.index not in self._tasks:
            self._clocks[stage.index] = time.perf_counter()
            self._tasks[stage.index] = self.progress.add_task(stage.name, total=0, stage=stage.name, rows=0,
                                                              errors=0, rate="0.0")
        task = self._tasks[stage.index]
        known = next(t.total for t in self.progress.tasks if t.id == task) or 0
        self.progress.update(task, total=known + rows)
        return task

    def compact(self, datasets: set[str]) -> None:
        """Each commit adds a file; compacting at the end keeps reads fast (README: the store)."""
        for dataset in sorted(datasets):
            try:
                self.store.compact(dataset)
            except StoreError as exc:  # a concurrent writer won: the next run compacts
                self.console.print(f"[yellow]not compacted[/]: {exc}")

    def _record(self, stage: PlannedStage, summary: StageSummary, status: str, message: str | None,
                started: dt.datetime, versions: dict[str, int | None]) -> None:
        record = RunRecord(
            id=f"{self.run_id}/{stage.name}", run_id=self.run_id, pipeline=self.pipeline.config.name,
            stage=stage.name, status=status, output=stage.output, input_rows=summary.input_rows,
            skipped_rows=summary.skipped_rows, rows=summary.rows, error_rows=summary.error_rows,
            prompt_tokens=summary.prompt_tokens, completion_tokens=summary.completion_tokens,
            seconds=round(summary.seconds, 3), engine_seconds=round(summary.engine_seconds, 3),
            gpu_seconds=round(summary.seconds * stage.spec.resources.num_gpus * stage.spec.resources.concurrency, 3),
            config=json.dumps(stage.spec.model_dump(mode="json")),
            message=message, started_at=started, finished_at=dt.datetime.now(dt.timezone.utc),
            table_versions=json.dumps({name: v for name, v in versions.items() if v is not None}),
        )
        self.store.append(STAGE_RUNS_DATASET, rows_to_arrow([record], RunRecord))

    def _print(self, s: StageSummary) -> None:
        self.console.print(
            f"stage [bold]{s.stage}[/] -> {s.output}: {s.rows} rows ({s.error_rows} errors) from "
            f"{s.input_rows - s.skipped_rows} inputs, {s.skipped_rows} already done; "
            f"tokens in {s.prompt_tokens} out {s.completion_tokens}; {s.seconds:.1f}s "
            f"({s.engine_seconds:.1f}s in model calls)"
        )
