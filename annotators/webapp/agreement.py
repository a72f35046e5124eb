"""Inter-rater agreement on ordinal labels: quadratic-weighted Cohen's kappa per pair of raters
(scikit-learn) and Fleiss' kappa over all raters of an item (statsmodels).

Quadratic weights suit the 0-4 and -3..+3 scales: a 3 against a 4 costs little, a 0 against a 4
a lot. Fleiss' kappa is nominal (every disagreement costs the same) and needs the same number of
raters per item, so it is the stricter of the two figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from annotators.offline.agreement import cohen_kappa
from annotators.offline.agreement import fleiss_kappa as items_by_raters_fleiss

Labels = Mapping[str, Mapping[str, int]]  # rater -> unit (item or response) -> label


def weighted_kappa(first: Sequence[int], second: Sequence[int], labels: Sequence[int]) -> float | None:
    """Quadratic-weighted Cohen's kappa; None with fewer than two items or when undefined
    (both raters gave one and the same label throughout: chance agreement is 1)."""
    if len(first) != len(second):
        raise ValueError("both raters need the same items")
    if len(first) < 2:
        return None
    return cohen_kappa(first, second, weights="quadratic", labels=list(labels))


def fleiss_kappa(ratings: Sequence[Sequence[int]], labels: Sequence[int]) -> float | None:
    """Fleiss' kappa; `ratings` holds one row per item with the same number (>= 2) of labels each."""
    if len(ratings) < 2 or len({len(row) for row in ratings}) != 1 or len(ratings[0]) < 2:
        return None
    codes = {label: code for code, label in enumerate(labels)}
    return items_by_raters_fleiss(np.array([[codes[label] for label in row] for row in ratings]))


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    items: int                 # units both raters labelled
    kappa: float | None


def pair_agreement(first: str, second: str, labels: Labels, scale: Sequence[int],
                   other: Labels | None = None) -> PairAgreement:
    """Kappa of `first` (in `labels`) against `second` (in `other`, default `labels`) on shared units."""
    a, b = labels.get(first, {}), (other if other is not None else labels).get(second, {})
    shared = sorted(set(a) & set(b))
    return PairAgreement(first, second, len(shared),
                         weighted_kappa([a[u] for u in shared], [b[u] for u in shared], scale))


def pairwise(labels: Labels, scale: Sequence[int]) -> list[PairAgreement]:
    """Every pair of raters in `labels` (sorted by name)."""
    return [pair_agreement(a, b, labels, scale) for a, b in itertools.combinations(sorted(labels), 2)]


def mean_kappa(pairs: Sequence[PairAgreement]) -> float | None:
    """Mean over the pairs whose kappa is defined (each pair counts once, whatever its size)."""
    values = [p.kappa for p in pairs if p.kappa is not None]
    return float(np.mean(values)) if values else None


def fleiss_over_units(labels: Labels, scale: Sequence[int], raters_per_unit: int) -> tuple[float | None, int]:
    """Fleiss' kappa over the units labelled by at least `raters_per_unit` raters (the first ones
    by rater name when more); returns (kappa, units used)."""
    by_unit: dict[str, list[tuple[str, int]]] = {}
    for rater, units in labels.items():
        for unit, label in units.items():
            by_unit.setdefault(unit, []).append((rater, label))
    rows = [[label for _, label in sorted(found)[:raters_per_unit]]
            for unit, found in sorted(by_unit.items()) if len(found) >= raters_per_unit]
    return fleiss_kappa(rows, scale), len(rows)
