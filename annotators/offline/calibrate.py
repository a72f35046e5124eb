"""`factory calibrate`: agreement of every evaluator in `judgments` with human labels -> data set `agreement`.

Human labels come from a JSONL/CSV file or a store data set, one label per line:
- pairwise: `prompt`, `response_1`, `response_2` and `verdict` ('A'/'1' = response_1 better, 'B'/'2',
  'tie'), or `preference_strength` (HelpSteer2-Preference sign: < 0 response_1 better, 0 tie);
- single: `prompt`, `response`, `score` (Likert 1-5).
An optional `rater` column names the annotator (default 'human'). Items are matched on their texts.
The human reference label of an item is the most common label of its raters (items whose top labels
tie are left out). Rows written per strategy: Cohen's and weighted kappa of each evaluator against
the humans (ranked), Cohen's kappa between every two raters (the agreement matrix), and Fleiss'
kappa of the human raters and of the evaluators as panels.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import math
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from annotators.offline.agreement import (PAIR_LABELS, canonical_pair_label, cohen_kappa, fleiss_with_ci, kappa_with_ci, likert_label,
                                          pair_key, percent_agreement, single_key)
from factory.errors import FactoryError
from factory.ids import stable_hash
from factory.store import Store, check_dataset_name, quote_identifier
from schemas import rows_to_arrow
from schemas.judging import AgreementRow

Labels = dict[str, dict[str, dict[str, object]]]  # strategy -> rater -> item key -> label
VERDICT_ALIASES = {"a": "A", "1": "A", "response_1": "A", "b": "B", "2": "B", "response_2": "B", "tie": "tie", "0": "tie"}


def read_label_rows(source: str, store: Store, where: str | None = None) -> list[tuple[str, dict]]:
    """(location for messages, row) for each human label, from a .jsonl/.csv file or a data set."""
    path = Path(source)
    if path.suffix in (".jsonl", ".json", ".ndjson", ".csv"):
        if not path.is_file():
            raise FactoryError(f"{path}: human label file not found")
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix == ".csv":
                return [(f"{path}:{n}", dict(row)) for n, row in enumerate(csv.DictReader(handle), start=2)]
            rows = []
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append((f"{path}:{n}", json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise FactoryError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
            return rows
    check_dataset_name(source)
    if not store.has(source):
        raise FactoryError(f"human labels {source!r}: neither a .jsonl/.csv file nor a data set in {store.location}")
    frame = store.sql(f"SELECT * FROM {quote_identifier(source)}" + (f" WHERE {where}" if where else ""))
    return [(f"data set {source}, row {n}", row) for n, row in enumerate(frame.iter_rows(named=True), start=1)]


def _text(where: str, row: dict, field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise FactoryError(f"{where}: field '{field}': a non-empty string is required")
    return value


def human_labels(rows: list[tuple[str, dict]]) -> Labels:
    labels: Labels = {}
    for where, row in rows:
        if row.get("error"):
            continue
        rater, prompt = str(row.get("rater") or "human"), _text(where, row, "prompt")
        if row.get("response_1") is not None:
            a, b = _text(where, row, "response_1"), _text(where, row, "response_2")
            if row.get("verdict") not in (None, ""):
                verdict = VERDICT_ALIASES.get(str(row["verdict"]).strip().lower())
                if verdict is None:
                    raise FactoryError(f"{where}: field 'verdict': {row['verdict']!r} is not A, B, 1, 2 or tie")
            elif row.get("preference_strength") not in (None, ""):
                try:
                    strength = float(row["preference_strength"])
                except ValueError:
                    raise FactoryError(f"{where}: field 'preference_strength': not a number") from None
                verdict = "A" if strength < 0 else ("B" if strength > 0 else "tie")
            else:
                raise FactoryError(f"{where}: a pair label needs field 'verdict' or 'preference_strength'")
            labels.setdefault("pairwise", {}).setdefault(rater, {})[pair_key(prompt, a, b)] = canonical_pair_label(a, b, verdict)
        else:
            response = _text(where, row, "response")
            try:
                score = float(row.get("score"))
            except (TypeError, ValueError):
                raise FactoryError(f"{where}: field 'score': a Likert score 1-5 is required") from None
            if not 1 <= score <= 5:
                raise FactoryError(f"{where}: field 'score': {score} is outside 1..5")
            labels.setdefault("single", {}).setdefault(rater, {})[single_key(prompt, response)] = likert_label(score)
    if not labels:
        raise FactoryError("no human labels found")
    return labels


def judgment_labels(frame: pl.DataFrame) -> Labels:
    """Each evaluator's label per item from good single and pairwise judgments (the latest wins)."""
    labels: Labels = {}
    for row in frame.sort("created_at").iter_rows(named=True):
        texts = row["candidates"] or []
        if row["strategy"] == "pairwise" and row["verdict"] is not None and len(texts) == 2:
            key = pair_key(row["prompt"], texts[0], texts[1])
            labels.setdefault("pairwise", {}).setdefault(row["evaluator"], {})[key] = canonical_pair_label(
                texts[0], texts[1], row["verdict"])
        elif row["strategy"] == "single" and row["score"] is not None and len(texts) == 1:
            key = single_key(row["prompt"], texts[0])
            labels.setdefault("single", {}).setdefault(row["evaluator"], {})[key] = likert_label(row["score"])
    return labels


def majority_labels(raters: dict[str, dict[str, object]]) -> dict[str, object]:
    votes: dict[str, list] = {}
    for items in raters.values():
        for key, label in items.items():
            votes.setdefault(key, []).append(label)
    out = {}
    for key, labels in votes.items():
        top = Counter(labels).most_common(2)
        if len(top) == 1 or top[0][1] > top[1][1]:
            out[key] = top[0][0]
    return out


def _panel(raters: dict[str, dict[str, object]]) -> np.ndarray:
    """Items labelled by every rater of the panel, as an items x raters matrix."""
    common = set.intersection(*(set(items) for items in raters.values()))
    return np.array([[items[key] for items in raters.values()] for key in sorted(common)], dtype=object)


def agreement_rows(humans: Labels, evaluators: Labels, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> list[dict]:
    """Row values (without lineage) for every statistic; see the module docstring."""
    rows: list[dict] = []
    for strategy in sorted(set(humans) & set(evaluators)):
        order = list(PAIR_LABELS) if strategy == "pairwise" else [1, 2, 3, 4, 5]
        encode = (lambda labels: [order.index(x) for x in labels])  # noqa: E731 - ordinal codes for weighted kappa
        weights = "linear" if strategy == "pairwise" else "quadratic"
        reference = majority_labels(humans[strategy])
        ranked = []
        for evaluator, items in sorted(evaluators[strategy].items()):
            keys = sorted(set(items) & set(reference))
            a, b = [items[k] for k in keys], [reference[k] for k in keys]
            common = {"evaluator": evaluator, "reference": "human", "strategy": strategy, "n_items": len(keys),
                      "percent_agreement": percent_agreement(a, b)}
            value, low, high = kappa_with_ci(a, b, None, order, n_boot, confidence, seed)
            ranked.append({**common, "metric": "cohen_kappa", "value": value, "ci_low": low, "ci_high": high})
            value, low, high = kappa_with_ci(encode(a), encode(b), weights, list(range(len(order))), n_boot, confidence, seed)
            rows.append({**common, "metric": "weighted_kappa", "value": value, "ci_low": low, "ci_high": high})
        ranked.sort(key=lambda r: -math.inf if r["value"] is None else -r["value"])
        for rank, row in enumerate(ranked, start=1):
            rows.append({**row, "rank": rank if row["value"] is not None else None})
        raters = {"human": reference, **evaluators[strategy]}
        for (name_a, items_a), (name_b, items_b) in itertools.permutations(raters.items(), 2):
            if name_b == "human":
                continue  # evaluator vs human is a row above (with its interval and rank)
            keys = sorted(set(items_a) & set(items_b))
            a, b = [items_a[k] for k in keys], [items_b[k] for k in keys]
            value = cohen_kappa(a, b, None, order)
            rows.append({"evaluator": name_a, "reference": name_b, "strategy": strategy, "metric": "cohen_kappa",
                         "value": value, "n_items": len(keys), "percent_agreement": percent_agreement(a, b)})
        for panel, members in (("humans", humans[strategy]), ("evaluators", evaluators[strategy])):
            if len(members) >= 2:
                matrix = _panel(members)
                value, low, high = fleiss_with_ci(matrix, n_boot, confidence, seed) if len(matrix) else (None, None, None)
                rows.append({"evaluator": panel, "reference": "panel", "strategy": strategy, "metric": "fleiss_kappa",
                             "value": value, "ci_low": low, "ci_high": high, "n_items": len(matrix),
                             "n_raters": len(members)})
    return rows


def calibrate(store: Store, human: str, human_where: str | None = None, judgments_where: str | None = None,
              n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> pl.DataFrame:
    """Compute and append the `agreement` rows; returns the rows against humans, best first."""
    if not store.has("judgments"):
        raise FactoryError(f"no data set 'judgments' in store {store.location}: run a judge, jury or debate stage first")
    humans = human_labels(read_label_rows(human, store, human_where))
    clause = " AND ".join(["error IS NULL"] + ([f"({judgments_where})"] if judgments_where else []))
    evaluators = judgment_labels(store.sql(f"SELECT * FROM judgments WHERE {clause}"))
    values = agreement_rows(humans, evaluators, n_boot, confidence, seed)
    if not values:
        raise FactoryError(f"no evaluator judged the items the humans labelled (human strategies: {', '.join(humans)}; "
                           f"judged: {', '.join(evaluators) or 'none'})")
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    fingerprint = stable_hash("calibrate", human, human_where, judgments_where, n_boot, confidence, seed)
    now = dt.datetime.now(dt.timezone.utc)
    records = [AgreementRow(id=stable_hash(run_id, v["evaluator"], v["reference"], v["strategy"], v["metric"]),
                            parent_id=None, run_id=run_id, created_at=now, stage="calibrate", fingerprint=fingerprint,
                            template=f"human:{human}", **v) for v in values]
    store.append("agreement", rows_to_arrow(records, AgreementRow))
    frame = pl.DataFrame([r.model_dump() for r in records])
    return frame.filter(pl.col("reference").is_in(["human", "panel"])).sort(["strategy", "metric", "rank"], nulls_last=True)
