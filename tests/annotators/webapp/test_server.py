"""The real thing: `factory annotate serve` (uvicorn) on 127.0.0.1, answers posted over HTTP from
many threads at once, then the rows checked in the store."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from annotators.webapp.campaign import load_campaign
from factory.store import Store
from schemas.ratings import ATTRIBUTES
from tests.annotators.webapp.conftest import TOKENS, answer, csrf_of, write_campaign
from tests.helpers import PROBE_TIMEOUT_S, free_port, wait_until_ready




def call(base: str, path: str, token: str | None = None, body: dict | None = None,
         form: dict | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def server(tmp_path):
    path = write_campaign(tmp_path / "campaign", task="both", raters_per_item=2)
    store = tmp_path / "store"
    port = free_port()
    command = [sys.executable, "-m", "factory.cli", "annotate", "serve", "--campaign", str(path),
               "--store", str(store), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"the rating app at {base} to answer GET /login",
                         lambda: urllib.request.urlopen(base + "/login", timeout=PROBE_TIMEOUT_S).close() or True,
                         process=process)
    except AssertionError as exc:
        process.kill()
        pytest.fail(f"{exc}; its output: {process.communicate()[0][-2000:]}")
    yield base, command, load_campaign(path), Store(store)
    process.terminate()
    process.wait(timeout=20)


def test_concurrent_submissions_over_http_keep_every_answer_once(server):
    base, command, campaign, store = server
    assert call(base, "/api/assignments")[0] == 401
    assigned = {rater: [i["id"] for i in json.loads(call(base, "/api/assignments", token)[1])["items"]]
                for rater, token in TOKENS.items()}
    jobs = [(rater, item) for rater, items in assigned.items() for item in items]

    def submit(job: tuple[str, str], score: int, via_form: bool) -> int:
        rater, item = job
        body = answer(campaign, score, strength=score - 2)
        if via_form:  # the browser's path: a form post answered by a redirect to the next item
            return call(base, f"/items/{item}", TOKENS[rater], form={k: str(v) for k, v in body.items()})[0]
        return call(base, f"/api/items/{item}", TOKENS[rater], body=body)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:  # first answers, all at once
        assert set(pool.map(lambda j: submit(j[1], 1, j[0] % 2 == 0), enumerate(jobs))) == {200}
    with ThreadPoolExecutor(max_workers=8) as pool:  # every answer changed, all at once
        assert set(pool.map(lambda j: submit(j[1], 4, j[0] % 2 == 1), enumerate(jobs))) == {200}

    ratings = store.sql("SELECT rater, response_key, helpfulness, verbosity FROM ratings")
    preferences = store.sql("SELECT rater, parent_id, preference_strength FROM helpsteer_preferences")
    assert preferences.height == len(jobs) == preferences.select("rater", "parent_id").unique().height
    assert ratings.height == 2 * len(jobs) == ratings.select("rater", "response_key").unique().height
    assert set(ratings["helpfulness"]) == {4.0} and set(preferences["preference_strength"]) == {2}
    for rater, token in TOKENS.items():
        progress = json.loads(call(base, "/api/assignments", token)[1])
        assert progress["done"] == progress["total"] == len(assigned[rater])
    owner = call(base, "/overview", campaign.owner.token)
    assert owner[0] == 200 and "Fleiss" in owner[1] and all(f"<td>{r}</td>" in owner[1] for r in TOKENS)
    assert set(ATTRIBUTES) <= set(json.loads(call(base, "/api/overview", campaign.owner.token)[1])["columns"])

    # A second server for the same campaign and store is refused: the first is the only writer.
    second = subprocess.run(command[:-1] + [str(free_port())], check=False, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "already served" in second.stderr


class Browser:
    """A cookie-keeping HTTP client, as a browser on the rater's machine (or an attacker's page) posts."""

    def __init__(self, base: str):
        import http.cookiejar

        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def send(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers

    def form(self, path: str, fields: dict[str, str], **headers: str) -> tuple[int, str, Any]:
        return self.send(path, urllib.parse.urlencode(fields).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded", **headers})


def test_a_session_over_http_is_guarded_against_forgery_guessing_and_floods(server):
    base, _, campaign, store = server
    browser = Browser(base)
    status, page, _ = browser.send("/login")
    csrf = csrf_of(page)
    status, page, _ = browser.form("/login", {"token": TOKENS["alice"], "csrf_token": csrf}, Origin=base)
    assert status == 200 and "rate-form" in page  # redirected to the first item
    cookies = {c.name: c.value for h in browser.opener.handlers if hasattr(h, "cookiejar") for c in h.cookiejar}
    assert TOKENS["alice"] not in cookies.values() and cookies.get("factory_annotate_session")
    item = page.split('action="/items/', 1)[1].split('"', 1)[0]
    fields = {k: str(v) for k, v in answer(campaign).items()}

    # Another site's page posting with the rater's cookie: another port on 127.0.0.1 is another origin.
    evil = "http://127.0.0.1:1"
    assert browser.form(f"/items/{item}", {**fields, "csrf_token": csrf_of(page)}, Origin=evil)[0] == 403
    assert browser.form(f"/items/{item}", fields, Origin=base)[0] == 403  # no CSRF token
    plain = browser.send(f"/api/items/{item}", json.dumps(answer(campaign)).encode(), {"Content-Type": "text/plain"})
    assert plain[0] == 415
    assert not store.has("ratings")
    assert browser.form(f"/items/{item}", {**fields, "csrf_token": csrf_of(page)}, Origin=base)[0] == 200
    assert store.sql("SELECT count(*) AS n FROM ratings")["n"][0] == 2

    # A 100 MB body is refused from its declared length, before it is read.
    import http.client

    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    connection.putrequest("POST", f"/api/items/{item}")
    for name, value in (("Authorization", f"Bearer {TOKENS['alice']}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(100 * 1024 * 1024))):
        connection.putheader(name, value)
    connection.endheaders(b"{")
    assert connection.getresponse().status == 413
    connection.close()

    # Logout ends the session on the server: the cookie copied before logout opens nothing.
    status, page, _ = browser.send("/next")
    assert browser.form("/logout", {"csrf_token": csrf_of(page)}, Origin=base)[0] == 200
    copied = urllib.request.Request(base + "/api/assignments",
                                    headers={"Cookie": f"factory_annotate_session={cookies['factory_annotate_session']}"})
    with pytest.raises(urllib.error.HTTPError) as ended:
        urllib.request.urlopen(copied, timeout=30)
    assert ended.value.code == 401

    # Guessing tokens: five wrong ones lock this client out, the right one included, with Retry-After.
    guesses = [call(base, "/api/assignments", f"guess-{n}-xxxxxxxx")[0] for n in range(6)]
    assert guesses[:5] == [403] * 5 and guesses[5] == 429
    request = urllib.request.Request(base + "/api/assignments", headers={"Authorization": f"Bearer {TOKENS['bob']}"})
    with pytest.raises(urllib.error.HTTPError) as locked:
        urllib.request.urlopen(request, timeout=30)
    assert locked.value.code == 429 and int(locked.value.headers["Retry-After"]) > 0
