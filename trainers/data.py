"""Store rows -> `datasets.Dataset` in TRL's formats, checked before any training starts.

Formats (DESIGN.md §4): SFT `messages`; preference `prompt`/`chosen`/`rejected` (conversational, so
the model's chat template applies); reward the same plus `margin` or `scale`; regression
`prompt`/`response` plus one float per attribute (None = missing label, masked in the loss).
Preference rows may also come in HelpSteer2-Preference form: `response_1`, `response_2` and
`preference_strength` (< 0: response 1 is better), per rater (`helpsteer_preferences`) or one
aggregated row per pair (`aggregated_preferences`, whose `high_disagreement` rows are skipped, as
the exports skip them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import datasets
import polars as pl

from factory.columns import require_columns
from factory.errors import FactoryError
from factory.ids import stable_hash
from factory.store import Store
from trainers.config import DataSource, TrainConfig


class TrainingDataError(FactoryError):
    """The selected rows cannot train this kind of model (no rows, missing columns)."""


class NoTrainingRows(TrainingDataError):
    """The query selected no usable rows (a pipeline's training step skips; `factory train` fails)."""


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


PROMPT = "prompt|instruction"
PAIR = ("chosen", "rejected")
HELPSTEER_PAIR = ("response_1", "response_2", "preference_strength")


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


def require(frame: pl.DataFrame, needs: list[str], what: str) -> None:
    """Each need is a column or 'a|b' alternatives; one message names every missing one."""
    require_columns(needs, frame.columns, what, "the rows have", TrainingDataError)


def _prompt_column(frame: pl.DataFrame) -> str:
    return "prompt" if "prompt" in frame.columns else "instruction"


def _user_turns(row: dict[str, Any], prompt: str) -> list[dict[str, str]]:
    system = row.get("system_prompt")
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": row[prompt]}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def to_sft(frame: pl.DataFrame, what: str = "sft") -> list[dict[str, Any]]:
    if "messages" in frame.columns:
        return [{"messages": row["messages"]} for row in frame.iter_rows(named=True) if row["messages"]]
    require(frame, [PROMPT, "response"], what + " (or a `messages` column)")
    prompt = _prompt_column(frame)
    return [{"messages": _user_turns(row, prompt) + _assistant(row["response"])}
            for row in frame.iter_rows(named=True) if row["response"] is not None]


def _pairs(frame: pl.DataFrame, what: str, needs_strength: bool = False) -> list[dict[str, Any]]:
    """(prompt, chosen, rejected, strength) from either pair layout; ties (strength 0) are skipped."""
    if all(c in frame.columns for c in PAIR) and (not needs_strength or "preference_strength" in frame.columns):
        require(frame, [PROMPT], what)
        prompt = _prompt_column(frame)
        return [{"prompt": _user_turns(row, prompt), "chosen": _assistant(row["chosen"]),
                 "rejected": _assistant(row["rejected"]), "strength": row.get("preference_strength"),
                 "margin": row.get("margin")} for row in frame.iter_rows(named=True)]
    if any(c in frame.columns for c in HELPSTEER_PAIR):
        require(frame, [PROMPT, *HELPSTEER_PAIR], what)
    else:
        require(frame, [PROMPT, *PAIR] + (["preference_strength"] if needs_strength else []), what)
    prompt = _prompt_column(frame)
    out = []
    for row in frame.iter_rows(named=True):
        strength = row["preference_strength"]
        if not strength or row.get("high_disagreement"):
            continue
        better, worse = ("response_1", "response_2") if strength < 0 else ("response_2", "response_1")
        out.append({"prompt": _user_turns(row, prompt), "chosen": _assistant(row[better]),
                    "rejected": _assistant(row[worse]), "strength": strength, "margin": row.get("margin")})
    return out


def to_preference(frame: pl.DataFrame, what: str) -> list[dict[str, Any]]:
    return [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in _pairs(frame, what)]


def to_reward(frame: pl.DataFrame, objective: str, what: str) -> list[dict[str, Any]]:
    if objective == "bt":
        return to_preference(frame, what)
    if objective == "margin":
        if "margin" not in frame.columns:
            require(frame, ["margin|preference_strength"], what)
        pairs = _pairs(frame, what)
        return [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                 "margin": float(p["margin"] if p["margin"] is not None else abs(p["strength"]))} for p in pairs]
    # scaled_bt: the loss weight is |preference strength| (HelpSteer2-Preference)
    require(frame, ["preference_strength"], what)
    return [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
             "scale": float(abs(p["strength"]))} for p in _pairs(frame, what, needs_strength=True)]


def to_regression(frame: pl.DataFrame, attributes: list[str], what: str) -> list[dict[str, Any]]:
    require(frame, [PROMPT, "response", *attributes], what)
    prompt = _prompt_column(frame)
    rows = []
    for row in frame.iter_rows(named=True):
        if row["response"] is None:
            continue
        labels = [None if row[a] is None else float(row[a]) for a in attributes]
        rows.append({"prompt": _user_turns(row, prompt), "completion": _assistant(row["response"]), "labels": labels})
    return rows


def convert(config: TrainConfig, frame: pl.DataFrame, what: str) -> list[dict[str, Any]]:
    kind, method = config.kind, config.method()
    what = f"{what} for 'factory train {kind}'" + (f" (objective {method})" if kind == "rm" else "")
    if kind == "sft":
        return to_sft(frame, what)
    if kind in ("dpo", "simpo"):
        return to_preference(frame, what)
    if method in ("regression", "multi_objective"):
        return to_regression(frame, config.rm.attributes, what)
    objective = "scaled_bt" if method == "regression_then_scaled_bt" else method
    return to_reward(frame, objective, what)


def split(rows: list[dict[str, Any]], ids: list[str], fraction: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold out rows by id hash: the same rows are held out on every run over the same data."""
    if fraction <= 0 or len(rows) < 2:
        return rows, []
    order = sorted(range(len(rows)), key=lambda i: stable_hash("eval", ids[i] if i < len(ids) else i))
    held = set(order[: max(1, round(fraction * len(rows)))])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def load_training_data(config: TrainConfig, store: Store) -> TrainingData:
    """Everything checked and converted before a Ray worker starts. Every query of the run reads the
    same table versions, recorded in `training_runs` so the rows can be read again as they were."""
    versions = store.versions()
    frame, snapshot = select(store, config.data, "data", versions)
    rows = convert(config, frame, "data")
    if not rows:
        raise NoTrainingRows(f"data: no usable rows (all responses empty or all preference strengths 0): "
                                f"{snapshot.query}")
    ids = frame["id"].cast(pl.String).to_list() if len(rows) == frame.height else [str(i) for i in range(len(rows))]
    train, held = split(rows, ids, config.eval_fraction)
    extra: dict[str, datasets.Dataset] = {}
    if config.kind == "rm" and config.method() == "regression_then_scaled_bt":
        assert config.rm.regression_data is not None
        reg_frame, reg_snapshot = select(store, config.rm.regression_data, "rm.regression_data", versions)
        extra["regression"] = datasets.Dataset.from_list(
            to_regression(reg_frame, config.rm.regression_phase_attributes,
                          "rm.regression_data for the regression phase"))
        snapshot.row_ids = sorted(snapshot.row_ids + reg_snapshot.row_ids)
        snapshot.source_run_ids = sorted(set(snapshot.source_run_ids) | set(reg_snapshot.source_run_ids))
        snapshot.query += f"; regression phase: {reg_snapshot.query}"
    if config.kind == "rm" and config.method() == "multi_objective" and config.rm.pairs is not None:
        pair_frame, pair_snapshot = select(store, config.rm.pairs, "rm.pairs", versions)
        extra["pairs"] = datasets.Dataset.from_list(to_preference(pair_frame, "rm.pairs"))
        snapshot.row_ids = sorted(snapshot.row_ids + pair_snapshot.row_ids)
        snapshot.query += f"; gating pairs: {pair_snapshot.query}"
    return TrainingData(datasets.Dataset.from_list(train), datasets.Dataset.from_list(held) if held else None,
                        snapshot, extra)
