"""HTTP tests of the rating app through FastAPI's TestClient, over a real store in tmp_path."""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from annotators.webapp.security import LoginThrottle

from tests.annotators.webapp.conftest import OWNER, TOKENS, answer, auth, csrf_of, login, write_campaign


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
    client.cookies.set("factory_annotate_session", "no-such-session")
    ended = client.get("/next")
    assert ended.status_code == 401 and "session has ended" in ended.text  # unknown or revoked session
    client.cookies.clear()
    assert client.get("/overview").status_code == 401
    assert client.get("/overview", headers=auth("alice")).status_code == 403  # raters do not see the overview
    assert client.get("/api/assignments", headers=auth("owner")).status_code == 403  # the owner does not rate
    assert client.get("/overview", headers=auth("owner")).status_code == 200


def test_login_sets_a_cookie_and_routes_raters_and_owner(make_app):
    client, _, _ = make_app()
    csrf = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"token": "wrong-token", "csrf_token": csrf}).status_code == 403
    response = client.post("/login", data={"token": TOKENS["bob"], "csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/next"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("factory_annotate_session=") and "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/next")  # the cookie is sent from now on
    assert page.status_code == 200 and "of" in page.text and "bob" in page.text
    owner = client.post("/login", data={"token": OWNER, "csrf_token": csrf_of(client.get("/login").text)},
                        follow_redirects=False)
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


# ---- hardening: CSRF, Origin, sessions, throttling, size cap, malformed fields, tokens ------------

def test_login_needs_the_forms_csrf_token(make_app):
    client, _, _ = make_app()
    refused = client.post("/login", data={"token": TOKENS["alice"]}, follow_redirects=False)
    assert refused.status_code == 403 and "factory_annotate_session" not in refused.headers.get("set-cookie", "")
    csrf = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"token": TOKENS["alice"], "csrf_token": csrf + "x"}).status_code == 403
    client.cookies.clear()  # the field without its cookie (another site's copy of the form) is refused too
    assert client.post("/login", data={"token": TOKENS["alice"], "csrf_token": csrf}).status_code == 403
    assert login(client, TOKENS["alice"])[0] == 303


def test_the_cookie_holds_a_session_id_and_logout_revokes_it(make_app):
    client, _, _ = make_app()
    status, csrf = login(client, TOKENS["alice"])
    session = client.cookies.get("factory_annotate_session")
    assert status == 303 and session and TOKENS["alice"] not in session and len(session) >= 40
    assert client.post("/logout", data={}).status_code == 403  # logout is a form too: CSRF token needed
    assert client.get("/next", follow_redirects=False).status_code == 303  # still logged in
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.clear()
    client.cookies.set("factory_annotate_session", session)  # a copy of the cookie kept by someone
    assert client.get("/next").status_code == 401 and client.get("/api/assignments").status_code == 401
    # A fresh login makes a fresh session id.
    client.cookies.clear()
    login(client, TOKENS["alice"])
    assert client.cookies.get("factory_annotate_session") not in (None, session)


@pytest.mark.parametrize("base_url, extra, secure", [
    ("http://testserver", {}, False),
    ("https://testserver", {}, True),
    ("http://testserver", {"secure_cookie": True}, True),
])
def test_the_session_cookie_is_secure_over_https_or_when_asked(make_app, base_url, extra, secure):
    client, _, _ = make_app(client_options={"base_url": base_url}, **extra)
    form = client.get("/login")
    csrf_cookie = form.headers["set-cookie"]
    assert ("; secure" in csrf_cookie.lower()) == secure
    # Sent by hand: the test client keeps Secure cookies to https, as browsers do; behind a TLS proxy
    # the browser talks https while the app sees http.
    response = client.post("/login", data={"token": TOKENS["bob"], "csrf_token": csrf_of(form.text)},
                           headers={"Cookie": csrf_cookie.split(";")[0]}, follow_redirects=False)
    (cookie,) = [c.lower() for c in response.headers.get_list("set-cookie") if c.startswith("factory_annotate_session=")]
    assert response.status_code == 303 and ("; secure" in cookie) == secure


def test_form_posts_with_the_cookie_need_the_sessions_csrf_token(make_app):
    client, campaign, store = make_app()
    _, csrf = login(client, TOKENS["carol"])
    item = own_items(client, "carol")[0]
    form = {k: str(v) for k, v in answer(campaign).items()}
    for bad in ({}, {"csrf_token": ""}, {"csrf_token": "forged-token-value"}):
        refused = client.post(f"/items/{item}", data={**form, **bad}, follow_redirects=False)
        assert refused.status_code == 403 and "expired or came from another site" in refused.text
    assert stored(store, "ratings") == 0
    saved = client.post(f"/items/{item}", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert saved.status_code == 303 and stored(store, "ratings") == 2
    # The rating page the rater sees carries the token in its form.
    assert f'value="{csrf}"' in client.get(f"/items/{item}").text


@pytest.mark.parametrize("headers", [
    {"Origin": "http://testserver:8001"},  # another port on the same host: same site, another origin
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "http://127.0.0.1:9999/attack.html"},
])
def test_cross_origin_posts_are_refused_even_with_a_valid_session(make_app, headers):
    client, campaign, store = make_app()
    _, csrf = login(client, TOKENS["alice"])
    item = own_items(client, "alice")[0]
    form = {**{k: str(v) for k, v in answer(campaign).items()}, "csrf_token": csrf}
    assert client.post(f"/items/{item}", data=form, headers=headers, follow_redirects=False).status_code == 403
    assert client.post(f"/api/items/{item}", json=answer(campaign), headers=headers).status_code == 403
    assert client.post(f"/api/items/{item}", json=answer(campaign), headers={**headers, **auth("alice")}).status_code == 403
    assert stored(store, "ratings") == 0
    same_origin = client.post(f"/items/{item}", data=form, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert same_origin.status_code == 303 and stored(store, "ratings") == 2


def test_the_json_api_takes_only_application_json(make_app):
    client, campaign, store = make_app()
    item = own_items(client, "alice")[0]
    body = json.dumps(answer(campaign))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**auth("alice"), **({"Content-Type": content_type} if content_type else {})}
        refused = client.post(f"/api/items/{item}", content=body, headers=headers)
        assert refused.status_code == 415 and "application/json" in refused.json()["detail"]
    login(client, TOKENS["alice"])  # the same with the session cookie: a cross-site form can send text/plain
    assert client.post(f"/api/items/{item}", content=body, headers={"Content-Type": "text/plain"}).status_code == 415
    assert stored(store, "ratings") == 0
    ok = client.post(f"/api/items/{item}", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and stored(store, "ratings") == 2


def test_wrong_tokens_lock_the_client_out_then_let_it_back(make_app):
    throttle = LoginThrottle(per_client=3, overall=100, window_s=60, lockout_s=1.0)
    client, _, _ = make_app(throttle=throttle)
    csrf = csrf_of(client.get("/login").text)
    for guess in range(2):
        assert client.post("/login", data={"token": f"guess-{guess}-xxxx", "csrf_token": csrf}).status_code == 403
    # A wrong bearer token on the API is a guess too.
    assert client.get("/api/assignments", headers={"Authorization": "Bearer guess-2-xxxx"}).status_code == 403
    locked = client.post("/login", data={"token": TOKENS["alice"], "csrf_token": csrf})  # even the right token
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1 and "Too many" in locked.text
    assert client.get("/api/assignments", headers=auth("alice")).status_code == 429
    other = TestClient(client.app, client=("10.0.0.7", 40000))  # another client is not locked out
    assert other.get("/api/assignments", headers=auth("alice")).status_code == 200
    time.sleep(1.1)
    assert login(client, TOKENS["alice"])[0] == 303


def test_guesses_from_many_clients_lock_everyone_out(make_app):
    client, _, _ = make_app(throttle=LoginThrottle(per_client=100, overall=4, window_s=60, lockout_s=60))
    for n in range(4):
        guesser = TestClient(client.app, client=(f"10.0.0.{n}", 40000))
        assert guesser.get("/api/assignments", headers={"Authorization": f"Bearer guess-{n}-xxxx"}).status_code == 403
    assert client.get("/api/assignments", headers=auth("alice")).status_code == 429


def test_request_bodies_are_capped(make_app):
    client, campaign, store = make_app()
    item = own_items(client, "alice")[0]
    huge = json.dumps({**answer(campaign), "justification": "x" * (2 * 1024 * 1024)})
    declared = client.post(f"/api/items/{item}", content=huge, headers={**auth("alice"), "Content-Type": "application/json"})
    assert declared.status_code == 413
    chunks = (b"x" * 65536 for _ in range(40))  # no Content-Length: streamed chunks are counted
    streamed = client.post(f"/api/items/{item}", content=chunks, headers={**auth("alice"), "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/login", content=b"token=" + b"a" * (1024 * 1024),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 413
    assert stored(store, "ratings") == 0
    assert client.post(f"/api/items/{item}", json=answer(campaign), headers=auth("alice")).status_code == 200


@pytest.mark.parametrize("value", ["+-3", "²", "٣", "1e3", "0x1", "9" * 5000, "nan", "inf", "3.", "+ 3", "--1", "３"])
def test_malformed_numbers_are_422_never_500(make_app, value):
    client, campaign, store = make_app()
    item = own_items(client, "alice")[0]
    for field in ("helpfulness_1", "preference_strength"):
        body = {**answer(campaign), field: value}
        api = client.post(f"/api/items/{item}", json=body, headers=auth("alice"))
        assert api.status_code == 422 and field in {p["field"] for p in api.json()["detail"]}
        form = client.post(f"/items/{item}", data={k: str(v) for k, v in body.items()}, headers=auth("alice"))
        assert form.status_code == 422
    assert stored(store, "ratings") == 0


MALFORMED_JSON = [
    (b"[" * 200_000 + b"]" * 200_000, "application/json"),  # nesting deeper than the parser's recursion
    (b'{"helpfulness_1": \xff\xfe}', "application/json"),     # not UTF-8
    (b'{"note": "\\ud800"}', "application/json"),               # a lone surrogate
    (b'{"helpfulness_1": [1], "note": {"a": 1}, "justification": 3}', "application/json"),
    (b"", "application/json"),
]
MALFORMED_FORMS = [
    (b"--x\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nunterminated", "multipart/form-data; boundary=x"),
    (b"garbage", "multipart/form-data"),  # no boundary
    (b"--x\r\nContent-Disposition: form-data; name=\"note\"; filename=\"a.txt\"\r\n\r\nfile\r\n--x--\r\n",
     "multipart/form-data; boundary=x"),  # a file where text belongs
    (b"helpfulness_1=%ff%fe&note=%", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("path, content, content_type", [("/api/items/", *case) for case in MALFORMED_JSON]
                         + [("/items/", *case) for case in MALFORMED_FORMS])
def test_malformed_json_bodies_and_forms_are_422(make_app, path, content, content_type):
    client, _, store = make_app()
    item = own_items(client, "alice")[0]
    response = client.post(path + item, content=content, headers={**auth("alice"), "Content-Type": content_type})
    assert response.status_code == 422
    assert stored(store, "ratings") == 0


def test_annotate_tokens_prints_a_strong_token_per_rater_and_owner(tmp_path, capsys):
    from factory.cli import main

    path = write_campaign(tmp_path / "campaign")
    assert main(["annotate", "tokens", "--campaign", str(path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    accounts = dict(line.split("\t")[:2] for line in lines)
    assert list(accounts) == [*TOKENS, "owner"]
    assert len(set(accounts.values())) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", token) for token in accounts.values())  # 256 random bits
    assert main(["annotate", "tokens", "--campaign", str(path)]) == 0  # fresh ones each time
    again = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    assert not set(again.values()) & set(accounts.values())
