"""Export a slice of a data set as a Hugging Face dataset folder.

The folder holds both layouts: `datasets.load_from_disk(out)` reads the Arrow files from
`save_to_disk`, and `load_dataset("parquet", data_files=f"{out}/data/*.parquet")` the Parquet copy
(the card's YAML header names it for the Hub). The card names the pipelines, models and run ids
the rows came from.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import polars as pl

from factory.columns import require_columns
from factory.errors import FactoryError
from factory.formats import to_dpo, to_rm, to_sft
from factory.redact import scrub, scrub_all
from factory.store import Store, check_dataset_name, quote_identifier
from factory.store.names import STAGE_RUNS_DATASET


@dataclass(frozen=True)
class ExportFormat:
    """A training format: which columns the data set needs and how rows become records."""

    convert: Callable[[pl.DataFrame], pl.DataFrame]
    needs: tuple[str, ...] = ()  # at least one column of each "a|b" alternative must exist
    description: str = ""
    drop_errors: bool = True  # error rows are for audit, never for training


def identity(frame: pl.DataFrame) -> pl.DataFrame:
    return frame


PAIR_NEEDS = ("prompt", "chosen|response_1", "rejected|response_2")
# factory's own formats (factory/formats.py). The CLI adds those of generators and annotators and
# passes the whole table in (factory imports neither, DESIGN.md §2).
FORMATS: dict[str, ExportFormat] = {
    "raw": ExportFormat(identity, (), "every column, error rows included", drop_errors=False),
    "sft": ExportFormat(to_sft, ("prompt|instruction", "response"), "TRL conversational `messages`"),
    "rm": ExportFormat(to_rm, PAIR_NEEDS, "TRL reward: conversational chosen / rejected + margin"),
    "dpo": ExportFormat(to_dpo, PAIR_NEEDS, "TRL preference: conversational prompt / chosen / rejected"),
}


@dataclass
class ExportResult:
    path: Path
    rows: int
    format: str


def _select(store: Store, dataset: str, where: str | None, name: str, fmt: ExportFormat) -> pl.DataFrame:
    check_dataset_name(dataset)
    if not store.has(dataset):
        raise FactoryError(f"no data set {dataset!r} in store {store.location}")
    conditions = [f"({where})"] if where else []
    columns = store.columns(dataset)
    require_columns(fmt.needs, columns, f"--format {name}", f"{dataset!r} has")
    if fmt.drop_errors and "error" in columns:
        conditions.append("error IS NULL")
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    frame = store.sql(f"SELECT * FROM {quote_identifier(dataset)}{clause} ORDER BY id")
    # Error text is scrubbed where it is made; rows stored before that was so are scrubbed here.
    for column in ("error", "message"):
        if frame.schema.get(column) == pl.String:
            frame = frame.with_columns(pl.Series(column, scrub_all(frame[column].to_list()), dtype=pl.String))
    return frame


def _card(store: Store, dataset: str, frame: pl.DataFrame, where: str | None, fmt: str) -> str:
    run_ids = sorted(frame["run_id"].unique().to_list()) if "run_id" in frame.columns else []
    models = sorted(m for m in frame["model"].unique().to_list() if m) if "model" in frame.columns else []
    pipelines: list[str] = []
    if run_ids and store.has(STAGE_RUNS_DATASET):
        pipelines = store.sql(f"SELECT DISTINCT pipeline FROM {STAGE_RUNS_DATASET} WHERE list_contains(?, run_id) ORDER BY 1",
                              [run_ids])["pipeline"].to_list()
    bullet = lambda items: "\n".join(f"- `{item}`" for item in items) or "- (none recorded)"  # noqa: E731
    return f"""# {dataset}

Exported by the LLM data factory on {dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}.

- store: `{store.location}`
- data set: `{dataset}`, filter: `{where or "none"}`, format: `{fmt}`
- rows: {frame.height}

## Pipelines
{bullet(pipelines)}

## Models
{bullet(models)}

## Runs
{bullet(run_ids)}
"""


def export_dataset(store: Store, dataset: str, out: str | Path, where: str | None = None,
                   fmt: str = "raw", overwrite: bool = False,
                   formats: Mapping[str, ExportFormat] = FORMATS) -> ExportResult:
    """`formats`: the table `fmt` is looked up in (the CLI's has every package's formats)."""
    if fmt not in formats:
        raise FactoryError(f"unknown export format {fmt!r} (choose from {', '.join(formats)})")
    export_format = formats[fmt]
    out = prepare_output(out, overwrite)
    frame = _select(store, dataset, where, fmt, export_format)
    hf = write_dataset_folder(out, export_format.convert(frame), scrub(_card(store, dataset, frame, where, fmt)))
    return ExportResult(out, hf.num_rows, fmt)


def prepare_output(out: str | Path, overwrite: bool) -> Path:
    """The export folder, empty: an existing non-empty one is replaced only with `overwrite`."""
    out = Path(out)
    if out.exists() and not out.is_dir():  # never replaced, --overwrite or not: it is not an export folder
        raise FactoryError(f"--out {out} is a file, not a folder; name a folder for the export")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FactoryError(f"{out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    return out


CARD_HEADER = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/*.parquet
---
"""


def write_dataset_folder(out: Path, frame: pl.DataFrame, card: str) -> datasets.Dataset:
    """Both layouts (save_to_disk Arrow files and data/*.parquet) plus README.md with the card."""
    hf = datasets.Dataset.from_polars(frame)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the CLI prints one line per export, not "Saving the dataset" bars
    try:
        # One shard even for 0 rows: with none, load_from_disk cannot read the folder back.
        hf.save_to_disk(str(out), num_shards=1)
        (out / "data").mkdir()
        hf.to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))  # "Creating parquet" bars too
    finally:
        if bars:
            datasets.enable_progress_bars()
    (out / "README.md").write_text(CARD_HEADER + card)
    return hf
