"""HelpSteer2 aggregation of several raters of one item: keep the most agreeing raters, average
their scores, flag the item when even those disagree strongly (HelpSteer2 drops such items).
`aggregate` does it for the five attribute ratings of a response, `aggregate_preferences` for the
preference strengths (-3..3) of a pair of responses (HelpSteer2-Preference). Raters' rows of one item
meet on a key: `response_key` (prompt, response) for ratings, `pair_key` (prompt, response_1,
response_2, in that order) for preferences, whose rows `group_pairs` gathers into one work item per pair."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from annotators.helpsteer.preference import round_strength
from factory.errors import FactoryError
from factory.ids import stable_hash
from schemas.ratings import ATTRIBUTES


@dataclass
class Aggregate:
    scores: dict[str, float | None]
    kept: list[int]          # indices of the kept raters
    spread: float | None     # max - min helpfulness among the kept
    high_disagreement: bool | None


@dataclass
class PreferenceAggregate:
    strength: int            # the kept strengths' mean, rounded half away from zero
    mean: float
    kept: list[int]          # indices of the kept raters
    spread: int              # max - min strength among the kept
    high_disagreement: bool


def _matrix(ratings: list[dict[str, float | None]]) -> np.ndarray:
    return np.array([[np.nan if r.get(a) is None else float(r[a]) for a in ATTRIBUTES] for r in ratings])


def _disagreement(matrix: np.ndarray) -> float:
    """Mean absolute pairwise difference over raters and the attributes they both rated."""
    differences = [np.nanmean(np.abs(a - b)) for a, b in itertools.combinations(matrix, 2)
                   if np.any(~np.isnan(a) & ~np.isnan(b))]
    return float(np.mean(differences)) if differences else 0.0


def most_agreeing(matrix: np.ndarray, keep: int) -> list[int]:
    """Indices of the `keep` rows (raters) of `matrix` (raters x scores, NaN = not rated) with the
    lowest mean pairwise difference; ties keep the earlier raters. HelpSteer2 and
    HelpSteer2-Preference both keep the three most similar annotations this way."""
    size = min(keep, len(matrix))
    return list(min(itertools.combinations(range(len(matrix)), size),
                    key=lambda subset: _disagreement(matrix[list(subset)])))


def aggregate(ratings: list[dict[str, float | None]], keep: int = 3, max_spread: float = 2.0) -> Aggregate:
    """`ratings`: one {attribute: score} per rater. Keeps the `keep` raters that agree most
    (`most_agreeing`) and averages them."""
    if not ratings:
        raise ValueError("no ratings to aggregate")
    matrix = _matrix(ratings)
    kept = most_agreeing(matrix, keep)
    chosen = matrix[kept]
    scores = {}
    for column, attribute in enumerate(ATTRIBUTES):
        values = chosen[:, column][~np.isnan(chosen[:, column])]
        scores[attribute] = float(values.mean()) if values.size else None
    helpful = chosen[:, 0][~np.isnan(chosen[:, 0])]
    spread = float(helpful.max() - helpful.min()) if helpful.size else None
    return Aggregate(scores, kept, spread, None if spread is None else spread > max_spread)


def aggregate_preferences(strengths: list[int], keep: int = 3, max_spread: float = 2.0) -> PreferenceAggregate:
    """`strengths`: one -3..3 preference per rater of a pair. The data card: "we only consider the
    most similar preferences in order to filter outliers"; as for the attribute ratings, the `keep`
    (3) most similar are averaged and rounded to the nearest point of the scale."""
    if not strengths:
        raise ValueError("no preferences to aggregate")
    kept = most_agreeing(np.array(strengths, dtype=float).reshape(-1, 1), keep)
    values = [strengths[i] for i in kept]
    mean = sum(values) / len(values)
    spread = max(values) - min(values)
    return PreferenceAggregate(round_strength(mean), mean, kept, spread, spread > max_spread)


def response_key(prompt: str, response: str) -> str:
    return stable_hash("response", prompt, response)


PAIR_COLUMNS = ["id", "prompt", "response_1", "response_2", "preference_strength", "rater"]
PAIR_OPTIONAL = ["response_1_id", "response_2_id", "justification"]


def pair_key(prompt: str, response_1: str, response_2: str) -> str:
    return stable_hash("preference-pair", prompt, response_1, response_2)


def _check_strengths(frame: pl.DataFrame) -> None:
    """A strength off the -3..3 scale stops the run before anything is written, naming the row."""
    bad = frame.filter(~pl.col("preference_strength").is_between(-3, 3))
    if bad.height:
        row = bad.row(0, named=True)
        raise FactoryError(f"stage helpsteer_preference_aggregate: input row {row['id']!r}: field 'preference_strength': "
                           f"{row['preference_strength']} is outside -3..3 ({bad.height} such row(s))")


def group_pairs(rows: pa.Table) -> pa.Table:
    """One work item per pair (`id` = pair key) with each rater's row id, rater, strength, justification
    and response ids as lists in input order. Error rows and rows without a strength are left out."""
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    frame = frame.filter(pl.col("preference_strength").is_not_null())
    if not frame.schema["preference_strength"].is_integer():
        raise FactoryError("stage helpsteer_preference_aggregate: column 'preference_strength' must be an integer, "
                           f"not {frame.schema['preference_strength']}")
    _check_strengths(frame)
    frame = frame.with_columns(*(pl.lit(None, pl.String).alias(c) for c in PAIR_OPTIONAL if c not in frame.columns))
    keys = [pair_key(p, a, b) for p, a, b in zip(frame["prompt"], frame["response_1"], frame["response_2"], strict=True)]
    frame = frame.with_columns(pl.Series("pair_key", keys, pl.String),
                               pl.col("preference_strength").cast(pl.Int64), pl.col("rater").cast(pl.String))
    grouped = frame.group_by("pair_key", maintain_order=True).agg(
        pl.col("id").alias("member_ids"), pl.col("prompt").first(), pl.col("response_1").first(),
        pl.col("response_2").first(), pl.col("rater"), pl.col("preference_strength"), pl.col("justification"),
        pl.col("response_1_id").drop_nulls().first(), pl.col("response_2_id").drop_nulls().first(),
    ).rename({"pair_key": "id"})
    return grouped.to_arrow()


def representative(strengths: list[int], justifications: list[str | None], kept: list[int], strength: int) -> str | None:
    """The justification of the first kept rater whose strength is nearest the aggregate (the data
    card's top-level statement is one of its three most similar preferences; which one it does not say)."""
    written = [i for i in kept if justifications[i] and justifications[i].strip()]
    return justifications[min(written, key=lambda i: (abs(strengths[i] - strength), i))] if written else None
