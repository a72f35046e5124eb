"""The rating app's write path under SIGKILL: a changed answer replaces the old one in one commit,
so a rater never loses an answer the app confirmed, however the process dies."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from annotators.webapp.answers import AnswerBook, SubmissionError, parse_submission
from annotators.webapp.campaign import load_campaign
from annotators.webapp.items import load_items
from factory.store import Store
from tests.annotators.webapp.conftest import answer, write_campaign

# Submits changed answers to one item forever, printing each score once the app confirmed it.
WRITER = textwrap.dedent("""
    import sys
    from annotators.webapp.answers import AnswerBook, parse_submission
    from annotators.webapp.campaign import load_campaign
    from annotators.webapp.items import load_items
    from factory.store import Store
    from tests.annotators.webapp.conftest import answer

    campaign, store = load_campaign(sys.argv[1]), Store(sys.argv[2])
    item = load_items(campaign, store)[0]
    book = AnswerBook(campaign, store)
    score = int(sys.argv[3])
    while True:
        score = (score + 1) % 5
        book.submit("alice", item, parse_submission(campaign, answer(campaign, score, strength=score - 2)))
        print(score, flush=True)
""")


def stored(store: Store, item) -> tuple[list[float], list[int]]:
    ratings = store.sql("SELECT helpfulness FROM ratings WHERE rater = 'alice' AND list_contains(?, response_key)",
                        [list(item.response_keys)])["helpfulness"].to_list()
    preferences = store.sql("SELECT preference_strength FROM helpsteer_preferences WHERE rater = 'alice' "
                            "AND parent_id = ?", [item.id])["preference_strength"].to_list()
    return ratings, preferences


@pytest.mark.slow
def test_no_confirmed_answer_is_lost_in_20_kills(tmp_path):
    path = write_campaign(tmp_path / "campaign", task="both")
    campaign, store = load_campaign(path), Store(tmp_path / "store")
    item = load_items(campaign, store)[0]
    AnswerBook(campaign, store).submit("alice", item, parse_submission(campaign, answer(campaign, 0, strength=-2)))
    confirmed, rng = 0, random.Random(7)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    for kill in range(20):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path / "store"), str(confirmed)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(rng.randint(1, 4)):  # let it confirm a few answers, then kill it mid-write
            line = process.stdout.readline()
            assert line, process.stderr.read()[-2000:]
            confirmed = int(line)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        ratings, preferences = stored(Store(tmp_path / "store"), item)
        in_flight = (confirmed + 1) % 5  # the answer being written when the kill came may have landed
        assert len(ratings) == 2 and len(preferences) == 1, f"kill {kill}: {ratings} {preferences}"
        assert set(ratings) in ({float(confirmed)}, {float(in_flight)}), f"kill {kill}: {ratings}"
        # (ratings and preferences are two data sets, so each is old or new on its own)
        assert preferences[0] + 2 in (confirmed, in_flight), f"kill {kill}: {preferences}"
        confirmed = int(ratings[0])


def test_an_invalid_resubmission_keeps_the_previous_answer(tmp_path):
    path = write_campaign(tmp_path / "campaign", task="both")
    campaign, store = load_campaign(path), Store(tmp_path / "store")
    item = load_items(campaign, store)[0]
    book = AnswerBook(campaign, store)
    book.submit("alice", item, parse_submission(campaign, answer(campaign, 3, strength=1)))
    with pytest.raises(SubmissionError, match="justification: not valid Unicode"):
        parse_submission(campaign, json.loads('{"justification": "\\ud800"}') | {
            k: v for k, v in answer(campaign, 1).items() if k != "justification"})
    assert stored(Store(tmp_path / "store"), item) == ([3.0, 3.0], [1])
