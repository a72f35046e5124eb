"""Stage `win_rates`: raw and length-controlled win rates per evaluator and configuration pair, from
`judgments` -> data set `win_rates` (statistics in annotators/judges/winrates.py).

The driver turns the selected judgments into one work item per (evaluator, A, B) holding every
judged outcome; the item's id hashes the judgments it was made from, so new judgments give a new
row on the next run (the latest row per comparison is the current one; `factory report` shows that).
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
import pyarrow as pa

from pydantic import Field, field_validator

from annotators.grouping import require_input_columns
from annotators.judges.winrates import GamedSet, GLMSettings, difficulties, oriented, pair_outcomes, win_rate
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig
from schemas.judging import WinRateRow

ITEM_SCHEMA = pa.schema([("id", pa.string()), ("evaluator", pa.string()), ("configuration_a", pa.string()),
                         ("configuration_b", pa.string()), ("outcomes", pa.list_(pa.float64())),
                         ("len_a", pa.list_(pa.int64())), ("len_b", pa.list_(pa.int64())),
                         ("difficulty", pa.list_(pa.float64())),
                         # Gamed-baseline sets, one list entry per set (see annotators/judges/winrates.py).
                         ("gamed_outcomes", pa.list_(pa.list_(pa.float64()))),
                         ("gamed_len_a", pa.list_(pa.list_(pa.int64()))), ("gamed_len_b", pa.list_(pa.list_(pa.int64()))),
                         ("gamed_difficulty", pa.list_(pa.list_(pa.float64())))])


class WinRatesConfig(StageConfig):
    comparisons: list[list[str]] | None = Field(
        default=None, description="[A, B] pairs: A's win rate against baseline B. None: every pair judged, as first judged.",
    )
    n_boot: int = Field(default=200, ge=0, description="Bootstrap resamples for the intervals (0: none).")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Interval coverage.")
    glm: GLMSettings = Field(default_factory=GLMSettings, description="Length-controlled GLM settings "
                             "(alpaca_eval's length_controlled_v1 by default).")
    difficulty: Literal["pooled", "none"] = Field(
        default="pooled", description="'pooled': instruction difficulty from the other configurations judged against "
        "the same baseline (leave-one-out logit); 'none': no difficulty term.")
    gamed_baselines: dict[str, list[str]] = Field(
        default_factory=dict, description="Baseline -> configurations that are the baseline made longer or shorter "
        "(judged against it); their rows regularise the GLM towards the baseline (weight glm.regularize_to_baseline_lambda).")
    seed: int = Field(default=0, description="Bootstrap seed.")

    @field_validator("comparisons")
    @classmethod
    def _pairs(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        for i, pair in enumerate(value or []):
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"comparisons[{i}]: give two different configurations [A, B], got {pair}")
        return value


class WinRatesStage(Stage):
    Config = WinRatesConfig
    Record = WinRateRow
    default_output = "win_rates"

    config: WinRatesConfig

    @classmethod
    def reads(cls, config: WinRatesConfig) -> list[str]:
        return ["id", "evaluator", "strategy", "configurations", "candidates", "verdict"]

    @classmethod
    def prepare_input(cls, config: WinRatesConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, cls.reads(config), "win_rates")
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        if "error" in frame.columns:
            frame = frame.filter(pl.col("error").is_null())
        outcomes = pair_outcomes(frame)
        comparisons = [tuple(pair) for pair in config.comparisons or []]
        if not comparisons:
            for a, b in outcomes.select("configuration_a", "configuration_b").unique(maintain_order=True).iter_rows():
                if (b, a) not in comparisons and (a, b) not in comparisons:
                    comparisons.append((a, b))
        items = []
        for a, b in comparisons:
            both = oriented(outcomes, a, b)
            for (evaluator,), group in both.group_by("evaluator", maintain_order=True):
                known = difficulties(outcomes, a, b, evaluator) if config.difficulty == "pooled" else {}
                gamed = [oriented(outcomes, g, b).filter(pl.col("evaluator") == evaluator)
                         for g in config.gamed_baselines.get(b, []) if g != a]
                gamed = [g for g in gamed if len(g)]
                items.append({"id": stable_hash("win-rate", evaluator, a, b, sorted(group["item"].to_list()),
                                                sorted(i for g in gamed for i in g["item"].to_list())),
                              "evaluator": evaluator, "configuration_a": a, "configuration_b": b,
                              "outcomes": group["outcome"].to_list(), "len_a": group["len_a"].to_list(),
                              "len_b": group["len_b"].to_list(),
                              "difficulty": [known.get(i, 0.0) for i in group["instruction"].to_list()],
                              "gamed_outcomes": [g["outcome"].to_list() for g in gamed],
                              "gamed_len_a": [g["len_a"].to_list() for g in gamed],
                              "gamed_len_b": [g["len_b"].to_list() for g in gamed],
                              "gamed_difficulty": [[known.get(i, 0.0) for i in g["instruction"].to_list()]
                                                   for g in gamed]})
        return pa.Table.from_pylist(items, schema=ITEM_SCHEMA)

    def process(self, rows: list[dict[str, Any]]) -> list[WinRateRow]:
        config, records = self.config, []
        for row in rows:
            gamed = [GamedSet(*parts) for parts in zip(row["gamed_outcomes"] or [], row["gamed_len_a"] or [],
                                                       row["gamed_len_b"] or [], row["gamed_difficulty"] or [],
                                                       strict=True)]
            result = win_rate(row["outcomes"], row["len_a"], row["len_b"], config.n_boot, config.confidence,
                              config.seed, config.glm, row["difficulty"], gamed)
            records.append(WinRateRow(
                **self.lineage(row["id"]), template="win-rate/v2:alpaca-lc-glm", evaluator=row["evaluator"],
                configuration_a=row["configuration_a"], configuration_b=row["configuration_b"], n=result.n,
                wins=result.wins, losses=result.losses, ties=result.ties, win_rate=result.win_rate,
                win_rate_ci_low=result.win_rate_ci[0], win_rate_ci_high=result.win_rate_ci[1],
                lc_win_rate=result.lc_win_rate, lc_ci_low=result.lc_ci[0], lc_ci_high=result.lc_ci[1],
                length_coef=result.length_coef, mean_length_a=sum(row["len_a"]) / len(row["len_a"]),
                mean_length_b=sum(row["len_b"]) / len(row["len_b"]),
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> WinRateRow:
        return WinRateRow(**self.lineage(row["id"]), evaluator=str(row.get("evaluator")),
                          configuration_a=str(row.get("configuration_a")), configuration_b=str(row.get("configuration_b")),
                          n=len(row.get("outcomes") or []), wins=0, losses=0, ties=0, error=message)
