"""Raw and length-controlled win rates (AlpacaEval 2.0 LC, arXiv 2404.04475).

Raw: the share of pairs configuration A wins against baseline B, a tie counting half.

Length-controlled: the GLM of alpaca_eval's `metrics/glm_winrate.py` (`get_length_controlled_winrate`,
GLM `length_controlled_v1`). For every judged instruction x with preference p_x = P(A preferred)
(1 win, 0.5 tie, 0 loss):

    logit q_x = w_len * tanh((len_A - len_B) / std(len_A - len_B)) + w_diff * d_x + w_model * 1

fitted with no intercept, an L1 penalty (liblinear), and the inverse strength C picked from
logspace(-4, 4, 10) by 5-fold grouped cross-validation on the soft log-loss (each row appears once
with label 1 weighted p_x and once with label 0 weighted 1 - p_x; a row's two copies share a fold).
d_x is the instruction's difficulty (see `difficulties`). "Regularised towards the baseline": rows
where the baseline was judged against length-gamed versions of itself (`GamedSet`) are added with
model indicator 0 and weight lambda / (number of gamed sets) (reference: lambda = 0.2, two sets), so
they pin w_len and w_diff to what pure length changes of the baseline do. The LC win rate is the
mean over A's instructions of sigmoid(w_diff * d_x + w_model): the prediction at zero length difference.

Deviations from the reference, all for data this factory has and AlpacaEval does not:
- alpaca_eval's length feature is baseline minus model; ours is A minus B, so `length_coef` has the
  opposite sign of alpaca_eval's weight (the LC win rate is unchanged).
- alpaca_eval ships fixed difficulties and gamed annotations for its 805 instructions; here both come
  from the judgments themselves (leave-one-configuration-out difficulties, optional gamed sets).
- Fewer instructions than folds: the folds shrink to the number of rows; a single row, or outcomes all
  one way with no gamed rows, has no finite optimum and reports 1 or 0 (all wins / all losses).
- Bootstrap intervals refit at the C chosen on the full data (no cross-validation per resample).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import sklearn
from pydantic import BaseModel, ConfigDict, Field
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

OUTCOME = {"A": 1.0, "B": 0.0, "tie": 0.5}


class GLMSettings(BaseModel):
    """The length-controlled GLM's settings; defaults are alpaca_eval's `length_controlled_v1`."""

    model_config = ConfigDict(extra="forbid")

    n_splits: int = Field(default=5, ge=2, description="Grouped cross-validation folds choosing the L1 strength.")
    cs: int = Field(default=10, ge=1, description="Candidate inverse strengths C: logspace(-4, 4, cs), as sklearn.")
    fallback_c: float = Field(default=100.0, gt=0, description="C when there are too few rows to cross-validate "
                              "(alpaca_eval's C without cross-validation).")
    regularize_to_baseline_lambda: float | None = Field(
        default=0.2, ge=0, description="Total weight of the gamed-baseline rows (split evenly over the gamed sets); "
        "None or 0: no regularisation towards the baseline.")
    random_state: int = Field(default=123, description="liblinear's seed (alpaca_eval's).")


@dataclass
class GamedSet:
    """The baseline judged against a length-gamed version of itself (e.g. asked to be verbose/concise):
    outcomes from the gamed version's side, its lengths and the baseline's, per instruction."""

    outcomes: list[float]
    len_gamed: list[float]
    len_baseline: list[float]
    difficulty: list[float] = field(default_factory=list)  # empty: all zero


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
    difficulty_coef: float | None = None
    model_coef: float | None = None
    c: float | None = None


@dataclass
class LCFit:
    lc_win_rate: float
    length_coef: float
    difficulty_coef: float
    model_coef: float
    c: float | None


def length_feature(delta: np.ndarray) -> np.ndarray:
    """tanh(delta / std(delta)), std with ddof=1 (pandas' default, as the reference); 0 when it is undefined."""
    std = float(np.std(delta, ddof=1)) if len(delta) > 1 else 0.0
    return np.tanh(delta / std) if std > 0 else np.zeros_like(delta, dtype=float)


def _logistic(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _soft_logloss(p: np.ndarray, q: np.ndarray, weight: np.ndarray) -> float:
    """The reference's scorer: mean over rows (both copies) of the weighted cross-entropy to soft label p."""
    q = np.clip(q, 1e-15, 1 - 1e-15)
    return float(-np.mean(weight * (p * np.log(q) + (1 - p) * np.log(1 - q))))


# sklearn 1.8 spells the L1 penalty l1_ratio=1 (and deprecates penalty="l1"); older releases need penalty.
_L1 = {"l1_ratio": 1.0} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) else {"penalty": "l1"}


def _fit(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, c: float, seed: int) -> np.ndarray:
    model = LogisticRegression(C=c, solver="liblinear", fit_intercept=False, random_state=seed, **_L1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y, sample_weight=sample_weight)
    return model.coef_[0].copy()


def fit_soft_glm(x: np.ndarray, p: np.ndarray, weight: np.ndarray, settings: GLMSettings,
                 c: float | None = None) -> tuple[np.ndarray, float]:
    """(coefficients, C) of the no-intercept L1 logistic fit to soft labels p with row weights.

    Rows are duplicated (label 1 weighted p*w, label 0 weighted (1-p)*w); the duplicates of a row form one
    group of the grouped k-fold, so a row never sits in both the training and the held-out part. Without
    `c`, C is the first of logspace(-4, 4, cs) with the best mean held-out score, as LogisticRegressionCV.
    """
    n = len(p)
    x2 = np.vstack([x, x])
    y2 = np.concatenate([np.ones(n), np.zeros(n)])
    fit_weight = np.concatenate([p * weight, (1 - p) * weight])
    soft = np.concatenate([p, p])  # the soft label either copy stands for
    score_weight = np.concatenate([weight, weight])
    if c is None:
        splits = min(settings.n_splits, n)
        if splits < 2:
            c = settings.fallback_c
        else:
            groups = np.concatenate([np.arange(n), np.arange(n)])
            folds = list(GroupKFold(n_splits=splits).split(x2, y2, groups))
            candidates = np.logspace(-4, 4, settings.cs)
            scores = np.zeros(len(candidates))
            for train, test in folds:
                for k, candidate in enumerate(candidates):
                    if len(np.unique(y2[train])) < 2:
                        scores[k] += -math.inf
                        continue
                    coef = _fit(x2[train], y2[train], fit_weight[train], float(candidate), settings.random_state)
                    q = _logistic(x2[test] @ coef)
                    scores[k] += -_soft_logloss(soft[test], q, score_weight[test])
            c = float(candidates[int(np.argmax(scores))])
    return _fit(x2, y2, fit_weight, c, settings.random_state), c


def lc_fit(outcomes: np.ndarray, delta: np.ndarray, difficulty: np.ndarray | None = None,
           gamed: list[GamedSet] | None = None, settings: GLMSettings | None = None, c: float | None = None) -> LCFit:
    """The length-controlled GLM for A against its baseline; see the module docstring for the formula."""
    settings = settings or GLMSettings()
    n = len(outcomes)
    difficulty = np.zeros(n) if difficulty is None else np.asarray(difficulty, dtype=float)
    own = np.column_stack([length_feature(delta), difficulty, np.ones(n)])
    lam = settings.regularize_to_baseline_lambda
    parts, preferences, weights = [], [], []
    for gamed_set in (gamed or []) if lam else []:  # the reference puts the gamed rows first
        g_delta = np.asarray(gamed_set.len_gamed, float) - np.asarray(gamed_set.len_baseline, float)
        g_diff = np.asarray(gamed_set.difficulty or [0.0] * len(g_delta), float)
        parts.append(np.column_stack([length_feature(g_delta), g_diff, np.zeros(len(g_delta))]))
        preferences.append(np.asarray(gamed_set.outcomes, float))
        weights.append(np.full(len(g_delta), lam / len(gamed)))  # type: ignore[arg-type, operator]
    parts.append(own)
    preferences.append(np.asarray(outcomes, float))
    weights.append(np.ones(n))
    p = np.concatenate(preferences)
    if len(parts) == 1 and (p.min() == p.max() == 1.0 or p.min() == p.max() == 0.0):
        # All one way and nothing else to fit: no finite optimum; the answer is that way.
        return LCFit(float(p[0]), 0.0, 0.0, math.inf if p[0] else -math.inf, None)
    coef, chosen = fit_soft_glm(np.vstack(parts), p, np.concatenate(weights), settings, c)
    zero_length = own.copy()
    zero_length[:, 0] = 0.0
    lc = float(np.mean(_logistic(zero_length @ coef)))
    return LCFit(lc, float(coef[0]), float(coef[1]), float(coef[2]), chosen)


def difficulties(outcomes: pl.DataFrame, a: str, b: str, evaluator: str) -> dict[str, float]:
    """Difficulty of each instruction for A's comparison with baseline B.

    alpaca_eval's difficulty is logit(mean preference for the non-baseline model) per instruction over
    its leaderboard's models. Here: over the *other* configurations judged against B by the same
    evaluator (leave A out, so A's own outcome never explains itself), smoothed as (wins + 1/2)/(n + 1)
    so one judgment gives a finite logit. Instructions no other configuration was judged on get 0.
    """
    others = oriented_all(outcomes, b).filter((pl.col("evaluator") == evaluator) & (pl.col("configuration_a") != a))
    result: dict[str, float] = {}
    for (instruction,), group in others.group_by("instruction"):
        share = (float(group["outcome"].sum()) + 0.5) / (len(group) + 1)
        result[str(instruction)] = math.log(share / (1 - share))
    return result


def _sigmoid(value: float) -> float:
    return 1.0 if value == math.inf else (0.0 if value == -math.inf else 1.0 / (1.0 + math.exp(-value)))


def _interval(values: list[float], confidence: float) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def win_rate(outcomes: list[float], length_a: list[float], length_b: list[float], n_boot: int = 200,
             confidence: float = 0.95, seed: int = 0, settings: GLMSettings | None = None,
             difficulty: list[float] | None = None, gamed: list[GamedSet] | None = None) -> WinRate:
    """Win rate of A over baseline B from per-instruction outcomes (1 win, 0.5 tie, 0 loss) and lengths."""
    settings = settings or GLMSettings()
    y = np.asarray(outcomes, dtype=float)
    delta = np.asarray(length_a, dtype=float) - np.asarray(length_b, dtype=float)
    diff = np.zeros(len(y)) if difficulty is None else np.asarray(difficulty, dtype=float)
    n = len(y)
    counts = (int((y == 1).sum()), int((y == 0).sum()), int((y == 0.5).sum()))
    if n == 0:
        return WinRate(0, 0, 0, 0, None, (None, None), None, (None, None), None)
    fit = lc_fit(y, delta, diff, gamed, settings)
    raw_boot, lc_boot = [], []
    rng = np.random.default_rng(seed)
    for _ in range(n_boot if n > 1 else 0):
        idx = rng.integers(0, n, n)
        raw_boot.append(float(y[idx].mean()))
        lc_boot.append(lc_fit(y[idx], delta[idx], diff[idx], gamed, settings, c=fit.c).lc_win_rate)
    return WinRate(n, *counts, float(y.mean()), _interval(raw_boot, confidence), fit.lc_win_rate,
                   _interval(lc_boot, confidence), fit.length_coef, fit.difficulty_coef,
                   None if math.isinf(fit.model_coef) else fit.model_coef, fit.c)


def pair_outcomes(judgments: pl.DataFrame) -> pl.DataFrame:
    """One row per (evaluator, configuration pair, judged item): configuration_a, configuration_b,
    outcome for A, len_a, len_b, item (the judgment) and instruction (the prompt, `group_id`). Pairwise
    verdicts count directly; a ranking gives every pair of its candidates with different
    configurations; single scores are compared within a prompt (group)."""
    rows: list[dict] = []

    def add(evaluator: str, a: tuple[str, str], b: tuple[str, str], outcome: float, item: str,
            instruction: str) -> None:
        (config_a, text_a), (config_b, text_b) = a, b
        if config_a != config_b:
            rows.append({"evaluator": evaluator, "configuration_a": config_a, "configuration_b": config_b,
                         "outcome": outcome, "len_a": len(text_a), "len_b": len(text_b), "item": item,
                         "instruction": instruction})

    singles: dict[tuple[str, str], list[tuple[str, str, float]]] = {}
    for row in judgments.iter_rows(named=True):
        candidates = list(zip(row["configurations"] or [], row["candidates"] or [], strict=False))
        instruction = str(row.get("group_id") or row["id"])
        if row["strategy"] == "pairwise" and row["verdict"] in OUTCOME and len(candidates) == 2:
            add(row["evaluator"], candidates[0], candidates[1], OUTCOME[row["verdict"]], row["id"], instruction)
        elif row["strategy"] == "ranking" and row["ranking"]:
            position = {index: place for place, index in enumerate(row["ranking"])}
            for i, j in itertools.combinations(range(len(candidates)), 2):
                add(row["evaluator"], candidates[i], candidates[j], 1.0 if position[i] < position[j] else 0.0,
                    row["id"], instruction)
        elif row["strategy"] == "single" and row["score"] is not None and candidates:
            singles.setdefault((row["evaluator"], row["group_id"]), []).append((*candidates[0], row["score"]))
    for (evaluator, group), scored in singles.items():
        for (config_a, text_a, score_a), (config_b, text_b, score_b) in itertools.combinations(scored, 2):
            outcome = 1.0 if score_a > score_b else (0.0 if score_a < score_b else 0.5)
            add(evaluator, (config_a, text_a), (config_b, text_b), outcome, f"{group}", f"{group}")
    schema = {"evaluator": pl.String, "configuration_a": pl.String, "configuration_b": pl.String,
              "outcome": pl.Float64, "len_a": pl.Int64, "len_b": pl.Int64, "item": pl.String,
              "instruction": pl.String}
    return pl.DataFrame(rows, schema=schema)


def oriented(outcomes: pl.DataFrame, a: str, b: str) -> pl.DataFrame:
    """The outcomes of A against B, whichever order each pair was stored in."""
    forward = outcomes.filter((pl.col("configuration_a") == a) & (pl.col("configuration_b") == b))
    backward = outcomes.filter((pl.col("configuration_a") == b) & (pl.col("configuration_b") == a)).select(
        "evaluator", pl.lit(a).alias("configuration_a"), pl.lit(b).alias("configuration_b"),
        (1.0 - pl.col("outcome")).alias("outcome"), pl.col("len_b").alias("len_a"), pl.col("len_a").alias("len_b"),
        "item", "instruction")
    return pl.concat([forward, backward])


def oriented_all(outcomes: pl.DataFrame, baseline: str) -> pl.DataFrame:
    """Every configuration's outcomes against `baseline`, oriented with the baseline as B."""
    others = set(outcomes["configuration_a"].to_list()) | set(outcomes["configuration_b"].to_list())
    frames = [oriented(outcomes, other, baseline) for other in sorted(others - {baseline})]
    return pl.concat(frames) if frames else outcomes.clear()
