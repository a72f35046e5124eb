"""Export conversions for annotated data sets (registered in factory.export.FORMATS).

- helpsteer2: `prompt, response, helpfulness, correctness, coherence, complexity, verbosity`, ints 0-4
  (from `ratings` or `aggregated_ratings`; rows flagged high_disagreement are dropped, as HelpSteer2 does).
- helpsteer2-preference: `prompt, response_1, response_2, preference_strength, justification`.
- rm (TRL reward): `chosen, rejected, margin`, conversational with the prompt inside (implicit prompt).
- dpo (TRL preference): `prompt, chosen, rejected`, conversational (explicit prompt).
rm and dpo read CDR `preferences` (chosen/rejected) or `helpsteer_preferences` (a non-zero strength
picks the better response; margin = |strength|).
"""

from __future__ import annotations

import polars as pl

from factory.errors import FactoryError
from schemas.ratings import ATTRIBUTES

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def to_helpsteer2(frame: pl.DataFrame) -> pl.DataFrame:
    if "high_disagreement" in frame.columns:
        frame = frame.filter(~pl.col("high_disagreement").cast(pl.Boolean).fill_null(False))
    frame = frame.drop_nulls([*ATTRIBUTES, "response"])
    # Half-up rounding (2.5 -> 3): polars' round is half-to-even, which would bias ratings downwards.
    scores = [(pl.col(a) + 0.5).floor().clip(0, 4).cast(pl.Int64).alias(a) for a in ATTRIBUTES]
    return frame.select(pl.col("prompt").cast(pl.String), pl.col("response").cast(pl.String), *scores)


def to_helpsteer2_preference(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.drop_nulls(["preference_strength"])
    justification = pl.col("justification") if "justification" in frame.columns else pl.lit(None)
    return frame.select(
        pl.col("prompt").cast(pl.String), pl.col("response_1").cast(pl.String), pl.col("response_2").cast(pl.String),
        pl.col("preference_strength").round(0).clip(-3, 3).cast(pl.Int64), justification.cast(pl.String).alias("justification"),
    )


def _pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """prompt, chosen, rejected, margin from either preference table."""
    if {"chosen", "rejected"} <= set(frame.columns):
        margin = pl.col("margin") if "margin" in frame.columns else pl.lit(0.0)
        return frame.select("prompt", "chosen", "rejected", margin.cast(pl.Float64).alias("margin"))
    if {"response_1", "response_2", "preference_strength"} <= set(frame.columns):
        frame = frame.filter(pl.col("preference_strength").is_not_null() & (pl.col("preference_strength") != 0))
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
