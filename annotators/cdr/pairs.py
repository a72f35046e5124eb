"""Stage `cdr_pairs`: on-policy preference pairs from CDR rewards, one per prompt.

chosen = argmax reward; rejected = a random non-max response (or argmin); prompts whose rewards
are all equal (max == min) give no pair (arXiv 2411.02481). A response with the chosen one's text is
never the rejected one (a pair of identical texts teaches nothing, whatever rounding made of their
rewards). Rewards are grouped per (cdr run fingerprint, prompt): a re-run of `cdr` with other criteria
or models writes rewards on another scale, and one group must never mix the two.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from annotators.grouping import group_rows, require_input_columns
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit
from schemas.cdr import PreferenceRow


def build_pair(rewards: list[float], rule: Literal["random", "argmin"], rng: random.Random,
               texts: list[str] | None = None) -> tuple[int, int] | None:
    """(chosen index, rejected index), or None when every reward ties (nothing to prefer) or every
    lower-reward response has the chosen response's text."""
    if len(rewards) < 2:
        return None
    best, worst = max(rewards), min(rewards)
    if best == worst:
        return None
    chosen = rewards.index(best)
    # Every response below the max is a candidate (ties with the max are not "non-max"), unless it is
    # the chosen text again.
    candidates = [i for i, r in enumerate(rewards) if r < best and (texts is None or texts[i] != texts[chosen])]
    if not candidates:
        return None
    if rule == "argmin":
        return chosen, min(candidates, key=lambda i: rewards[i])
    return chosen, rng.choice(candidates)


class CDRPairsConfig(StageConfig):
    rule: Literal["random", "argmin"] = Field(default="random", description="How the rejected response is picked.")
    seed: int = Field(default=0, description="Seed of the random pick, mixed with the prompt's id (reproducible).")


class CDRPairsStage(Stage):
    Config = CDRPairsConfig
    Record = PreferenceRow
    default_output = "preferences"

    config: CDRPairsConfig

    @classmethod
    def reads(cls, config: CDRPairsConfig) -> list[str]:
        return ["id", "parent_id", "fingerprint", "response_id", "prompt", "response", "reward", "domain"]

    @classmethod
    def stream_unit(cls, config: CDRPairsConfig) -> StreamUnit:
        return "parent"  # a CDR item's N rewards are committed together

    @classmethod
    def prepare_input(cls, config: CDRPairsConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, cls.reads(config), "cdr_pairs")
        # The group key (and so the work item id, the preference's parent_id) is one per (run, prompt).
        keys = [stable_hash("cdr-group", fingerprint, parent) if parent is not None else None
                for fingerprint, parent in zip(rows.column("fingerprint").to_pylist(),
                                               rows.column("parent_id").to_pylist(), strict=True)]
        keyed = rows.append_column("group_key", pa.array(keys, pa.string()))
        return group_rows(keyed, "group_key", ["response_id", "prompt", "response", "reward", "domain"],
                          drop_null="reward")

    def process(self, rows: list[dict[str, Any]]) -> list[PreferenceRow]:
        records = []
        for row in rows:
            rng = random.Random(stable_hash(self.config.seed, row["id"]))
            pair = build_pair(row["reward"], self.config.rule, rng, row["response"])
            if pair is None:
                continue
            chosen, rejected = pair
            records.append(PreferenceRow(
                **self.lineage(row["id"]),
                prompt=row["prompt"][chosen], chosen=row["response"][chosen], rejected=row["response"][rejected],
                chosen_id=row["response_id"][chosen], rejected_id=row["response_id"][rejected],
                chosen_reward=row["reward"][chosen], rejected_reward=row["reward"][rejected],
                margin=row["reward"][chosen] - row["reward"][rejected], domain=row["domain"][chosen],
                candidates=len(row["reward"]), rule=self.config.rule,
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> PreferenceRow:
        return PreferenceRow(**self.lineage(row["id"]), prompt=(row.get("prompt") or [""])[0], chosen="", rejected="",
                             chosen_id="", rejected_id="", chosen_reward=0.0, rejected_reward=0.0, margin=0.0,
                             candidates=len(row.get("reward") or []), rule=self.config.rule, error=message)
