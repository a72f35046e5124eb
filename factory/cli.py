"""`factory` command line. User errors print one line on stderr and exit 2, with no traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import polars as pl
from rich.console import Console
from rich.table import Table

from factory.errors import FactoryError
from factory.export import FORMATS
from factory.store import Store

DEFAULT_STORE = "./factory-data"


def _store(args: argparse.Namespace) -> Store:
    return Store(args.store or os.environ.get("FACTORY_STORE") or DEFAULT_STORE)


def _print_frame(frame: pl.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(frame.write_ndjson())
    else:
        table = Table(*frame.columns, show_lines=False)
        for row in frame.iter_rows():
            table.add_row(*("" if value is None else str(value) for value in row))
        Console().print(table)
        Console(stderr=True).print(f"({frame.height} rows)")


def cmd_run(args: argparse.Namespace) -> int:
    from factory.config import load_pipeline
    from factory.runner import PipelineRunner

    pipeline = load_pipeline(args.pipeline)
    summaries = PipelineRunner(pipeline, _store(args), limit=args.limit, executor=args.executor).run()
    errors = sum(summary.error_rows for summary in summaries)
    print(f"done: {sum(s.rows for s in summaries)} rows written, {errors} error rows")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    _print_frame(_store(args).sql(args.query), args.format)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    infos = _store(args).datasets()
    frame = pl.DataFrame(
        {
            "dataset": [i.name for i in infos],
            "rows": [i.rows for i in infos],
            "shards": [i.shards for i in infos],
            "columns": [", ".join(i.columns) for i in infos],
        },
        schema={"dataset": pl.String, "rows": pl.Int64, "shards": pl.Int64, "columns": pl.String},
    )
    _print_frame(frame, args.format)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from factory.export import export_dataset

    result = export_dataset(_store(args), args.dataset, args.out, where=args.where, fmt=args.format,
                            overwrite=args.overwrite)
    print(f"exported {result.rows} rows of {args.dataset} ({result.format}) to {result.path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from factory.models import BUNDLED

    frame = pl.DataFrame(
        {
            "name": [m.name for m in BUNDLED.values()],
            "kind": [m.kind for m in BUNDLED.values()],
            "installed": [m.installed() for m in BUNDLED.values()],
            "cached": [(m.cached_path() / "config.json").exists() for m in BUNDLED.values()],
            "description": [m.description for m in BUNDLED.values()],
        }
    )
    _print_frame(frame, args.format)
    print("Any hub id or local model folder is accepted as a model name too.", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factory", description="LLM data generation and annotation factory.")
    commands = parser.add_subparsers(dest="command", required=True)
    store_help = f"store folder or fsspec URL (default: $FACTORY_STORE or {DEFAULT_STORE})"
    formats = ("table", "csv", "json")

    run = commands.add_parser("run", help="run a pipeline YAML (resumes: only missing rows are made)")
    run.add_argument("pipeline")
    run.add_argument("--store", help=store_help)
    run.add_argument("--limit", type=int, help="use only the first N input rows of each stage")
    run.add_argument("--executor", choices=("ray", "local"), help="override the pipeline's executor")
    run.set_defaults(handler=cmd_run)

    sql = commands.add_parser("sql", help="run read-only SQL over the store (each data set is a table)")
    sql.add_argument("query")
    sql.add_argument("--store", help=store_help)
    sql.add_argument("--format", choices=formats, default="table")
    sql.set_defaults(handler=cmd_sql)

    listing = commands.add_parser("datasets", help="list data sets with row counts and columns")
    listing.add_argument("--store", help=store_help)
    listing.add_argument("--format", choices=formats, default="table")
    listing.set_defaults(handler=cmd_datasets)

    export = commands.add_parser("export", help="export a data set as a Hugging Face dataset folder")
    export.add_argument("dataset")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--where", help="SQL predicate selecting rows")
    export.add_argument("--format", choices=sorted(FORMATS), default="raw",
                        help="; ".join(f"{name}: {fmt.description}" for name, fmt in FORMATS.items()))
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    export.add_argument("--store", help=store_help)
    export.set_defaults(handler=cmd_export)

    models = commands.add_parser("models", help="list the bundled models")
    models.add_argument("--format", choices=formats, default="table")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except FactoryError as exc:
        print(f"factory {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"factory {args.command}: interrupted; finished shards are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
