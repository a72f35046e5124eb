"""Raw and length-controlled win rates (AlpacaEval 2.0 LC, arXiv 2404.04475, alpaca_eval `glm_winrate`).

Raw: the share of pairs configuration A wins, a tie (or a position-biased flip) counting half.
Length-controlled: a logistic GLM of the judge's preference for A on an intercept (the model term)
and tanh(length difference / its standard deviation); the LC win rate is the GLM's prediction with
the length term set to zero, sigmoid(intercept). Ties enter as half a win and half a loss (the row
duplicated with weights). AlpacaEval also has an instruction-difficulty term, which is only
identifiable against many baselines; with one baseline per comparison it is left out.
Both come with bootstrap percentile intervals over pairs.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

OUTCOME = {"A": 1.0, "B": 0.0, "tie": 0.5}


@dataclass
class WinRate:
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    win_rate_ci: tuple[float | None, float | None]
    lc_win_rate: float | None
    lc_ci: tuple[float | None, float | None]
    length_coef: float | None


def length_feature(delta: np.ndarray) -> np.ndarray:
    std = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    return np.tanh(delta / std) if std > 0 else np.zeros_like(delta, dtype=float)


def fit_glm(outcomes: np.ndarray, feature: np.ndarray, regularization: float = 1.0) -> tuple[float, float]:
    """(intercept, length weight) of P(A wins) = sigmoid(intercept + weight * feature), ties as half wins."""
    x = np.concatenate([feature, feature]).reshape(-1, 1)
    y = np.concatenate([np.ones_like(outcomes), np.zeros_like(outcomes)])
    weights = np.concatenate([outcomes, 1.0 - outcomes])
    if weights[y == 1].sum() == 0 or weights[y == 0].sum() == 0:
        # Every pair went one way: the likelihood has no finite optimum; the answer is that way.
        return (math.inf if weights[y == 1].sum() else -math.inf), 0.0
    model = LogisticRegression(C=1.0 / regularization, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y, sample_weight=weights)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def _sigmoid(value: float) -> float:
    return 1.0 if value == math.inf else (0.0 if value == -math.inf else 1.0 / (1.0 + math.exp(-value)))


def _interval(values: list[float], confidence: float) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def win_rate(outcomes: list[float], length_a: list[float], length_b: list[float], n_boot: int = 200,
             confidence: float = 0.95, seed: int = 0, regularization: float = 1.0) -> WinRate:
    """Win rate of A over B from per-pair outcomes (1 win, 0.5 tie, 0 loss) and response lengths."""
    y = np.asarray(outcomes, dtype=float)
    delta = np.asarray(length_a, dtype=float) - np.asarray(length_b, dtype=float)
    n = len(y)
    counts = (int((y == 1).sum()), int((y == 0).sum()), int((y == 0.5).sum()))
    if n == 0:
        return WinRate(0, 0, 0, 0, None, (None, None), None, (None, None), None)
    intercept, coef = fit_glm(y, length_feature(delta), regularization)
    raw_boot, lc_boot = [], []
    rng = np.random.default_rng(seed)
    for _ in range(n_boot if n > 1 else 0):
        idx = rng.integers(0, n, n)
        raw_boot.append(float(y[idx].mean()))
        lc_boot.append(_sigmoid(fit_glm(y[idx], length_feature(delta[idx]), regularization)[0]))
    return WinRate(n, *counts, float(y.mean()), _interval(raw_boot, confidence), _sigmoid(intercept),
                   _interval(lc_boot, confidence), coef)


def pair_outcomes(judgments: pl.DataFrame) -> pl.DataFrame:
    """One row per (evaluator, configuration pair, judged item): configuration_a, configuration_b,
    outcome for A, len_a, len_b. Pairwise verdicts count directly; a ranking gives every pair of its
    candidates with different configurations; single scores are compared within a prompt (group)."""
    rows: list[dict] = []

    def add(evaluator: str, a: tuple[str, str], b: tuple[str, str], outcome: float, item: str) -> None:
        (config_a, text_a), (config_b, text_b) = a, b
        if config_a != config_b:
            rows.append({"evaluator": evaluator, "configuration_a": config_a, "configuration_b": config_b,
                         "outcome": outcome, "len_a": len(text_a), "len_b": len(text_b), "item": item})

    singles: dict[tuple[str, str], list[tuple[str, str, float]]] = {}
    for row in judgments.iter_rows(named=True):
        candidates = list(zip(row["configurations"] or [], row["candidates"] or [], strict=False))
        if row["strategy"] == "pairwise" and row["verdict"] in OUTCOME and len(candidates) == 2:
            add(row["evaluator"], candidates[0], candidates[1], OUTCOME[row["verdict"]], row["id"])
        elif row["strategy"] == "ranking" and row["ranking"]:
            position = {index: place for place, index in enumerate(row["ranking"])}
            for i, j in itertools.combinations(range(len(candidates)), 2):
                add(row["evaluator"], candidates[i], candidates[j], 1.0 if position[i] < position[j] else 0.0, row["id"])
        elif row["strategy"] == "single" and row["score"] is not None and candidates:
            singles.setdefault((row["evaluator"], row["group_id"]), []).append((*candidates[0], row["score"]))
    for (evaluator, group), scored in singles.items():
        for (config_a, text_a, score_a), (config_b, text_b, score_b) in itertools.combinations(scored, 2):
            outcome = 1.0 if score_a > score_b else (0.0 if score_a < score_b else 0.5)
            add(evaluator, (config_a, text_a), (config_b, text_b), outcome, f"{group}")
    schema = {"evaluator": pl.String, "configuration_a": pl.String, "configuration_b": pl.String,
              "outcome": pl.Float64, "len_a": pl.Int64, "len_b": pl.Int64, "item": pl.String}
    return pl.DataFrame(rows, schema=schema)


def oriented(outcomes: pl.DataFrame, a: str, b: str) -> pl.DataFrame:
    """The outcomes of A against B, whichever order each pair was stored in."""
    forward = outcomes.filter((pl.col("configuration_a") == a) & (pl.col("configuration_b") == b))
    backward = outcomes.filter((pl.col("configuration_a") == b) & (pl.col("configuration_b") == a)).select(
        "evaluator", pl.lit(a).alias("configuration_a"), pl.lit(b).alias("configuration_b"),
        (1.0 - pl.col("outcome")).alias("outcome"), pl.col("len_b").alias("len_a"), pl.col("len_a").alias("len_b"), "item")
    return pl.concat([forward, backward])
