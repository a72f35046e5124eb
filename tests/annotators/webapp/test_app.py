"""HTTP tests of the rating app through FastAPI's TestClient, over a real store in tmp_path."""

from __future__ import annotations

import pytest

from tests.annotators.webapp.conftest import OWNER, TOKENS, answer, auth


def own_items(client, rater: str) -> list[str]:
    return [item["id"] for item in client.get("/api/assignments", headers=auth(rater)).json()["items"]]


def stored(store, dataset: str, rater: str | None = None) -> int:
    if not store.has(dataset):
        return 0
    where = f" WHERE rater = '{rater}'" if rater else ""
    return store.sql(f"SELECT count(*) AS n FROM {dataset}{where}")["n"][0]


def test_no_token_is_401_and_a_wrong_token_403(make_app):
    client, _, _ = make_app()
    assert client.get("/api/assignments").status_code == 401
    assert client.get("/api/assignments").headers["www-authenticate"] == "Bearer"
    page = client.get("/next")
    assert page.status_code == 401 and 'name="token"' in page.text  # the login form
    assert client.get("/api/assignments", headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 403
    client.cookies.set("factory_annotate_token", "wrong-token")
    assert client.get("/next").status_code == 403
    client.cookies.clear()
    assert client.get("/overview").status_code == 401
    assert client.get("/overview", headers=auth("alice")).status_code == 403  # raters do not see the overview
    assert client.get("/api/assignments", headers=auth("owner")).status_code == 403  # the owner does not rate
    assert client.get("/overview", headers=auth("owner")).status_code == 200


def test_login_sets_a_cookie_and_routes_raters_and_owner(make_app):
    client, _, _ = make_app()
    assert client.post("/login", data={"token": "wrong-token"}).status_code == 403
    response = client.post("/login", data={"token": TOKENS["bob"]}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/next"
    assert "httponly" in response.headers["set-cookie"].lower() and "samesite=strict" in response.headers["set-cookie"].lower()
    page = client.get("/next")  # the cookie is sent from now on
    assert page.status_code == 200 and "of" in page.text and "bob" in page.text
    owner = client.post("/login", data={"token": OWNER}, follow_redirects=False)
    assert owner.headers["location"] == "/overview"


def test_a_rater_cannot_read_or_write_another_raters_item(make_app):
    client, campaign, store = make_app(raters_per_item=1)
    alice, bob = set(own_items(client, "alice")), set(own_items(client, "bob"))
    assert alice and bob and not alice & bob
    theirs = min(bob)
    assert client.get(f"/api/items/{theirs}", headers=auth("alice")).status_code == 403
    assert client.get(f"/items/{theirs}", headers=auth("alice")).status_code == 403
    assert client.post(f"/api/items/{theirs}", json=answer(campaign), headers=auth("alice")).status_code == 403
    assert client.post(f"/items/{theirs}", data=answer(campaign), headers=auth("alice")).status_code == 403
    assert client.get("/api/items/no-such-item", headers=auth("alice")).status_code == 404
    assert stored(store, "ratings") == 0 and stored(store, "helpsteer_preferences") == 0


@pytest.mark.parametrize("change, field, message", [
    ({"helpfulness_1": 5}, "helpfulness_1", "5 is outside 0..4"),
    ({"coherence_2": -1}, "coherence_2", "-1 is outside 0..4"),
    ({"verbosity_1": 2.5}, "verbosity_1", "expected an integer"),
    ({"correctness_1": "three"}, "correctness_1", "expected an integer"),
    ({"complexity_2": None}, "complexity_2", "required"),
    ({"preference_strength": 4}, "preference_strength", "4 is outside -3..3"),
    ({"justification": "   "}, "justification", "required"),
    ({"sneaky": 1}, "sneaky", "unknown field"),
])
def test_invalid_answers_are_422_with_the_field_and_write_nothing(make_app, change, field, message):
    client, campaign, store = make_app()
    item = own_items(client, "alice")[0]
    body = {**answer(campaign), **change}
    response = client.post(f"/api/items/{item}", json=body, headers=auth("alice"))
    assert response.status_code == 422
    problems = {p["field"]: p["message"] for p in response.json()["detail"]}
    assert message in problems[field]
    form = {k: "" if v is None else str(v) for k, v in body.items()}
    page = client.post(f"/items/{item}", data=form, headers=auth("alice"))
    assert page.status_code == 422 and "not saved" in page.text and field in page.text
    assert stored(store, "ratings") == 0 and stored(store, "helpsteer_preferences") == 0


def test_a_missing_justification_is_refused_for_preferences(make_app):
    client, campaign, store = make_app(task="preference")
    item = own_items(client, "carol")[0]
    body = answer(campaign)
    del body["justification"]
    response = client.post(f"/api/items/{item}", json=body, headers=auth("carol"))
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "justification"
    assert not store.has("helpsteer_preferences")


def test_a_resubmit_replaces_the_earlier_answer(make_app):
    client, campaign, store = make_app()
    items = own_items(client, "alice")
    for score, strength in ((1, -3), (4, 2), (2, 1)):
        assert client.post(f"/api/items/{items[0]}", json=answer(campaign, score, strength), headers=auth("alice")).status_code == 200
    client.post(f"/api/items/{items[1]}", json=answer(campaign, 0), headers=auth("alice"))
    ratings = store.sql("SELECT id, response_key, helpfulness, source, rater, stage FROM ratings")
    assert ratings.height == 4 and ratings["id"].n_unique() == 4 and ratings["response_key"].n_unique() == 4
    assert set(ratings["source"]) == {"human"} and set(ratings["rater"]) == {"alice"}
    assert set(ratings["stage"]) == {"annotate/test"}
    preferences = store.sql("SELECT parent_id, preference_strength FROM helpsteer_preferences ORDER BY parent_id")
    assert preferences.height == 2
    assert dict(zip(preferences["parent_id"], preferences["preference_strength"]))[items[0]] == 1  # the last answer
    assert client.get(f"/api/items/{items[0]}", headers=auth("alice")).json()["answer"]["helpfulness_1"] == "2"


def test_a_restart_loses_nothing_that_was_submitted(make_app):
    client, campaign, store = make_app()
    items = own_items(client, "bob")
    for item in items[:2]:
        assert client.post(f"/api/items/{item}", json=answer(campaign, 3), headers=auth("bob")).status_code == 200
    del client  # the process dies; only the store remains
    restarted, _, _ = make_app()
    progress = restarted.get("/api/assignments", headers=auth("bob")).json()
    assert progress["done"] == 2 and progress["total"] == len(items)
    assert [i["done"] for i in progress["items"]][:2] == [True, True]
    # A re-submit after the restart still replaces (the app knows the stored rows).
    restarted.post(f"/api/items/{items[0]}", json=answer(campaign, 1), headers=auth("bob"))
    assert store.sql("SELECT count(*) AS n FROM helpsteer_preferences")["n"][0] == 2
    assert store.sql("SELECT count(*) AS n FROM ratings")["n"][0] == 4
    assert f"2 of {len(items)}</strong> done" in restarted.get(f"/items/{items[-1]}", headers=auth("bob")).text


def test_form_flow_progress_skip_and_saved_banner(make_app):
    client, campaign, _ = make_app()
    items = own_items(client, "carol")
    first = client.get("/next", headers=auth("carol"), follow_redirects=False)
    assert first.headers["location"] == f"/items/{items[0]}"
    page = client.get(first.headers["location"], headers=auth("carol"))
    assert f"0 of {len(items)}" in page.text and f"item 1 of {len(items)}" in page.text
    # Markdown rendered, raw HTML kept as text, definitions beside the controls, shortcuts wired.
    assert '<code class="language-python">' in page.text and "&lt;script&gt;alert(" in page.text
    assert "<script>alert(" not in page.text
    assert "Correctness" in page.text and "without errors or hallucinations" in page.text
    assert 'data-keys="01234"' in page.text and 'data-keys="1234567"' in page.text and "keydown" in page.text
    skip = client.get(f"/next?after={items[0]}", headers=auth("carol"), follow_redirects=False)
    assert skip.headers["location"] == f"/items/{items[1]}"
    form = {k: str(v) for k, v in answer(campaign).items()}
    saved = client.post(f"/items/{items[1]}", data=form, headers=auth("carol"), follow_redirects=False)
    assert saved.status_code == 303
    landed = client.get(saved.headers["location"], headers=auth("carol"))
    assert "Saved your answer" in landed.text and f"1 of {len(items)}" in landed.text
    # The skipped item is offered again once the others are done.
    for item in items[2:]:
        client.post(f"/api/items/{item}", json=answer(campaign), headers=auth("carol"))
    again = client.get(f"/next?after={items[-1]}", headers=auth("carol"), follow_redirects=False)
    assert again.headers["location"] == f"/items/{items[0]}"
    client.post(f"/api/items/{items[0]}", json=answer(campaign), headers=auth("carol"))
    done = client.get("/next", headers=auth("carol"))
    assert "All done" in done.text
    # The stored answer fills the form when revisited.
    revisit = client.get(f"/items/{items[1]}", headers=auth("carol"))
    assert 'value="-2" required checked' in revisit.text and "the first explains it" in revisit.text


def test_ratings_only_campaign_writes_only_ratings(make_app):
    client, campaign, store = make_app(task="ratings", raters_per_item=3)
    item = own_items(client, "alice")[0]
    assert client.post(f"/api/items/{item}", json=answer(campaign, 4), headers=auth("alice")).status_code == 200
    assert store.sql("SELECT count(*) AS n FROM ratings")["n"][0] == 1 and not store.has("helpsteer_preferences")
    refused = client.post(f"/api/items/{item}", json={**answer(campaign), "preference_strength": 1}, headers=auth("alice"))
    assert refused.status_code == 422  # no preference in a ratings campaign
