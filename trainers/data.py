"""Store rows -> `datasets.Dataset` in TRL's formats, checked before any training starts.

Which rows a run reads: `data` (and a method's extra selections, trainers.common.Extra), all at the
same table versions, error rows dropped, ordered by id; each method turns them into its format
(`Method.rows`: trainers/sft.py, dpo.py, simpo.py, reward.py, with factory/formats.py). The formats are
listed in docs/trainers.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import datasets
import polars as pl

from factory.ids import stable_hash
from factory.store import Store
from trainers.common import NoTrainingRows, Rows, TrainingDataError
from trainers.config import DataSource, TrainConfig
from trainers.methods import METHODS

__all__ = ["NoTrainingRows", "Snapshot", "TrainingData", "TrainingDataError", "load_training_data", "select", "split"]


@dataclass
class Snapshot:
    """Exactly which rows a run used (recorded in `training_runs`)."""

    query: str
    store: str
    row_ids: list[str]
    source_run_ids: list[str]
    versions: dict[str, int] = field(default_factory=dict)  # data set -> table version the rows were read at

    @property
    def ids_hash(self) -> str:
        return hashlib.sha256("\n".join(self.row_ids).encode()).hexdigest()


@dataclass
class TrainingData:
    train: datasets.Dataset
    eval: datasets.Dataset | None
    snapshot: Snapshot
    extra: dict[str, datasets.Dataset] = field(default_factory=dict)  # e.g. regression phase rows


def select(store: Store, source: DataSource, what: str, versions: dict[str, int]) -> tuple[pl.DataFrame, Snapshot]:
    """Run the source's SQL at the pinned table `versions`; drop error rows; fail on no rows.
    Rows are ordered by id."""
    query = source.sql()
    frame = store.sql(query, as_of=versions)
    if "error" in frame.columns and not source.keep_errors:
        frame = frame.filter(pl.col("error").is_null())
    if frame.height == 0:
        raise NoTrainingRows(f"{what}: the query returned no rows (error rows excluded): {query}")
    if "id" not in frame.columns:
        # Rows without ids (a hand-written query) still get a stable identity: a hash of their content.
        frame = frame.with_columns(pl.Series("id", [stable_hash(row) for row in frame.iter_rows(named=True)]))
    frame = frame.sort("id")
    runs = sorted({r for r in frame["run_id"].to_list() if r}) if "run_id" in frame.columns else []
    return frame, Snapshot(query, store.location, frame["id"].cast(pl.String).to_list(), runs, versions)


def split(rows: Rows, ids: list[str], fraction: float) -> tuple[Rows, Rows]:
    """Hold out rows by id hash: the same rows are held out on every run over the same data."""
    if fraction <= 0 or len(rows) < 2:
        return rows, []
    order = sorted(range(len(rows)), key=lambda i: stable_hash("eval", ids[i] if i < len(ids) else i))
    held = set(order[: max(1, round(fraction * len(rows)))])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def load_training_data(config: TrainConfig, store: Store) -> TrainingData:
    """Everything checked and converted before a Ray worker starts. Every query of the run reads the
    same table versions, recorded in `training_runs` so the rows can be read again as they were."""
    method = METHODS[config.kind]
    versions = store.versions()
    frame, snapshot = select(store, config.data, "data", versions)
    what = f"data for 'factory train {config.kind}'" + (
        f" (objective {config.method()})" if config.method() != config.kind else "")
    rows = method.rows(config, frame, what)
    if not rows:
        raise NoTrainingRows(f"data: no usable rows (all responses empty or all preference strengths 0): "
                             f"{snapshot.query}")
    ids = frame["id"].cast(pl.String).to_list() if len(rows) == frame.height else [str(i) for i in range(len(rows))]
    train, held = split(rows, ids, config.eval_fraction)
    extra: dict[str, datasets.Dataset] = {}
    for more in method.extras(config):
        extra_frame, extra_snapshot = select(store, more.source, more.what, versions)
        extra[more.name] = datasets.Dataset.from_list(more.rows(extra_frame))
        snapshot.row_ids = sorted(snapshot.row_ids + extra_snapshot.row_ids)
        snapshot.source_run_ids = sorted(set(snapshot.source_run_ids) | set(extra_snapshot.source_run_ids))
        snapshot.query += f"; {more.label}: {extra_snapshot.query}"
    return TrainingData(datasets.Dataset.from_list(train), datasets.Dataset.from_list(held) if held else None,
                        snapshot, extra)
