"""Submissions: validated server-side, then written at once into the same tables LLM raters fill
(`ratings`, `helpsteer_preferences`, same record types, `source = 'human'`, `rater` = the rater's id).

A rater's answer for an item has a deterministic row id (campaign, rater, item), so a re-submit
drops the earlier row and appends the new one: one row per rater and item, never two. The app is
the only writer of its campaign's rows, and a lock serialises its writes; what is on disk is read
back when the app starts, so a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from annotators.webapp.campaign import Campaign
from annotators.webapp.items import Item
from factory.errors import ConfigError, FactoryError
from factory.ids import stable_hash
from factory.store import Store, quote_identifier
from schemas import BaseRow, rows_to_arrow
from schemas.ratings import ATTRIBUTES, HelpSteerPreferenceRow, RatingRow

MAX_TEXT = 10_000
# ASCII digits only, and few of them: str.isdigit() accepts '²', and int() of thousands of digits raises.
INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
STRENGTHS = range(-3, 4)


class SubmissionError(FactoryError):
    """Invalid answers: one (field, message) per problem."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))


@dataclass
class Submission:
    scores: list[dict[str, int]] = field(default_factory=list)  # per response, attribute -> 0..4
    preference_strength: int | None = None
    justification: str | None = None  # why one response is preferred (required with a preference)
    note: str | None = None           # optional remark on the attribute ratings


def score_field(attribute: str, index: int) -> str:
    """Form field of an attribute of response `index` (0-based): `helpfulness_1`, `verbosity_2`, ..."""
    return f"{attribute}_{index + 1}"


def _integer(value: Any, low: int, high: int) -> tuple[int | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, f"required: an integer from {low} to {high}"
    if isinstance(value, bool):
        return None, f"expected an integer from {low} to {high}, got {value!r}"
    if isinstance(value, str):
        text = value.strip()
        if not INTEGER.fullmatch(text):
            return None, f"expected an integer from {low} to {high}, got {value!r}"
        value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None, f"expected an integer from {low} to {high}, got {value!r}"
    if not low <= value <= high:
        return None, f"{value} is outside {low}..{high}"
    return value, None


def _text(value: Any, name: str, problems: list[tuple[str, str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append((name, "expected text"))
        return None
    if len(value) > MAX_TEXT:
        problems.append((name, f"longer than {MAX_TEXT} characters"))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON but no storable text
        problems.append((name, "not valid Unicode text"))
        return None
    return value.strip() or None


def parse_submission(campaign: Campaign, data: Mapping[str, Any]) -> Submission:
    """Validate a form or JSON body; raises SubmissionError naming every bad field."""
    problems: list[tuple[str, str]] = []
    expected = {"note"} | ({"justification", "preference_strength"} if campaign.task != "ratings" else set())
    submission = Submission()
    if campaign.task in ("ratings", "both"):
        for index in range(campaign.responses_per_item):
            scores = {}
            for attribute in ATTRIBUTES:
                name = score_field(attribute, index)
                expected.add(name)
                value, problem = _integer(data.get(name), 0, 4)
                if problem:
                    problems.append((name, problem))
                else:
                    scores[attribute] = value
            submission.scores.append(scores)
    submission.note = _text(data.get("note"), "note", problems)
    if campaign.task in ("preference", "both"):
        value, problem = _integer(data.get("preference_strength"), -3, 3)
        if problem:
            problems.append(("preference_strength", problem))
        submission.preference_strength = value
        submission.justification = _text(data.get("justification"), "justification", problems)
        if submission.justification is None:
            problems.append(("justification", "required: say in a sentence or two why (or why neither) response is better"))
    unknown = sorted(set(data) - expected)
    if unknown:
        problems.append((unknown[0], f"unknown field(s) {', '.join(unknown)} for task '{campaign.task}'"))
    if problems:
        raise SubmissionError(problems)
    return submission


class AnswerBook:
    """The campaign's human answers: on disk in the store, mirrored in memory for fast pages."""

    def __init__(self, campaign: Campaign, store: Store):
        self.campaign = campaign
        self.store = store
        self.lock = threading.Lock()
        started = dt.datetime.now(dt.timezone.utc)
        self.run_id = f"annotate-{campaign.name}-{started:%Y%m%dT%H%M%S}"
        self.ratings: dict[tuple[str, str], dict[str, Any]] = {}      # (rater, response_key) -> row
        self.preferences: dict[tuple[str, str], dict[str, Any]] = {}  # (rater, item id) -> row
        self._load()

    def _load(self) -> None:
        for dataset, record, book, key in ((self.campaign.ratings_output, RatingRow, self.ratings, "response_key"),
                                           (self.campaign.preferences_output, HelpSteerPreferenceRow, self.preferences,
                                            "parent_id")):
            columns = self.store.columns(dataset)
            if not columns:
                continue
            if list(columns) != list(record.model_fields):
                raise ConfigError(f"data set {dataset!r} in {self.store.location} does not have the columns of "
                                  f"{record.__name__}; choose another ratings_output / preferences_output")
            rows = self.store.arrow(f"SELECT * FROM {quote_identifier(dataset)} WHERE stage = ? "
                                    "AND error IS NULL ORDER BY created_at", [self.campaign.stage]).to_pylist()
            for row in rows:
                book[(row["rater"], row[key])] = row

    # ---- reading -----------------------------------------------------------------------------

    def rating_id(self, rater: str, key: str) -> str:
        return stable_hash("annotate", self.campaign.name, rater, "rating", key)

    def preference_id(self, rater: str, item_id: str) -> str:
        return stable_hash("annotate", self.campaign.name, rater, "preference", item_id)

    def done(self, rater: str, item: Item) -> bool:
        if self.campaign.task in ("preference", "both") and (rater, item.id) not in self.preferences:
            return False
        if self.campaign.task in ("ratings", "both"):
            return all((rater, key) in self.ratings for key in item.response_keys)
        return True

    def values(self, rater: str, item: Item) -> dict[str, str]:
        """The rater's stored answer as form values (empty when not answered yet)."""
        values: dict[str, str] = {}
        if self.campaign.task in ("ratings", "both"):
            for index, key in enumerate(item.response_keys):
                row = self.ratings.get((rater, key))
                if row is None:
                    continue
                for attribute in ATTRIBUTES:
                    if row[attribute] is not None:
                        values[score_field(attribute, index)] = str(int(row[attribute]))
                if row["justification"]:
                    values["note"] = row["justification"]
        preference = self.preferences.get((rater, item.id))
        if preference is not None:
            values["preference_strength"] = str(preference["preference_strength"])
            values["justification"] = preference["justification"] or ""
        return values

    # ---- writing -----------------------------------------------------------------------------

    def _lineage(self, row_id: str, parent_id: str, now: dt.datetime) -> dict[str, Any]:
        return {"id": row_id, "parent_id": parent_id, "run_id": self.run_id, "created_at": now,
                "stage": self.campaign.stage, "fingerprint": self.campaign.fingerprint, "template": "human"}

    def submit(self, rater: str, item: Item, submission: Submission) -> list[str]:
        """Write the answer (replacing this rater's earlier one for the item); returns the row ids."""
        now = dt.datetime.now(dt.timezone.utc)
        ratings = [RatingRow(
            **self._lineage(self.rating_id(rater, key), item.response_ids[index] or item.id, now),
            response_id=item.response_ids[index], response_key=key, prompt=item.prompt,
            response=item.responses[index], rater=rater, source="human", justification=submission.note,
            **{attribute: float(score) for attribute, score in scores.items()},
        ) for index, (key, scores) in enumerate(zip(item.response_keys, submission.scores))]
        preferences = [] if submission.preference_strength is None else [HelpSteerPreferenceRow(
            **self._lineage(self.preference_id(rater, item.id), item.id, now), prompt=item.prompt,
            response_1=item.responses[0], response_2=item.responses[1], response_1_id=item.response_ids[0],
            response_2_id=item.response_ids[1], rater=rater, source="human",
            preference_strength=submission.preference_strength, justification=submission.justification,
        )]
        with self.lock:
            self._replace(self.campaign.ratings_output, ratings, RatingRow, self.ratings,
                          [(rater, r.response_key) for r in ratings])
            self._replace(self.campaign.preferences_output, preferences, HelpSteerPreferenceRow, self.preferences,
                          [(rater, item.id) for _ in preferences])
        return [row.id for row in (*ratings, *preferences)]

    def _replace(self, dataset: str, rows: list[BaseRow], record: type[BaseRow],
                 book: dict[tuple[str, str], dict[str, Any]], keys: list[tuple[str, str]]) -> None:
        if not rows:
            return
        # A changed answer replaces the old rows in one commit, so a crash or a bad row leaves the
        # old answer or the new one, never neither; a first answer is one small append.
        table = rows_to_arrow(rows, record)
        if any(key in book for key in keys):
            self.store.replace(dataset, table)
        else:
            self.store.append(dataset, table)
        for row, key in zip(rows, keys):
            book[key] = row.model_dump()
