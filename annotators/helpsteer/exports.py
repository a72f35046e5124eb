"""HelpSteer2 export conversions for annotated data sets (the CLI registers them as `factory export` formats).

- helpsteer2: `prompt, response, helpfulness, correctness, coherence, complexity, verbosity`, ints 0-4
  (from `ratings` or `aggregated_ratings`; rows flagged high_disagreement are dropped, as HelpSteer2 does).
- helpsteer2-preference: `prompt, response_1, response_2, preference_strength` (int32 -3..3, as the
  data card), `preference_statement, preference_elaboration` (the justification's first sentence and
  the rest), `justification` (from `helpsteer_preferences` or `aggregated_preferences`).
The TRL formats of the same tables (`rm`, `dpo`: preference pairs oriented by strength) are
factory/formats.py's, shared with the trainers.
"""

from __future__ import annotations

import polars as pl

from annotators.helpsteer.parse import split_justification
from factory.formats import agreed
from schemas.ratings import ATTRIBUTES


def to_helpsteer2(frame: pl.DataFrame) -> pl.DataFrame:
    frame = agreed(frame).drop_nulls([*ATTRIBUTES, "response"])
    # Half-up rounding (2.5 -> 3): polars' round is half-to-even, which would bias ratings downwards.
    scores = [(pl.col(a) + 0.5).floor().clip(0, 4).cast(pl.Int64).alias(a) for a in ATTRIBUTES]
    return frame.select(pl.col("prompt").cast(pl.String), pl.col("response").cast(pl.String), *scores)


def to_helpsteer2_preference(frame: pl.DataFrame) -> pl.DataFrame:
    frame = agreed(frame).drop_nulls(["preference_strength"])
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
