"""TRL's formats from store rows: the one home of the conversions `factory export` and the trainers share.

- SFT: conversational `messages`: a system turn when `system_prompt` is set, the user's `prompt` (or
  `instruction`), the assistant's `response`; rows without a response are skipped.
- Preference pairs come in two layouts: CDR `preferences` (`chosen`, `rejected`, `margin`) or
  HelpSteer2-Preference (`response_1`, `response_2`, `preference_strength` -3..3, < 0: response 1 is
  better), per rater (`helpsteer_preferences`) or aggregated (`aggregated_preferences`). Ties
  (strength 0 or NULL) and rows an aggregation flagged `high_disagreement` are skipped. A pair's
  margin is its `margin`, else |preference_strength|.
- TRL preference (`dpo` export, DPO/SimPO/BT training): conversational `prompt`, `chosen`, `rejected`
  (explicit prompt). TRL reward (`rm` export): `chosen`, `rejected` with the prompt inside (implicit
  prompt) and `margin`.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from factory.errors import FactoryError

Conversation = list[dict[str, str]]
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
PROMPT = "prompt|instruction"  # either column (require_columns' alternatives)
PAIR = ("chosen", "rejected")
HELPSTEER_PAIR = ("response_1", "response_2", "preference_strength")


def prompt_column(columns: list[str]) -> str:
    return "prompt" if "prompt" in columns else "instruction"


def user_turns(row: dict[str, Any], prompt: str) -> Conversation:
    system = row.get("system_prompt")
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": row[prompt]}]


def assistant(text: str | None) -> Conversation:
    return [{"role": "assistant", "content": text}]


def agreed(frame: pl.DataFrame) -> pl.DataFrame:
    """Without the rows an aggregation flagged `high_disagreement` (HelpSteer2 drops those items)."""
    if "high_disagreement" in frame.columns:
        frame = frame.filter(~pl.col("high_disagreement").cast(pl.Boolean).fill_null(False))
    return frame


def sft_messages(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """`{"id", "messages"}` per row with a response."""
    prompt = prompt_column(frame.columns)
    return [{"id": row.get("id"), "messages": user_turns(row, prompt) + assistant(row["response"])}
            for row in frame.iter_rows(named=True) if row["response"] is not None]


def pair_needs(columns: list[str]) -> list[str]:
    """The columns (`a|b`: either) the pair layout these columns start needs."""
    if all(c in columns for c in PAIR):
        return [PROMPT, *PAIR]
    if any(c in columns for c in HELPSTEER_PAIR):
        return [PROMPT, *HELPSTEER_PAIR]
    return [PROMPT, *PAIR]


def preference_pairs(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Oriented pairs from either layout: `prompt` (conversation), `chosen`, `rejected` (texts),
    `strength` (None without a strength column) and `margin`."""
    columns = frame.columns
    prompt = prompt_column(columns)
    if all(c in columns for c in PAIR):
        rows = [(row, row["chosen"], row["rejected"]) for row in frame.iter_rows(named=True)]
    elif all(c in columns for c in HELPSTEER_PAIR):
        rows = []
        for row in agreed(frame).iter_rows(named=True):
            strength = row["preference_strength"]
            if strength:  # a tie (0) or no preference (NULL) orders nothing
                better, worse = ("response_1", "response_2") if strength < 0 else ("response_2", "response_1")
                rows.append((row, row[better], row[worse]))
    else:
        raise FactoryError("preference pairs need columns chosen, rejected (CDR `preferences`) or "
                           "response_1, response_2, preference_strength (`helpsteer_preferences`)")
    pairs = []
    for row, chosen, rejected in rows:
        strength = row.get("preference_strength")
        margin = row.get("margin")
        pairs.append({"prompt": user_turns(row, prompt), "chosen": chosen, "rejected": rejected, "strength": strength,
                      "margin": float(margin) if margin is not None else None if strength is None else abs(float(strength))})
    return pairs


def preference_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """TRL's conversational preference format, explicit prompt: `prompt`, `chosen`, `rejected`."""
    return [{"prompt": p["prompt"], "chosen": assistant(p["chosen"]), "rejected": assistant(p["rejected"])}
            for p in preference_pairs(frame)]


# ---- `factory export --format sft | dpo | rm` (frames with a fixed schema, as written to Parquet)

def to_sft(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(sft_messages(frame), schema={"id": pl.String, "messages": MESSAGES})


def to_dpo(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(preference_rows(frame), schema={"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES})


def to_rm(frame: pl.DataFrame) -> pl.DataFrame:
    rows = [{"chosen": p["prompt"] + assistant(p["chosen"]), "rejected": p["prompt"] + assistant(p["rejected"]),
             "margin": p["margin"] if p["margin"] is not None else 0.0} for p in preference_pairs(frame)]
    return pl.DataFrame(rows, schema={"chosen": MESSAGES, "rejected": MESSAGES, "margin": pl.Float64})
