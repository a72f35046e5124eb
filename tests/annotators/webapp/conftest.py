"""Campaign fixtures: a seed of items, a campaign YAML and a store, all under tmp_path."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from annotators.webapp.app import create_app
from annotators.webapp.campaign import Campaign, load_campaign
from annotators.webapp.security import LoginThrottle
from factory.store import Store
from schemas.ratings import ATTRIBUTES

TOKENS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}
OWNER = "owner-secret-4444"


def seed_rows(prompts: int = 6) -> list[dict[str, Any]]:
    """Two responses per prompt (markdown, code, raw HTML that must stay text)."""
    rows = []
    for p in range(prompts):
        rows.append({"id": f"p{p}a", "parent_id": f"p{p}", "prompt": f"Question {p}: how do I sort a list?",
                     "response": f"Use `sorted()`:\n\n```python\nsorted([3, 1, {p}])\n```"})
        rows.append({"id": f"p{p}b", "parent_id": f"p{p}", "prompt": f"Question {p}: how do I sort a list?",
                     "response": f"<script>alert({p})</script> **no idea**"})
    return rows


def write_campaign(folder: Path, task: str = "both", raters_per_item: int = 2, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seed_rows()))
    config = {
        "name": "test",
        "source": {"seed": "items.jsonl", "group_by": "parent_id"},
        "task": task,
        "raters_per_item": raters_per_item,
        "raters": [{"id": rater, "token": token} for rater, token in TOKENS.items()],
        "owner": {"token": OWNER},
        **extra,
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def auth(rater: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.get(rater, OWNER if rater == 'owner' else rater)}"}


def answer(campaign: Campaign, score: int = 3, strength: int = -2, justification: str = "the first explains it") -> dict:
    """A complete, valid answer for the campaign's task."""
    data: dict[str, Any] = {}
    if campaign.task != "preference":
        for index in range(campaign.responses_per_item):
            data.update({f"{a}_{index + 1}": score for a in ATTRIBUTES})
    if campaign.task != "ratings":
        data.update(preference_strength=strength, justification=justification)
    return data


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def login(client: TestClient, token: str) -> tuple[int, str]:
    """Log in through the form as a browser does: GET the form (CSRF cookie + field), POST it back.
    Returns the status and the CSRF token of the page logged in to ('' when the login failed)."""
    form = client.get("/login")
    response = client.post("/login", data={"token": token, "csrf_token": csrf_of(form.text)}, follow_redirects=False)
    if response.status_code != 303:
        return response.status_code, ""
    landed = client.get(response.headers["location"])
    return 303, csrf_of(landed.text)


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., tuple[TestClient, Campaign, Store]]:
    """make_app(task=..., raters_per_item=...) -> (client, campaign, store); calling it again with
    the same arguments starts a new app over the same store (a restart)."""

    def make(task: str = "both", raters_per_item: int = 2, throttle: LoginThrottle | None = None,
             client_options: dict[str, Any] | None = None, **extra: Any) -> tuple[TestClient, Campaign, Store]:
        campaign = load_campaign(write_campaign(tmp_path / "campaign", task, raters_per_item, **extra))
        store = Store(tmp_path / "store")
        return TestClient(create_app(campaign, store, throttle), **(client_options or {})), campaign, store

    return make
