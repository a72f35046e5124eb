"""Agreement statistics: Cohen's kappa (scikit-learn), weighted kappa for ordinal labels, Fleiss'
kappa for several raters (statsmodels), each with a bootstrap percentile interval over items.

Labels are made comparable across sources here: a pairwise verdict is rewritten relative to the
pair's texts in sorted order ('first' / 'tie' / 'second', an ordinal scale), so a human who saw the
pair as (B, A) and a judge who saw (A, B) label the same item the same way; a single score is the
Likert value rounded half up.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from factory.ids import stable_hash

PAIR_LABELS = ("first", "tie", "second")  # ordinal: 'first' text better < tie < 'second' text better


def pair_key(prompt: str, a: str, b: str) -> str:
    return stable_hash("pair-item", prompt, *sorted((a, b)))


def single_key(prompt: str, response: str) -> str:
    return stable_hash("single-item", prompt, response)


def canonical_pair_label(a: str, b: str, verdict: str) -> str:
    """'first' / 'second' / 'tie' for verdict 'A' / 'B' / 'tie' about texts (a, b), relative to sorted order."""
    if verdict == "tie" or a == b:
        return "tie"
    winner = a if verdict == "A" else b
    return "first" if winner == min(a, b) else "second"


def likert_label(score: float) -> int:
    return int(math.floor(score + 0.5))


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def cohen_kappa(a: Sequence, b: Sequence, weights: str | None = None, labels: Sequence | None = None) -> float | None:
    """Cohen's kappa (weights None, 'linear' or 'quadratic'); None when undefined (a single label)."""
    if len(a) != len(b):
        raise ValueError(f"rater label lists differ in length ({len(a)} vs {len(b)})")
    if not len(a):
        return None
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # sklearn warns on a single label; we return None instead
        return _finite(cohen_kappa_score(a, b, weights=weights, labels=labels))


def fleiss_kappa(ratings: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x raters label matrix (every item labelled by every rater)."""
    ratings = np.asarray(ratings)
    if ratings.ndim != 2 or ratings.shape[0] == 0 or ratings.shape[1] < 2:
        return None
    counts, _ = aggregate_raters(ratings)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(statsmodels_fleiss(counts, method="fleiss"))


def bootstrap_ci(statistic: Callable[[np.ndarray], float | None], n_items: int, n_boot: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile interval of `statistic(indices)` over item resamples; undefined resamples are skipped."""
    if n_items < 2 or n_boot < 1:
        return None, None
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n_items, n_items)) for _ in range(n_boot)]
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def kappa_with_ci(a: Sequence, b: Sequence, weights: str | None = None, labels: Sequence | None = None,
                  n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    a_array, b_array = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    value = cohen_kappa(list(a), list(b), weights, labels)
    low, high = bootstrap_ci(lambda idx: cohen_kappa(list(a_array[idx]), list(b_array[idx]), weights, labels),
                             len(a), n_boot, confidence, seed)
    return value, low, high


def fleiss_with_ci(ratings: np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[float | None, float | None, float | None]:
    ratings = np.asarray(ratings)
    low, high = bootstrap_ci(lambda idx: fleiss_kappa(ratings[idx]), ratings.shape[0], n_boot, confidence, seed)
    return fleiss_kappa(ratings), low, high


def percent_agreement(a: Sequence, b: Sequence) -> float | None:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if len(a) else None
