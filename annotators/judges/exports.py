"""Export format `judge-dpo` (registered by the CLI): TRL preference pairs from `judgments`.

A pairwise judgment (judge, jury or debate) gives a pair when its verdict is decisive: 'A' or 'B'
after both orders, so position-biased flips (ties) never become training data. A valid ranking gives
(best, worst). Output: conversational `prompt`, `chosen`, `rejected`, as the `dpo` format.
"""

from __future__ import annotations

import polars as pl

from factory.formats import to_dpo


def decisive_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for row in frame.iter_rows(named=True):
        candidates = row.get("candidates") or []
        if row.get("strategy") == "pairwise" and row.get("verdict") in ("A", "B") and len(candidates) == 2:
            first_wins = row["verdict"] == "A"
            rows.append({"prompt": row["prompt"], "chosen": candidates[0 if first_wins else 1],
                         "rejected": candidates[1 if first_wins else 0]})
        elif row.get("strategy") == "ranking" and row.get("ranking") and len(candidates) >= 2:
            rows.append({"prompt": row["prompt"], "chosen": candidates[row["ranking"][0]],
                         "rejected": candidates[row["ranking"][-1]]})
    return pl.DataFrame(rows, schema={"prompt": pl.String, "chosen": pl.String, "rejected": pl.String})


def to_judge_dpo(frame: pl.DataFrame) -> pl.DataFrame:
    return to_dpo(decisive_pairs(frame))
