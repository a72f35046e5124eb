"""Export conversions for annotated data sets (registered in factory.export.FORMATS).

- helpsteer2: `prompt, response, helpfulness, correctness, coherence, complexity, verbosity`, ints 0-4
  (from `ratings` or `aggregated_ratings`; rows flagged high_disagreement are dropped, as HelpSteer2 does).
- helpsteer2-preference: `prompt, response_1, response_2, preference_strength` (int32 -3..3, as the
  data card), `preference_statement, preference_elaboration` (the justification's first sentence and
  the rest), `justification` (from `helpsteer_preferences` or `aggregated_preferences`).
- rm (TRL reward): `chosen, rejected, margin`, conversational with the prompt inside (implicit prompt).
- dpo (TRL preference): `prompt, chosen, rejected`, conversational (explicit prompt).
rm and dpo read CDR `preferences` (chosen/rejected), `helpsteer_preferences` or
`aggregated_preferences` (a non-zero strength picks the better response; margin = |strength|).
Rows flagged `high_disagreement` (the aggregate tables) are never exported.
"""

from __future__ import annotations

import polars as pl

from annotators.helpsteer.parse import split_justification
from factory.errors import FactoryError
from schemas.ratings import ATTRIBUTES

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def _agreed(frame: pl.DataFrame) -> pl.DataFrame:
    """Without the rows an aggregation flagged `high_disagreement` (HelpSteer2 drops those items)."""
    if "high_disagreement" in frame.columns:
        frame = frame.filter(~pl.col("high_disagreement").cast(pl.Boolean).fill_null(False))
    return frame


def to_helpsteer2(frame: pl.DataFrame) -> pl.DataFrame:
    frame = _agreed(frame).drop_nulls([*ATTRIBUTES, "response"])
    # Half-up rounding (2.5 -> 3): polars' round is half-to-even, which would bias ratings downwards.
    scores = [(pl.col(a) + 0.5).floor().clip(0, 4).cast(pl.Int64).alias(a) for a in ATTRIBUTES]
    return frame.select(pl.col("prompt").cast(pl.String), pl.col("response").cast(pl.String), *scores)


def to_helpsteer2_preference(frame: pl.DataFrame) -> pl.DataFrame:
    frame = _agreed(frame).drop_nulls(["preference_strength"])
    texts = frame["justification"].cast(pl.String).to_list() if "justification" in frame.columns else [None] * frame.height
    statements, elaborations = zip(*map(split_justification, texts), strict=True) if texts else ((), ())
    strength = pl.col("preference_strength").cast(pl.Float64)
    # Half away from zero, as the stages round (a float column from elsewhere rounds the same way);
    # int32 as in the data card, so `datasets` reads Value('int32').
    nearest = (strength.abs() + 0.5).floor() * strength.sign()
    return frame.select(
        pl.col("prompt").cast(pl.String), pl.col("response_1").cast(pl.String), pl.col("response_2").cast(pl.String),
        nearest.clip(-3, 3).cast(pl.Int32).alias("preference_strength"),
        pl.Series("preference_statement", statements, pl.String), pl.Series("preference_elaboration", elaborations, pl.String),
        pl.Series("justification", texts, pl.String),
    )


def _pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """prompt, chosen, rejected, margin from either preference table."""
    if {"chosen", "rejected"} <= set(frame.columns):
        margin = pl.col("margin") if "margin" in frame.columns else pl.lit(0.0)
        return frame.select("prompt", "chosen", "rejected", margin.cast(pl.Float64).alias("margin"))
    if {"response_1", "response_2", "preference_strength"} <= set(frame.columns):
        frame = _agreed(frame).filter(pl.col("preference_strength").is_not_null() & (pl.col("preference_strength") != 0))
        second = pl.col("preference_strength") > 0
        return frame.select(
            "prompt",
            pl.when(second).then(pl.col("response_2")).otherwise(pl.col("response_1")).alias("chosen"),
            pl.when(second).then(pl.col("response_1")).otherwise(pl.col("response_2")).alias("rejected"),
            pl.col("preference_strength").abs().cast(pl.Float64).alias("margin"),
        )
    raise FactoryError("rm/dpo export needs columns chosen, rejected (CDR `preferences`) or "
                       "response_1, response_2, preference_strength (`helpsteer_preferences`)")


def _turns(*pairs: tuple[str, pl.Expr]) -> pl.Expr:
    return pl.concat_list([pl.struct(pl.lit(role).alias("role"), text.alias("content")) for role, text in pairs])


def to_rm(frame: pl.DataFrame) -> pl.DataFrame:
    pairs = _pairs(frame)
    return pairs.select(
        _turns(("user", pl.col("prompt")), ("assistant", pl.col("chosen"))).cast(MESSAGES).alias("chosen"),
        _turns(("user", pl.col("prompt")), ("assistant", pl.col("rejected"))).cast(MESSAGES).alias("rejected"),
        "margin",
    )


def to_dpo(frame: pl.DataFrame) -> pl.DataFrame:
    pairs = _pairs(frame)
    return pairs.select(
        _turns(("user", pl.col("prompt"))).cast(MESSAGES).alias("prompt"),
        _turns(("assistant", pl.col("chosen"))).cast(MESSAGES).alias("chosen"),
        _turns(("assistant", pl.col("rejected"))).cast(MESSAGES).alias("rejected"),
    )
