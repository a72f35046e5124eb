"""HelpSteer2 aggregation of several raters of one item: keep the most agreeing raters, average
their scores, flag the item when even those disagree strongly (HelpSteer2 drops such items).
`aggregate` does it for the five attribute ratings of a response, `aggregate_preferences` for the
preference strengths (-3..3) of a pair of responses (HelpSteer2-Preference)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from annotators.helpsteer.preference import round_strength
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
