"""Kappa statistics against textbook tables and library values; calibration against human labels."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from annotators.offline.agreement import (bootstrap_ci, canonical_pair_label, cohen_kappa, fleiss_kappa, kappa_with_ci,
                                          pair_key)
from annotators.offline.calibrate import agreement_rows, human_labels, majority_labels, read_label_rows
from factory.errors import FactoryError


def test_cohen_kappa_textbook_table():
    # Wikipedia's worked example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_perfect_chance_negative_and_undefined():
    assert cohen_kappa([0, 1, 2, 1], [0, 1, 2, 1]) == pytest.approx(1.0)
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)  # agreement at chance level
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)  # systematic disagreement
    assert cohen_kappa(["A", "A"], ["A", "A"]) is None  # one label only: kappa is undefined
    assert cohen_kappa([], []) is None


def test_weighted_kappa_matches_the_formula():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 200)
    b = np.clip(a + rng.integers(-1, 2, 200), 0, 4)
    observed = np.zeros((5, 5))
    for x, y in zip(a, b):
        observed[x, y] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = np.subtract.outer(np.arange(5), np.arange(5)) ** 2
    formula = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert cohen_kappa(list(a), list(b), "quadratic") == pytest.approx(formula)
    assert cohen_kappa(list(a), list(b), "linear") == pytest.approx(cohen_kappa_score(a, b, weights="linear"))


def test_fleiss_kappa_textbook_table():
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> kappa 0.210.
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = np.array([[c for c, n in enumerate(row) for _ in range(n)] for row in counts])
    assert ratings.shape == (10, 14)
    assert fleiss_kappa(ratings) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa(np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]])) == pytest.approx(1.0)


def test_bootstrap_interval_brackets_the_value():
    rng = np.random.default_rng(1)
    a = list(rng.integers(0, 2, 300))
    b = [x if rng.random() < 0.8 else 1 - x for x in a]
    value, low, high = kappa_with_ci(a, b, n_boot=300)
    assert low < value < high and high - low < 0.3
    assert bootstrap_ci(lambda idx: 1.0, 1) == (None, None)


def test_pair_labels_do_not_depend_on_presentation_order():
    assert pair_key("p", "x", "y") == pair_key("p", "y", "x")
    assert canonical_pair_label("x", "y", "A") == canonical_pair_label("y", "x", "B") == "first"
    assert canonical_pair_label("x", "y", "tie") == "tie"


def test_human_labels_from_a_file_with_clear_errors(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"prompt": "p", "response_1": "x", "response_2": "y", "verdict": "2", "rater": "ann"}) + "\n"
                    + json.dumps({"prompt": "p", "response": "x", "score": 4}) + "\n")
    labels = human_labels(read_label_rows(str(path), store=None))
    assert labels["pairwise"]["ann"] == {pair_key("p", "x", "y"): "second"}
    assert list(labels["single"]["human"].values()) == [4]
    path.write_text(json.dumps({"prompt": "p", "response_1": "x", "response_2": "y", "verdict": "maybe"}) + "\n")
    with pytest.raises(FactoryError, match=r"labels.jsonl:1: field 'verdict'"):
        human_labels(read_label_rows(str(path), store=None))
    csv = tmp_path / "labels.csv"
    csv.write_text("prompt,response,score\np,x,9\n")
    with pytest.raises(FactoryError, match=r"labels.csv:2: field 'score': 9.0 is outside 1..5"):
        human_labels(read_label_rows(str(csv), store=None))


def test_agreement_rows_rank_evaluators_by_kappa():
    keys = [f"k{i}" for i in range(40)]
    truth = {k: ["first", "second", "tie"][i % 3] for i, k in enumerate(keys)}
    humans = {"pairwise": {"h1": truth, "h2": dict(truth), "h3": {**truth, "k0": "second"}}}
    flipped = {"first": "second", "second": "first", "tie": "tie"}
    evaluators = {"pairwise": {"good": dict(truth), "noisy": {k: (v if i % 4 else "tie") for i, (k, v) in enumerate(truth.items())},
                               "contrary": {k: flipped[v] for k, v in truth.items()}}}
    rows = agreement_rows(humans, evaluators, n_boot=50)
    ranked = {r["evaluator"]: r for r in rows if r["metric"] == "cohen_kappa" and r["reference"] == "human"}
    assert ranked["good"]["rank"] == 1 and ranked["good"]["value"] == pytest.approx(1.0)
    assert ranked["noisy"]["rank"] == 2 and ranked["contrary"]["rank"] == 3 and ranked["contrary"]["value"] < 0
    assert majority_labels(humans["pairwise"]) == truth
    fleiss = {r["evaluator"]: r for r in rows if r["metric"] == "fleiss_kappa"}
    assert fleiss["humans"]["n_raters"] == 3 and 0.9 < fleiss["humans"]["value"] < 1
    matrix = [r for r in rows if r["reference"] not in ("human", "panel")]
    assert {(r["evaluator"], r["reference"]) for r in matrix} >= {("human", "good"), ("good", "noisy")}


def test_cli_errors_are_one_line(tmp_path, capsys):
    from factory.cli import main

    store = str(tmp_path / "store")
    assert main(["report", "--out", str(tmp_path / "r"), "--store", store]) == 2
    assert main(["calibrate", "--human", str(tmp_path / "none.jsonl"), "--store", store]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "nothing to report" in errors[0] and "no data set 'judgments'" in errors[1]
