"""HelpSteer2 aggregation of several raters of one response: keep the most agreeing raters, average
their scores, flag the item when even those disagree strongly (HelpSteer2 drops such items)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from schemas.ratings import ATTRIBUTES


@dataclass
class Aggregate:
    scores: dict[str, float | None]
    kept: list[int]          # indices of the kept raters
    spread: float | None     # max - min helpfulness among the kept
    high_disagreement: bool | None


def _matrix(ratings: list[dict[str, float | None]]) -> np.ndarray:
    return np.array([[np.nan if r.get(a) is None else float(r[a]) for a in ATTRIBUTES] for r in ratings])


def _disagreement(matrix: np.ndarray) -> float:
    """Mean absolute pairwise difference over raters and the attributes they both rated."""
    differences = [np.nanmean(np.abs(a - b)) for a, b in itertools.combinations(matrix, 2)
                   if np.any(~np.isnan(a) & ~np.isnan(b))]
    return float(np.mean(differences)) if differences else 0.0


def aggregate(ratings: list[dict[str, float | None]], keep: int = 3, max_spread: float = 2.0) -> Aggregate:
    """`ratings`: one {attribute: score} per rater. Keeps the `keep` raters that agree most (the
    subset with the lowest mean pairwise difference; ties keep the earlier raters)."""
    if not ratings:
        raise ValueError("no ratings to aggregate")
    matrix = _matrix(ratings)
    size = min(keep, len(ratings))
    kept = min(itertools.combinations(range(len(ratings)), size), key=lambda subset: _disagreement(matrix[list(subset)]))
    chosen = matrix[list(kept)]
    scores = {}
    for column, attribute in enumerate(ATTRIBUTES):
        values = chosen[:, column][~np.isnan(chosen[:, column])]
        scores[attribute] = float(values.mean()) if values.size else None
    helpful = chosen[:, 0][~np.isnan(chosen[:, 0])]
    spread = float(helpful.max() - helpful.min()) if helpful.size else None
    return Aggregate(scores, list(kept), spread, None if spread is None else spread > max_spread)
