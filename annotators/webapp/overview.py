"""The owner's overview: progress per rater, agreement between humans and against LLM raters of
the same items, and the items whose human raters disagree most (HelpSteer2 would drop them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from annotators.helpsteer.aggregate import aggregate
from annotators.webapp.agreement import (
    Labels,
    PairAgreement,
    fleiss_over_units,
    mean_kappa,
    pair_agreement,
    pairwise,
)
from annotators.webapp.answers import AnswerBook
from annotators.webapp.items import Item
from factory.store import Store, quote_identifier
from schemas.ratings import ATTRIBUTES

SCORES = list(range(5))
STRENGTHS = list(range(-3, 4))
PREFERENCE = "preference_strength"


@dataclass
class ColumnSummary:
    column: str
    human_mean_kappa: float | None
    fleiss: float | None
    fleiss_items: int
    llm_mean_kappa: dict[str, float | None] = field(default_factory=dict)  # LLM rater -> mean kappa vs each human


@dataclass
class Overview:
    progress: list[dict[str, Any]]                   # rater, assigned, done
    columns: list[str]                               # attributes and/or preference_strength
    summary: list[ColumnSummary]
    human_pairs: list[dict[str, Any]]                # first, second, items, kappa per column
    llm_pairs: list[dict[str, Any]]                  # first (LLM), second (human), items, kappa per column
    disagreements: list[dict[str, Any]]              # item, prompt, column, spread, scores
    llm_raters: list[str]                            # LLM raters found on the campaign's items


def _half_up(value: float) -> int:
    return max(0, min(4, math.floor(value + 0.5)))



def _by_pair(pairs: dict[str, list[PairAgreement]]) -> list[dict[str, Any]]:
    """Per-column pair lists -> one row per pair with a kappa per column."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for column, found in pairs.items():
        for pair in found:
            row = rows.setdefault((pair.first, pair.second), {"first": pair.first, "second": pair.second, "items": 0})
            row["items"] = max(row["items"], pair.items)
            row[column] = pair.kappa
    return sorted(rows.values(), key=lambda r: (r["first"], r["second"]))


class OverviewBuilder:
    def __init__(self, book: AnswerBook, store: Store, items: list[Item], assignments: dict[str, list[Item]]):
        self.book, self.store, self.items, self.assignments = book, store, items, assignments
        self.campaign = book.campaign
        self.by_key = {key: item for item in items for key in item.response_keys}
        self.by_id = {item.id: item for item in items}

    def human_labels(self) -> dict[str, Labels]:
        """column -> rater -> unit -> label; units are response keys (attributes) or item ids (preference)."""
        labels: dict[str, dict[str, dict[str, int]]] = {}
        for (rater, key), row in self.book.ratings.items():
            for attribute in ATTRIBUTES:
                if row[attribute] is not None and key in self.by_key:
                    labels.setdefault(attribute, {}).setdefault(rater, {})[key] = int(row[attribute])
        for (rater, item_id), row in self.book.preferences.items():
            if item_id in self.by_id:
                labels.setdefault(PREFERENCE, {}).setdefault(rater, {})[item_id] = int(row[PREFERENCE])
        return labels

    def llm_labels(self) -> dict[str, Labels]:
        """The same for rows of `source = 'llm'` on the campaign's items (rounded to the human scale)."""
        labels: dict[str, dict[str, dict[str, int]]] = {}
        ratings, preferences = self.campaign.ratings_output, self.campaign.preferences_output
        if self.campaign.task != "preference" and self.store.has(ratings):
            rows = self.store.arrow(
                f"SELECT rater, response_key, {', '.join(ATTRIBUTES)} FROM {quote_identifier(ratings)} "
                "WHERE source = 'llm' AND error IS NULL AND list_contains(?, response_key) ORDER BY created_at",
                [sorted(self.by_key)]).to_pylist()
            for row in rows:
                for attribute in ATTRIBUTES:
                    if row[attribute] is not None:
                        labels.setdefault(attribute, {}).setdefault(row["rater"], {})[row["response_key"]] = \
                            _half_up(row[attribute])
        pairs = {}
        for item in self.items:
            if None not in item.response_ids[:2] and len(item.response_ids) == 2:
                pairs[(item.response_ids[0], item.response_ids[1])] = (item.id, 1)
                pairs[(item.response_ids[1], item.response_ids[0])] = (item.id, -1)  # judged in the other order
        if self.campaign.task != "ratings" and pairs and self.store.has(preferences):
            rows = self.store.arrow(
                f"SELECT rater, response_1_id, response_2_id, {PREFERENCE} FROM {quote_identifier(preferences)} "
                f"WHERE source = 'llm' AND error IS NULL AND {PREFERENCE} IS NOT NULL "
                "AND list_contains(?, response_1_id) ORDER BY created_at", [sorted({a for a, _ in pairs})]
            ).to_pylist()
            for row in rows:
                found = pairs.get((row["response_1_id"], row["response_2_id"]))
                if found:
                    labels.setdefault(PREFERENCE, {}).setdefault(row["rater"], {})[found[0]] = found[1] * row[PREFERENCE]
        return labels

    def disagreements(self, labels: dict[str, Labels]) -> list[dict[str, Any]]:
        """Items whose most agreeing raters still span more than `aggregate.max_spread` (HelpSteer2's rule
        on helpfulness; the same spread rule on the preference strength)."""
        found = []
        config = self.campaign.aggregate
        by_unit: dict[str, dict[str, dict[str, float]]] = {}
        for attribute in ATTRIBUTES:
            for rater, units in labels.get(attribute, {}).items():
                for unit, label in units.items():
                    by_unit.setdefault(unit, {}).setdefault(rater, {})[attribute] = float(label)
        for key, raters in by_unit.items():
            if len(raters) < 2:
                continue
            result = aggregate(list(raters.values()), config.keep, config.max_spread)
            if result.high_disagreement:
                found.append(self._entry(self.by_key[key], "helpfulness", result.spread,
                                         {r: s.get("helpfulness") for r, s in raters.items()}))
        strengths: dict[str, dict[str, int]] = {}
        for rater, units in labels.get(PREFERENCE, {}).items():
            for unit, label in units.items():
                strengths.setdefault(unit, {})[rater] = label
        for item_id, raters in strengths.items():
            spread = max(raters.values()) - min(raters.values())
            if len(raters) >= 2 and spread > config.max_spread:
                found.append(self._entry(self.by_id[item_id], PREFERENCE, float(spread), raters))
        return sorted(found, key=lambda entry: (-entry["spread"], entry["item"]))

    @staticmethod
    def _entry(item: Item, column: str, spread: float | None, scores: dict[str, Any]) -> dict[str, Any]:
        prompt = item.prompt if len(item.prompt) <= 120 else item.prompt[:117] + "..."
        shown = ", ".join(f"{r}: {'-' if s is None else int(s)}" for r, s in sorted(scores.items()))
        return {"item": item.id, "prompt": prompt, "column": column, "spread": spread or 0.0, "scores": shown}

    def build(self) -> Overview:
        with self.book.lock:  # one DuckDB connection per store: no query while a write swaps shards
            humans, llms = self.human_labels(), self.llm_labels()
        columns = ([*ATTRIBUTES] if self.campaign.task != "preference" else []) + \
                  ([PREFERENCE] if self.campaign.task != "ratings" else [])
        summary, human_pairs, llm_pairs = [], {}, {}
        for column in columns:
            scale = STRENGTHS if column == PREFERENCE else SCORES
            people, models = humans.get(column, {}), llms.get(column, {})
            human_pairs[column] = pairwise(people, scale)
            fleiss, used = fleiss_over_units(people, scale, max(2, self.campaign.raters_per_item))
            entry = ColumnSummary(column, mean_kappa(human_pairs[column]), fleiss, used)
            llm_pairs[column] = []
            for model in sorted(models):
                against = [pair_agreement(model, person, models, scale, other=people) for person in sorted(people)]
                llm_pairs[column] += against
                entry.llm_mean_kappa[model] = mean_kappa(against)
            summary.append(entry)
        progress = [{"rater": rater, "assigned": len(own), "done": sum(self.book.done(rater, i) for i in own)}
                    for rater, own in self.assignments.items()]
        return Overview(progress, columns, summary, _by_pair(human_pairs), _by_pair(llm_pairs),
                        self.disagreements(humans), sorted({m for s in summary for m in s.llm_mean_kappa}))
