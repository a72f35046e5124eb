"""Win rates: a verbose-but-not-better model keeps its raw win rate and loses its length-controlled one."""

import numpy as np
import polars as pl
import pytest

from annotators.winrates import fit_glm, length_feature, oriented, pair_outcomes, win_rate


def synthetic(n: int, verbose: bool, seed: int = 0):
    """Outcomes of model A against a baseline: A is `verbose` (usually longer) and the judge likes length;
    A is not better otherwise (at equal length it wins half the time)."""
    rng = np.random.default_rng(seed)
    len_b = rng.normal(600, 100, n).clip(50)
    delta = rng.normal(400 if verbose else 0, 300, n)
    len_a = (len_b + delta).clip(50)
    p_win = 1 / (1 + np.exp(-3 * np.tanh((len_a - len_b) / np.std(len_a - len_b))))
    draws = rng.random(n)
    outcomes = np.where(draws < p_win, 1.0, 0.0)
    outcomes[rng.random(n) < 0.1] = 0.5  # some ties
    return list(outcomes), list(len_a), list(len_b)


def test_verbose_model_loses_its_length_controlled_win_rate():
    result = win_rate(*synthetic(600, verbose=True), n_boot=100)
    assert result.win_rate > 0.75  # the judge's love of length shows in the raw rate
    assert abs(result.lc_win_rate - 0.5) < 0.1  # and is gone once length is controlled
    assert result.lc_win_rate < result.win_rate - 0.2
    assert result.length_coef > 1
    assert result.win_rate_ci[0] < result.win_rate < result.win_rate_ci[1]
    assert result.lc_ci[0] < result.lc_win_rate < result.lc_ci[1]
    assert result.wins + result.losses + result.ties == result.n == 600


def test_no_length_difference_leaves_the_win_rate_alone():
    result = win_rate(*synthetic(600, verbose=False, seed=3), n_boot=0)
    assert result.lc_win_rate == pytest.approx(result.win_rate, abs=0.05)
    assert result.win_rate_ci == (None, None)


def test_degenerate_inputs():
    assert win_rate([], [], []).win_rate is None
    sweep = win_rate([1.0, 1.0, 1.0], [10, 20, 30], [5, 5, 5], n_boot=20)
    assert sweep.win_rate == 1.0 and sweep.lc_win_rate == 1.0
    assert fit_glm(np.array([0.5, 0.5]), np.zeros(2))[0] == pytest.approx(0.0, abs=1e-6)
    assert list(length_feature(np.array([3.0, 3.0]))) == [0.0, 0.0]


def test_pair_outcomes_from_every_strategy():
    rows = [
        {"id": "j1", "evaluator": "e", "strategy": "pairwise", "verdict": "A", "configurations": ["x", "y"],
         "candidates": ["long answer", "short"], "ranking": None, "score": None, "group_id": "p1"},
        {"id": "j2", "evaluator": "e", "strategy": "pairwise", "verdict": "tie", "configurations": ["y", "x"],
         "candidates": ["s", "longer"], "ranking": None, "score": None, "group_id": "p2"},
        {"id": "j3", "evaluator": "r", "strategy": "ranking", "verdict": None, "configurations": ["x", "y", "x"],
         "candidates": ["a", "bb", "ccc"], "ranking": [1, 0, 2], "score": None, "group_id": "p1"},
        {"id": "j4", "evaluator": "s", "strategy": "single", "verdict": None, "configurations": ["x"],
         "candidates": ["a"], "ranking": None, "score": 4.0, "group_id": "p1"},
        {"id": "j5", "evaluator": "s", "strategy": "single", "verdict": None, "configurations": ["y"],
         "candidates": ["b"], "ranking": None, "score": 2.5, "group_id": "p1"},
    ]
    outcomes = pair_outcomes(pl.DataFrame(rows))
    x_vs_y = oriented(outcomes, "x", "y").sort("evaluator", "item")
    assert x_vs_y.filter(pl.col("evaluator") == "e")["outcome"].to_list() == [1.0, 0.5]
    assert x_vs_y.filter(pl.col("evaluator") == "r")["outcome"].to_list() == [0.0, 0.0]  # y ranked above both x
    assert x_vs_y.filter(pl.col("evaluator") == "s")["outcome"].to_list() == [1.0]
