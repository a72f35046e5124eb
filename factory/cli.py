"""`factory` command line. User errors print one line on stderr and exit 2, with no traceback.

This module is the console script's entry point and the one place in `factory/` that knows every
package (DESIGN.md §2): it hands the rest of factory what it needs of the others as callables
(export formats, the pipeline's training steps) and calls their commands (train, annotate,
calibrate, report). Heavy packages are imported on use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from rich.console import Console
from rich.table import Table

from annotators.helpsteer.exports import to_helpsteer2, to_helpsteer2_preference
from annotators.judges.exports import to_judge_dpo
from factory.errors import FactoryError
from factory.export import FORMATS, ExportFormat
from factory.store import Store
from factory.store.names import STAGE_RUNS_DATASET
from generators.skillmix.exports import to_alpaca

if TYPE_CHECKING:
    from factory.config import TrainingRun, TrainStep

DEFAULT_STORE = "./factory-data"

# Every `factory export --format`: factory's own (factory/formats.py) and those of the other packages.
EXPORT_FORMATS: dict[str, ExportFormat] = {
    "raw": FORMATS["raw"],
    "sft": FORMATS["sft"],
    "alpaca": ExportFormat(to_alpaca, ("instruction|prompt", "response"), "Alpaca `instruction` / `input` / `output`"),
    "helpsteer2": ExportFormat(to_helpsteer2, ("prompt", "response", "helpfulness", "correctness", "coherence",
                                               "complexity", "verbosity"), "HelpSteer2 attributes as ints 0-4"),
    "helpsteer2-preference": ExportFormat(to_helpsteer2_preference, ("prompt", "response_1", "response_2",
                                                                     "preference_strength"),
                                          "HelpSteer2-Preference strengths"),
    "rm": FORMATS["rm"],
    "dpo": FORMATS["dpo"],
    "judge-dpo": ExportFormat(to_judge_dpo, ("prompt", "candidates", "verdict"),
                              "TRL preference pairs from decisive `judgments` (judge, jury, debate, ranking)"),
}


def plan_training(step: TrainStep, base_dir: Path, source: str) -> TrainingRun:
    """The trainers' plug-in for a pipeline's `train:` steps (factory.config.PlanTraining)."""
    from trainers.pipeline import plan_train_step  # imported on use (torch, transformers)

    return plan_train_step(step, base_dir, source)


def training_kinds() -> tuple[str, ...]:
    from trainers.config import KINDS  # the config models only: no torch

    return KINDS


def _store(args: argparse.Namespace) -> Store:
    return Store(args.store or os.environ.get("FACTORY_STORE") or DEFAULT_STORE)


def _existing_store(args: argparse.Namespace) -> Store:
    """The store for a command that only reads: a local path must be a folder that exists (a
    mistyped path would otherwise read as an empty store)."""
    location = args.store or os.environ.get("FACTORY_STORE") or DEFAULT_STORE
    if "://" not in location or location.startswith("file://"):
        path = location.removeprefix("file://")
        if not os.path.exists(path):
            raise FactoryError(f"no store at {location}: the folder does not exist (a run creates it)")
        if not os.path.isdir(path):
            raise FactoryError(f"store {location} is a file, not a store folder")
    return Store(location)


def positive_int(text: str) -> int:
    """argparse type for counts (--limit, --last): 0 or a negative number is a mistake, not 'all'."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _flat_for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV has no nested values: lists and structs become JSON text (one cell each)."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.Series(name, [None if value is None else json.dumps(value, default=str, ensure_ascii=False)
                         for value in frame[name].to_list()], dtype=pl.String)
        for name in nested
    )


def _print_frame(frame: pl.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(_flat_for_csv(frame).write_csv())
    elif fmt == "json":
        sys.stdout.write(frame.write_ndjson())
    else:
        cells = [["" if value is None else str(value) for value in row] for row in frame.iter_rows()]
        console = Console()
        if not sys.stdout.isatty():
            # A pipe (`| grep`, a file) gets every value whole: wide enough for the longest line,
            # never folded or cut with an ellipsis as a terminal's width would force.
            widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(frame.columns)]
            console = Console(width=max(80, sum(widths) + 3 * len(widths) + 1), soft_wrap=False)
        table = Table(*frame.columns, show_lines=False)
        if not sys.stdout.isatty():
            for column in table.columns:
                column.no_wrap, column.overflow = True, "ignore"
        for row in cells:
            table.add_row(*row)
        console.print(table)
        Console(stderr=True).print(f"({frame.height} rows)")


def cmd_run(args: argparse.Namespace) -> int:
    from factory.config import load_pipeline
    from factory.ray_logs import keep_native_stderr_in_log
    from factory.runner import PipelineRunner

    keep_native_stderr_in_log()  # this process is the user's terminal: Ray's C++ lines go to Ray's log file
    pipeline = load_pipeline(args.pipeline, plan_training)
    summaries = PipelineRunner(pipeline, _store(args), limit=args.limit, executor=args.executor,
                               retry_errors=args.retry_errors, streaming=False if args.sequential else None).run()
    errors = sum(summary.error_rows for summary in summaries)
    print(f"done: {sum(s.rows for s in summaries)} rows written, {errors} error rows")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from factory.snapshots import resolve_as_of

    store = _existing_store(args)
    _print_frame(store.sql(args.query, as_of=resolve_as_of(store, args.as_of or [])), args.format)
    return 0


def _chosen_datasets(store: Store, names: list[str]) -> list[str]:
    existing = store.dataset_names()
    unknown = [name for name in names if name not in existing]
    if unknown:
        raise FactoryError(f"no data set {', '.join(map(repr, unknown))} in store {store.location}")
    return names or existing


def cmd_compact(args: argparse.Namespace) -> int:
    store = _store(args)
    for name in _chosen_datasets(store, args.datasets):
        metrics = store.compact(name)
        print(f"{name}: {metrics.get('numFilesRemoved', 0)} files compacted into {metrics.get('numFilesAdded', 0)}; "
              f"version {store.version(name)}")
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    store = _store(args)
    for name in _chosen_datasets(store, args.datasets):
        removed = store.vacuum(name, retention_hours=args.retention_hours)
        print(f"{name}: removed {len(removed)} files no version of the last {args.retention_hours} h needs")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    store = _store(args)
    migrated = store.migrate()
    print(f"migrated {len(migrated)} data sets to Delta tables: {', '.join(migrated)}" if migrated
          else f"nothing to migrate in {store.location}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    infos = _existing_store(args).datasets()
    frame = pl.DataFrame(
        {
            "dataset": [i.name for i in infos],
            "rows": [i.rows for i in infos],
            "files": [i.files for i in infos],
            "version": [i.version for i in infos],
            "columns": [", ".join(i.columns) for i in infos],
        },
        schema={"dataset": pl.String, "rows": pl.Int64, "files": pl.Int64, "version": pl.Int64, "columns": pl.String},
    )
    _print_frame(frame, args.format)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from factory.export import export_dataset

    result = export_dataset(_existing_store(args), args.dataset, args.out, where=args.where, fmt=args.format,
                            overwrite=args.overwrite, formats=EXPORT_FORMATS)
    print(f"exported {result.rows} rows of {args.dataset} ({result.format}) to {result.path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from factory.models import BUNDLED

    frame = pl.DataFrame(
        {
            "name": [m.name for m in BUNDLED.values()],
            "kind": [m.kind for m in BUNDLED.values()],
            "installed": [m.installed() for m in BUNDLED.values()],
            "cached": [m.cached() for m in BUNDLED.values()],
            "description": [m.description for m in BUNDLED.values()],
        }
    )
    _print_frame(frame, args.format)
    print("Any hub id or local model folder is accepted as a model name too.", file=sys.stderr)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    if not store.has(STAGE_RUNS_DATASET):
        raise FactoryError(f"no runs recorded in store {store.location}")
    # Input tokens are everything the models read (prompts; prompt + response when scoring), output
    # tokens what they generated; model seconds the time spent in engine calls.
    _print_frame(store.sql(
        "SELECT run_id, pipeline, stage, status, rows, error_rows, prompt_tokens AS input_tokens, "
        "completion_tokens AS output_tokens, seconds, engine_seconds AS model_seconds, gpu_seconds, started_at "
        f"FROM {STAGE_RUNS_DATASET} ORDER BY started_at DESC, stage"
        + (" LIMIT ?" if args.last else ""), [args.last] if args.last else None,
    ), args.format)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from factory import jobs

    extra = (["--limit", str(args.limit)] if args.limit else []) + (["--retry-errors"] if args.retry_errors else [])
    print(jobs.submit(args.pipeline, args.address, args.store, extra, pip=args.pip))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from factory import jobs

    for key, value in jobs.status(args.job_id, args.address).items():
        print(f"{key}: {value}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from factory import jobs

    for chunk in jobs.logs(args.job_id, args.address, follow=args.follow):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from factory import jobs

    print("stopped" if jobs.stop(args.job_id, args.address) else "not running")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.cli import train_command  # imported on use (torch)

    return train_command(args.kind, args.config, _store(args), where=args.where, max_steps=args.max_steps)


def cmd_annotate(args: argparse.Namespace) -> int:
    from annotators.webapp.cli import annotate_command  # imported on use (the web app)

    return annotate_command(args, _store(args))


def cmd_calibrate(args: argparse.Namespace) -> int:
    from annotators.offline.calibrate import calibrate  # imported on use

    frame = calibrate(_store(args), args.human, human_where=args.human_where, judgments_where=args.where,
                      n_boot=args.bootstrap, confidence=args.confidence, seed=args.seed)
    _print_frame(frame.select("rank", "strategy", "evaluator", "reference", "metric", "value", "ci_low", "ci_high",
                              "percent_agreement", "n_items", "n_raters"), args.format)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from annotators.offline.report import write_report  # imported on use (matplotlib)

    for path in write_report(_store(args), args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factory", description="LLM data generation and annotation factory.")
    commands = parser.add_subparsers(dest="command", required=True)
    store_help = f"store folder or fsspec URL (default: $FACTORY_STORE or {DEFAULT_STORE})"
    formats = ("table", "csv", "json")

    run = commands.add_parser("run", help="run a pipeline YAML (resumes: only missing rows are made)")
    run.add_argument("pipeline")
    run.add_argument("--store", help=store_help)
    run.add_argument("--limit", type=positive_int, help="use only the first N input rows of each stage")
    run.add_argument("--executor", choices=("ray", "local"), help="override the pipeline's executor")
    run.add_argument("--retry-errors", action="store_true", help="re-run the rows each stage stored as errors")
    run.add_argument("--sequential", action="store_true",
                     help="one stage after another (default: the pipeline's `streaming`, on unless set false)")
    run.set_defaults(handler=cmd_run)

    runs = commands.add_parser("runs", help="list past runs per stage: status, rows, errors, tokens, seconds")
    runs.add_argument("--store", help=store_help)
    runs.add_argument("--last", type=positive_int, help="only the N most recent stage runs")
    runs.add_argument("--format", choices=formats, default="table")
    runs.set_defaults(handler=cmd_runs)

    address_help = "Ray job server (default: $RAY_ADDRESS or http://127.0.0.1:8265)"
    submit = commands.add_parser("submit", help="submit `factory run PIPELINE` as a Ray job; prints the job id")
    submit.add_argument("pipeline")
    submit.add_argument("--address", help=address_help)
    submit.add_argument("--store", help="store the job writes (an s3:// URL on a cluster)")
    submit.add_argument("--limit", type=positive_int)
    submit.add_argument("--retry-errors", action="store_true")
    submit.add_argument("--pip", nargs="*", help="extra pip packages for the job's runtime environment")
    submit.set_defaults(handler=cmd_submit)
    for name, handler, text in (("status", cmd_status, "a job's status"), ("logs", cmd_logs, "a job's logs"),
                                ("stop", cmd_stop, "stop a running job")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        command.add_argument("--address", help=address_help)
        if name == "logs":
            command.add_argument("--follow", action="store_true", help="keep printing until the job ends")
        command.set_defaults(handler=handler)

    sql = commands.add_parser("sql", help="run read-only SQL over the store (each data set is a table)")
    sql.add_argument("query")
    sql.add_argument("--store", help=store_help)
    sql.add_argument("--format", choices=formats, default="table")
    sql.add_argument("--as-of", action="append", metavar="RUN_ID|VERSION|DATASET=VERSION",
                     help="read data sets as they were: at a training run's or run's recorded versions, at one "
                          "version for all, or DATASET=VERSION (repeatable)")
    sql.set_defaults(handler=cmd_sql)

    compact = commands.add_parser("compact", help="merge each data set's small files in one commit (safe while runs write)")
    compact.add_argument("datasets", nargs="*", help="data sets (default: all)")
    compact.add_argument("--store", help=store_help)
    compact.set_defaults(handler=cmd_compact)

    vacuum = commands.add_parser("vacuum", help="delete files that no recent table version needs")
    vacuum.add_argument("datasets", nargs="*", help="data sets (default: all)")
    vacuum.add_argument("--retention-hours", type=int, default=168,
                        help="keep every file a version of the last N hours reads (default: a week); "
                             "`--as-of` can go back no further than this")
    vacuum.add_argument("--store", help=store_help)
    vacuum.set_defaults(handler=cmd_vacuum)

    migrate = commands.add_parser("migrate", help="turn a store written before Delta Lake into tables (once, idempotent)")
    migrate.add_argument("--store", help=store_help)
    migrate.set_defaults(handler=cmd_migrate)

    listing = commands.add_parser("datasets", help="list data sets: rows, files, table version, columns")
    listing.add_argument("--store", help=store_help)
    listing.add_argument("--format", choices=formats, default="table")
    listing.set_defaults(handler=cmd_datasets)

    export = commands.add_parser("export", help="export a data set as a Hugging Face dataset folder")
    export.add_argument("dataset")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--where", help="SQL predicate selecting rows")
    export.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="raw",
                        help="; ".join(f"{name}: {fmt.description}" for name, fmt in EXPORT_FORMATS.items()))
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    export.add_argument("--store", help=store_help)
    export.set_defaults(handler=cmd_export)

    models = commands.add_parser("models", help="list the bundled models")
    models.add_argument("--format", choices=formats, default="table")
    models.set_defaults(handler=cmd_models)

    train = commands.add_parser("train", help="train SFT / reward / DPO / SimPO on store rows (docs/trainers.md)")
    train.add_argument("kind", choices=training_kinds())
    train.add_argument("--config", required=True, help="training YAML (model, data, training, ...)")
    train.add_argument("--where", help="extra SQL predicate on the training rows")
    train.add_argument("--max-steps", type=positive_int, help="override training.max_steps (a longer run resumes)")
    train.add_argument("--store", help=store_help)
    train.set_defaults(handler=cmd_train)

    annotate = commands.add_parser("annotate", help="human rating campaign: web app and export (docs/webapp.md)")
    annotate.add_argument("action", choices=("serve", "export", "tokens"),
                          help="serve the rating app, export aggregated labels, or print strong random tokens")
    annotate.add_argument("--campaign", required=True, help="campaign YAML (source, task, raters, owner)")
    annotate.add_argument("--host", default="127.0.0.1", help="serve: address to listen on")
    annotate.add_argument("--port", type=int, default=8000, help="serve: port")
    annotate.add_argument("--out", help="export: output folder")
    annotate.add_argument("--format", choices=("helpsteer2", "helpsteer2-preference"), default="helpsteer2")
    annotate.add_argument("--overwrite", action="store_true", help="export: replace a non-empty output folder")
    annotate.add_argument("--store", help=store_help)
    annotate.set_defaults(handler=cmd_annotate)

    calibrate = commands.add_parser("calibrate", help="agreement of judgments with human labels -> data set agreement")
    calibrate.add_argument("--human", required=True, help="human labels: a .jsonl/.csv file or a data set (docs/multiagent.md)")
    calibrate.add_argument("--human-where", help="SQL predicate on the human label data set")
    calibrate.add_argument("--where", help="SQL predicate selecting judgments")
    calibrate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    calibrate.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    calibrate.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    calibrate.add_argument("--format", choices=formats, default="table")
    calibrate.add_argument("--store", help=store_help)
    calibrate.set_defaults(handler=cmd_calibrate)

    report = commands.add_parser("report", help="PNGs of agreement and win rates, and a report.md linking them")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--store", help=store_help)
    report.set_defaults(handler=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from factory.redact import install, scrub

    install()  # log records and uncaught tracebacks of this process carry no secret
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except FactoryError as exc:
        print(f"factory {args.command}: error: {scrub(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"factory {args.command}: interrupted; committed batches are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
