"""Export formats for `instructions` (registered by the CLI as `factory export` formats)."""

from __future__ import annotations

import polars as pl


def to_alpaca(frame: pl.DataFrame) -> pl.DataFrame:
    """Alpaca's `instruction` / `input` / `output` (input empty: the instruction is self-contained)."""
    prompt = "instruction" if "instruction" in frame.columns else "prompt"
    kept = frame.filter(pl.col(prompt).is_not_null() & pl.col("response").is_not_null())
    return kept.select(
        pl.col("id"),
        pl.col(prompt).alias("instruction"),
        pl.lit("").alias("input"),
        pl.col("response").alias("output"),
    )
