"""Campaign YAML, items from a store data set, and the deterministic assignment."""

from __future__ import annotations

import collections

import pyarrow as pa
import pytest
import yaml

from annotators.webapp.assignments import assign, raters_of
from annotators.webapp.campaign import Tokens, load_campaign
from annotators.webapp.items import Item, load_items
from factory.errors import ConfigError
from factory.store import Store
from tests.annotators.webapp.conftest import seed_rows, write_campaign


def edit(path, **changes):
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    return path


def test_tokens_from_the_environment(tmp_path, monkeypatch):
    path = edit(write_campaign(tmp_path), owner={"token_env": "CAMPAIGN_OWNER_TOKEN"})
    with pytest.raises(ConfigError, match="owner.token_env: environment variable CAMPAIGN_OWNER_TOKEN is not set"):
        Tokens(load_campaign(path))
    monkeypatch.setenv("CAMPAIGN_OWNER_TOKEN", "from-the-environment")
    assert Tokens(load_campaign(path)).identify("from-the-environment") == ("owner", "owner")
    assert Tokens(load_campaign(path)).identify("from-the-environmenT") is None


@pytest.mark.parametrize("changes, message", [
    ({"raters_per_item": 4}, "raters_per_item is 4 but only 3 raters"),
    ({"owner": {"token": "short"}}, "owner: Value error, token must be at least 8"),
    ({"owner": {}}, "give exactly one of 'token' or 'token_env'"),
    ({"task": "vibes"}, "task: Input should be 'ratings', 'preference' or 'both'"),
    ({"raters": [{"id": "a", "token": "same-token-1"}, {"id": "a", "token": "same-token-2"}], "raters_per_item": 1},
     "rater ids must be unique"),
    ({"source": {"seed": "items.jsonl", "dataset": "responses"}}, "source: Value error, give exactly one"),
    ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
])
def test_bad_campaigns_name_the_field(tmp_path, changes, message):
    path = edit(write_campaign(tmp_path), **changes)
    with pytest.raises(ConfigError, match="campaign.yaml: .*" + message.replace("(", r"\(")):
        load_campaign(path)


def test_duplicate_tokens_and_bad_yaml_are_refused(tmp_path):
    path = edit(write_campaign(tmp_path), owner={"token": "alice-secret-1"})
    with pytest.raises(ConfigError, match="distinct tokens"):
        Tokens(load_campaign(path))
    path.write_text("name: x\nraters: [\n")
    with pytest.raises(ConfigError, match=r"campaign.yaml:3:\d+: malformed YAML"):
        load_campaign(path)


def test_items_from_a_store_data_set_with_a_filter(tmp_path):
    store = Store(tmp_path / "store")
    rows = seed_rows(4)
    for n, row in enumerate(rows):
        row.update(error=None if n != 3 else "boom", sample_index=n % 2)
    store.append("responses", pa.Table.from_pylist(rows))
    path = edit(write_campaign(tmp_path), source={"dataset": "responses", "where": "parent_id <> 'p3'"}, task="ratings")
    items = load_items(load_campaign(path), store)
    assert [i.id for i in items] == ["p0a", "p0b", "p1a", "p2a", "p2b"]  # p1b is an error row, p3 filtered out
    pairs = load_items(load_campaign(edit(path, task="preference")), store)
    assert sorted(p.response_ids for p in pairs) == [("p0a", "p0b"), ("p2a", "p2b")]  # p1 has one good response
    assert all(len(p.responses) == 2 and p.prompt.startswith("Question") for p in pairs)
    with pytest.raises(ConfigError, match="source.where"):
        load_items(load_campaign(edit(path, source={"dataset": "responses", "where": "no_such_column = 1"})), store)
    with pytest.raises(ConfigError, match="no data set 'answers'"):
        load_items(load_campaign(edit(path, source={"dataset": "answers"})), store)


def test_assignment_is_deterministic_balanced_enough_and_stable():
    items = [Item(f"item{n}", "p", ("r",), (None,)) for n in range(300)]
    raters = ["a", "b", "c", "d", "e"]
    first = assign(items, raters, 3, seed=7)
    assert first == assign(items, raters, 3, seed=7)
    per_item = collections.Counter(item.id for own in first.values() for item in own)
    assert set(per_item.values()) == {3}  # every item exactly 3 times, never twice to one rater
    assert all(len({i.id for i in own}) == len(own) for own in first.values())
    assert all(150 <= len(own) <= 210 for own in first.values())  # 180 expected each
    # Adding items moves none of the old ones; adding a rater moves only items it takes.
    more = assign(items + [Item(f"new{n}", "p", ("r",), (None,)) for n in range(50)], raters, 3, seed=7)
    assert all({i.id for i in first[r]} <= {i.id for i in more[r]} for r in raters)
    moved = sum(raters_of(i.id, raters, 3, 7) != [r for r in raters_of(i.id, raters + ["f"], 3, 7) if r != "f"][:3]
                for i in items)
    taken = sum("f" in raters_of(i.id, raters + ["f"], 3, 7) for i in items)
    assert moved == taken
    assert assign(items, raters, 3, seed=8) != first  # the seed reshuffles
