"""Agreement figures: the statistics themselves, and the overview's numbers on a crafted campaign
recomputed independently with scikit-learn."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from annotators.webapp.agreement import fleiss_kappa, fleiss_over_units, weighted_kappa
from schemas import rows_to_arrow
from schemas.ratings import ATTRIBUTES, HelpSteerPreferenceRow, RatingRow
from tests.annotators.webapp.conftest import auth

# Fleiss (1971) as worked in textbooks (and Wikipedia): 10 subjects, 14 raters, 5 categories;
# each row counts the raters per category. kappa = 0.210.
FLEISS_TABLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_matches_the_textbook_table():
    ratings = [[category for category, count in enumerate(row) for _ in range(count)] for row in FLEISS_TABLE]
    assert fleiss_kappa(ratings, labels=range(5)) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa([[1, 1], [2, 2], [0, 0]], labels=range(5)) == pytest.approx(1.0)
    assert fleiss_kappa([[1, 1]], labels=range(5)) is None  # one item: undefined
    assert fleiss_kappa([[3, 3], [3, 3]], labels=range(5)) is None  # one label only: chance agreement is 1


def test_weighted_kappa_is_sklearns_quadratic_kappa():
    first, second = [0, 1, 2, 3, 4, 4, 2], [0, 2, 2, 4, 3, 4, 1]
    assert weighted_kappa(first, second, range(5)) == pytest.approx(
        cohen_kappa_score(first, second, weights="quadratic", labels=list(range(5))))
    assert weighted_kappa([2, 2], [2, 2], range(5)) is None and weighted_kappa([1], [1], range(5)) is None


def test_fleiss_over_units_takes_items_with_enough_raters():
    labels = {"a": {"x": 1, "y": 2, "z": 0}, "b": {"x": 1, "y": 3}, "c": {"x": 2, "z": 0}}
    kappa, used = fleiss_over_units(labels, range(5), 2)
    assert used == 3 and kappa == pytest.approx(fleiss_kappa([[1, 1], [2, 3], [0, 0]], range(5)))


# Crafted answers of three raters on six items (helpfulness of response 1, preference strength);
# the other attributes get helpfulness shifted, so each attribute has its own figures.
HELPFULNESS = {"alice": [4, 3, 1, 0, 2, 4], "bob": [4, 2, 1, 1, 2, 3], "carol": [0, 4, 2, 4, 1, 0]}
STRENGTH = {"alice": [-3, -2, 1, 2, 0, -1], "bob": [-3, -1, 2, 2, -1, -1], "carol": [3, 2, -2, -3, 1, 3]}
LLM = [3.6, 2.4, 1.2, 0.49, 2.51, 3.0]  # expectations: rounded half up to 4, 2, 1, 0, 3, 3


def scores_of(attribute: str, values: list[int]) -> list[int]:
    shift = ATTRIBUTES.index(attribute)
    return [min(4, v + (shift % 2)) for v in values]


def test_overview_agreement_matches_sklearn(make_app):
    client, _, store = make_app(task="both", raters_per_item=3)
    items = sorted(i["id"] for i in client.get("/api/assignments", headers=auth("alice")).json()["items"])
    assert len(items) == 6
    for rater in HELPFULNESS:
        for n, item in enumerate(items):
            body = {f"{a}_{r}": scores_of(a, HELPFULNESS[rater])[n] for a in ATTRIBUTES for r in (1, 2)}
            body.update(preference_strength=STRENGTH[rater][n], justification=f"{rater} on {item}")
            assert client.post(f"/api/items/{item}", json=body, headers=auth(rater)).status_code == 200
    # An LLM rater of response 1 of every item, and an LLM judge of the pairs (one judged in the
    # reverse order, which the overview flips back).
    app_items = {i.id: i for i in client.app.state.rating.items}
    now = dt.datetime.now(dt.timezone.utc)
    lineage = {"parent_id": None, "run_id": "r", "created_at": now, "stage": "helpsteer", "fingerprint": "f", "model": "smol"}
    store.append("ratings", rows_to_arrow([RatingRow(
        id=f"llm{n}", **lineage, response_key=app_items[item].response_keys[0], prompt=app_items[item].prompt,
        response=app_items[item].responses[0], rater="smol/default", source="llm",
        **{a: min(4.0, LLM[n] + ATTRIBUTES.index(a) % 2) for a in ATTRIBUTES},
    ) for n, item in enumerate(items)], RatingRow))
    judged = [(1, 2, s) for s in (-3, -2, 1, 2, 0)] + [(2, 1, 1)]  # last pair judged as (2, 1): +1 there is -1 here
    store.append("helpsteer_preferences", rows_to_arrow([HelpSteerPreferenceRow(
        id=f"llmp{n}", **lineage, prompt=app_items[item].prompt,
        response_1=app_items[item].responses[a - 1], response_2=app_items[item].responses[b - 1],
        response_1_id=app_items[item].response_ids[a - 1], response_2_id=app_items[item].response_ids[b - 1],
        rater="smol/judge", source="llm", preference_strength=s,
    ) for n, (item, (a, b, s)) in enumerate(zip(items, judged))], HelpSteerPreferenceRow))

    overview = client.get("/api/overview", headers=auth("owner")).json()
    summary = {s["column"]: s for s in overview["summary"]}
    assert [p["done"] for p in overview["progress"]] == [6, 6, 6]
    for attribute in ATTRIBUTES:
        # Response 1 and 2 of an item got the same scores: every response is a unit, 12 per rater.
        values = {r: scores_of(attribute, v) * 2 for r, v in HELPFULNESS.items()}
        pairs = [cohen_kappa_score(values[a], values[b], weights="quadratic", labels=list(range(5)))
                 for a, b in itertools.combinations(sorted(values), 2)]
        assert summary[attribute]["human_mean_kappa"] == pytest.approx(np.mean(pairs))
        llm = [math.floor(min(4.0, x + ATTRIBUTES.index(attribute) % 2) + 0.5) for x in LLM]
        versus = [cohen_kappa_score(llm, scores_of(attribute, HELPFULNESS[h]), weights="quadratic", labels=list(range(5)))
                  for h in sorted(HELPFULNESS)]
        assert summary[attribute]["llm_mean_kappa"]["smol/default"] == pytest.approx(np.mean(versus))
        assert summary[attribute]["fleiss_items"] == 12
    strengths = list(range(-3, 4))
    pairs = [cohen_kappa_score(STRENGTH[a], STRENGTH[b], weights="quadratic", labels=strengths)
             for a, b in itertools.combinations(sorted(STRENGTH), 2)]
    assert summary["preference_strength"]["human_mean_kappa"] == pytest.approx(np.mean(pairs))
    judge = [-3, -2, 1, 2, 0, -1]
    versus = [cohen_kappa_score(judge, STRENGTH[h], weights="quadratic", labels=strengths) for h in sorted(STRENGTH)]
    assert summary["preference_strength"]["llm_mean_kappa"]["smol/judge"] == pytest.approx(np.mean(versus))
    by_pair = {(p["first"], p["second"]): p for p in overview["human_pairs"]}
    assert by_pair[("alice", "bob")]["helpfulness"] == pytest.approx(cohen_kappa_score(
        HELPFULNESS["alice"] * 2, HELPFULNESS["bob"] * 2, weights="quadratic", labels=list(range(5))))
    # carol contradicts the others: wide spreads on helpfulness and on the preference get listed.
    flagged = {(d["item"], d["column"]) for d in overview["disagreements"]}
    assert (items[0], "helpfulness") in flagged  # 4, 4, 0: even the kept raters span 4
    assert (items[1], "preference_strength") in flagged and (items[1], "helpfulness") not in flagged  # 3, 2, 4
    page = client.get("/overview", headers=auth("owner")).text
    assert "smol/default" in page and "smol/judge" in page and "Fleiss" in page
    assert f"{summary['helpfulness']['human_mean_kappa']:.2f}" in page
