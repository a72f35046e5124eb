"""CDR's stages: `cdr` (density-ratio rewards) and `cdr_pairs` (on-policy preference pairs from them).

Stage `cdr`: density-ratio rewards r(x, y) = sum log pi_strong(y_t) - sum log pi_weak(y_t).

One actor holds both models (roles `strong` and `weak`), each its own Engine with its own tokenizer
and chat template: the pair is small enough to share an actor, and scoring a prompt's N responses
under both models in one place avoids shipping rows between two actor pools. A work item is one
prompt with all its responses (`prepare_input`), so each engine sees the N (conversation, response)
pairs of a prompt in one `logprobs` call and can share the prompt's computation. An optional third
role, `router`, labels the domains (the reference uses a separate model); without it the strong model
does. Layouts and the reference they follow: annotators/cdr/customise.py.

Stage `cdr_pairs`: one preference pair per prompt from its CDR rewards (the rule: annotators/cdr/pairs.py).
Rewards are grouped per (cdr run fingerprint, prompt): a re-run of `cdr` with other criteria or
models writes rewards on another scale, and one group must never mix the two.
"""

from __future__ import annotations

import random
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from annotators.cdr.customise import Customisation, Domain, Exemplar, Layout, build_conversation, template_tag
from annotators.cdr.pairs import build_pair
from annotators.cdr.router import RouterConfig, route
from annotators.grouping import group_rows, require_input_columns
from factory.ids import row_id, stable_hash
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit, grouped_by
from schemas.cdr import PreferenceRow, RewardRow


class CDRConfig(StageConfig):
    prompt_column: str = Field(default="prompt", description="Input column with the user prompt.")
    response_column: str = Field(default="response", description="Input column with the response to score.")
    group_by: str = Field(default="parent_id", description="Input column whose equal values form one prompt's group.")
    criteria: str | None = Field(default=None, description="Criteria system prompt (used when no router domain applies).")
    exemplars: list[Exemplar] = Field(default_factory=list, description="In-context exemplars (see `layout`).")
    exemplar_intro: str = Field(default="For example,", description="user_turn layout: line in front of the exemplars.")
    fewshot: str | None = Field(default=None, description="user_turn layout: verbatim few-shot text instead of `exemplars`.")
    layout: Layout = Field(
        default="user_turn", description="'user_turn': criteria as system prompt, few-shot + query + 'Good Assistant:' "
        "as the user turn (the reference's layout); 'system': criteria and exemplars in the system prompt.",
    )
    router: RouterConfig | None = Field(
        default=None, description="Label prompts SAFETY / REASONING / CHAT with the `router` model role when the stage "
        "names one (the reference uses a separate model), else the strong model; None: no routing.",
    )
    domains: dict[Domain, Customisation] = Field(
        default_factory=dict, description="Per-domain criteria and exemplars, chosen by the router's label."
    )
    weak_system_prompt: str | None = Field(
        default=None,
        description="System prompt for the weak model instead of the criteria (None: both see the same conversation, "
        "as in the paper). Lets one model with a 'careless assistant' prompt stand in for a weak model.",
    )


class CDRStage(Stage):
    Config = CDRConfig
    Record = RewardRow
    default_output = "rewards"
    model_roles = ("strong", "weak")
    optional_model_roles = ("router",)

    config: CDRConfig

    @classmethod
    def reads(cls, config: CDRConfig) -> list[str]:
        return ["id", config.group_by, config.prompt_column, config.response_column]

    @classmethod
    def stream_unit(cls, config: CDRConfig) -> StreamUnit:
        return grouped_by(config.group_by)

    @classmethod
    def prepare_input(cls, config: CDRConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        require_input_columns(rows, cls.reads(config), "cdr")
        grouped = group_rows(rows, config.group_by, [config.prompt_column, config.response_column],
                             drop_null=config.response_column)
        return grouped.rename_columns(["id", "member_ids", "prompt", "response"])

    def _customisation(self, domain: Domain | None) -> Customisation:
        if domain is not None and domain in self.config.domains:
            return self.config.domains[domain]
        return Customisation(criteria=self.config.criteria, exemplars=self.config.exemplars,
                             exemplar_intro=self.config.exemplar_intro, fewshot=self.config.fewshot)

    def process(self, rows: list[dict[str, Any]]) -> list[RewardRow]:
        strong, weak = self.engines["strong"], self.engines["weak"]
        prompts = [row["prompt"][0] for row in rows]
        router = self.engines.get("router", strong)
        domains: list[Domain | None] = (
            list(route(router, prompts, self.config.router)) if self.config.router else [None] * len(rows)
        )
        strong_pairs, weak_pairs, owners = [], [], []
        customs = [self._customisation(domain) for domain in domains]
        layout = self.config.layout
        for index, (row, prompt, custom) in enumerate(zip(rows, prompts, customs, strict=True)):
            strong_conversation = build_conversation(custom, prompt, layout)
            weak_conversation = build_conversation(custom, prompt, layout, self.config.weak_system_prompt)
            for response in row["response"]:
                strong_pairs.append((strong_conversation, response))
                weak_pairs.append((weak_conversation, response))
                owners.append(index)
        # One call per model for the whole batch: the engine shares each prompt's computation.
        strong_scores = strong.logprobs([c for c, _ in strong_pairs], [r for _, r in strong_pairs])
        weak_scores = weak.logprobs([c for c, _ in weak_pairs], [r for _, r in weak_pairs])
        records, position = [], 0
        for index, row in enumerate(rows):
            tag = template_tag(customs[index], self.config.weak_system_prompt, layout)
            for response_id, response in zip(row["member_ids"], row["response"], strict=True):
                s, w = strong_scores[position], weak_scores[position]
                position += 1
                records.append(RewardRow(
                    **{**self.lineage(row["id"]), "id": row_id(self.context.fingerprint, response_id)},
                    model=strong.name, weak_model=weak.name, template=tag,
                    response_id=response_id, prompt=prompts[index], response=response, domain=domains[index],
                    reward=sum(s) - sum(w), strong_logprob=sum(s), weak_logprob=sum(w),
                    strong_tokens=len(s), weak_tokens=len(w),
                ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> RewardRow:
        prompts = row.get("prompt") or [None]
        return RewardRow(**self.lineage(row["id"]), model=self.engines["strong"].name,
                         weak_model=self.engines["weak"].name, prompt=prompts[0], error=message)


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
