"""Stage `llama_guard`: safety labels for prompts (last User turn) or responses (last Agent turn).

P(unsafe) is read from the option probabilities of 'safe' / 'unsafe' as the guard's first answer
(normalised over the two), thresholded into a label; in generative mode the guard also writes its
verdict, whose second line gives the violated categories (one boolean column each). A filter policy
sets `keep`, which exports select on (docs/annotators.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from annotators.guard.parse import GuardOutputError, parse_guard_output
from annotators.guard.render import Role, judged_turns, render_guard_prompt
from factory.engines import Conversation, SamplingParams
from factory.stage import Stage, StageConfig, StageContext
from schemas.safety import SafetyRow, category_column, safety_record_type
from schemas.taxonomies import CustomTaxonomy, Taxonomy, resolve_taxonomy

GUARD_TEMPLATE_MARK = "UNSAFE CONTENT CATEGORIES"  # a chat template that renders the guard prompt itself


class FilterPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop_unsafe: bool = Field(default=True, description="keep = False for rows labelled unsafe (in any category).")
    categories: list[str] | None = Field(
        default=None, description="Only these category codes make a row dropped (needs generate); unsafe rows "
        "with no generated categories are dropped to be safe. None: any category.",
    )


class LlamaGuardConfig(StageConfig):
    role: Role = Field(default="Agent", description="'Agent': classify the response; 'User': classify the prompt.")
    prompt_column: str = Field(default="prompt", description="Input column with the user prompt.")
    response_column: str = Field(default="response", description="Input column with the response (role Agent).")
    taxonomy: Literal["v1", "v3"] | CustomTaxonomy = Field(
        default="v3", description="'v1' (O1-O6), 'v3' (S1-S14), a custom mapping (base/remove/rename/add), or the "
        "path of a YAML file holding one (relative to the working directory).",
    )
    descriptions: bool | None = Field(default=None, description="List category descriptions (default: the taxonomy's).")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="unsafe = p_unsafe >= threshold.")
    generate: bool = Field(default=True, description="Also generate the verdict and parse the violated categories.")
    max_new_tokens: int = Field(default=16, ge=1, description="Generative mode: tokens to generate.")
    prompt_format: Literal["auto", "render", "model_template"] = Field(
        default="auto",
        description="'render': our guard prompt as one user message inside the model's chat template; "
        "'model_template': the raw conversation, for guard models whose chat template renders the guard prompt "
        "itself (with its built-in categories); 'auto': model_template when the template does so, else render.",
    )
    policy: FilterPolicy = Field(default_factory=FilterPolicy, description="What sets `keep` to False.")

    @field_validator("taxonomy", mode="before")
    @classmethod
    def _taxonomy_file(cls, value: Any) -> Any:
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"taxonomy file {value} not found (paths are relative to the working directory)")
            loaded = yaml.safe_load(path.read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"taxonomy file {value}: expected a mapping with base/remove/rename/add")
            return loaded
        return value

    @model_validator(mode="after")
    def _check(self) -> LlamaGuardConfig:
        taxonomy = self.resolved()  # raises on a bad custom taxonomy, before any work
        unknown = [c for c in self.policy.categories or [] if c not in taxonomy.codes]
        if unknown:
            raise ValueError(f"policy.categories: unknown code(s) {', '.join(unknown)} (taxonomy: {', '.join(taxonomy.codes)})")
        return self

    def resolved(self) -> Taxonomy:
        return resolve_taxonomy(self.taxonomy)


class LlamaGuardStage(Stage):
    Config = LlamaGuardConfig
    Record = SafetyRow
    default_output = "safety"
    model_roles = ("model",)

    config: LlamaGuardConfig

    def __init__(self, context: StageContext):
        super().__init__(context)
        self.taxonomy = self.config.resolved()
        self.Record = safety_record_type(self.taxonomy)  # adds unsafe_<code> per category of this taxonomy
        tokenizer = getattr(self.engines["model"], "tokenizer", None)
        template = getattr(tokenizer, "chat_template", None) or ""
        fmt = self.config.prompt_format
        self.own_template = fmt == "model_template" or (fmt == "auto" and GUARD_TEMPLATE_MARK in template)

    @classmethod
    def reads(cls, config: LlamaGuardConfig) -> list[str]:
        return ["id", config.prompt_column] + ([config.response_column] if config.role == "Agent" else [])

    def _conversation(self, row: dict[str, Any]) -> Conversation:
        prompt = row[self.config.prompt_column]
        if not isinstance(prompt, str):
            raise ValueError(f"column {self.config.prompt_column!r} is empty")
        turns = [{"role": "user", "content": prompt}]
        if self.config.role == "Agent":
            response = row[self.config.response_column]
            if not isinstance(response, str):
                raise ValueError(f"column {self.config.response_column!r} is empty")
            turns.append({"role": "assistant", "content": response})
        if self.own_template:
            return judged_turns(turns, self.config.role)
        return [{"role": "user", "content": render_guard_prompt(turns, self.config.role, self.taxonomy,
                                                                self.config.descriptions)}]

    def _keep(self, unsafe: bool, categories: list[str] | None) -> bool:
        policy = self.config.policy
        if not (policy.drop_unsafe and unsafe):
            return True
        if policy.categories is None or categories is None:
            return False
        return not set(categories) & set(policy.categories)

    def process(self, rows: list[dict[str, Any]]) -> list[SafetyRow]:
        engine = self.engines["model"]
        conversations = [self._conversation(row) for row in rows]
        probabilities = engine.option_probs(conversations, ["safe", "unsafe"])
        texts: list[str | None] = [None] * len(rows)
        if self.config.generate:
            sampling = SamplingParams(n=1, max_new_tokens=self.config.max_new_tokens, temperature=0.0)
            texts = [g.completions[0].text if g.completions else "" for g in engine.generate(conversations, sampling)]
        template = "guard/model-template" if self.own_template else f"guard/render-{self.taxonomy.style}"
        records = []
        for row, (p_safe, p_unsafe), text in zip(rows, probabilities, texts, strict=True):
            total = p_safe + p_unsafe
            score = p_unsafe / total if total > 0 else 0.5  # both vanishingly small: no information
            unsafe = score >= self.config.threshold
            categories, error = None, None
            if text is not None:
                try:
                    categories = parse_guard_output(text, self.taxonomy).categories
                except GuardOutputError as exc:
                    error = f"GuardOutputError: {exc}"
            flags = {category_column(code): (code in categories) if categories is not None and error is None else None
                     for code in self.taxonomy.codes}
            records.append(self.Record(
                **self.lineage(row["id"]), **flags, model=engine.name, template=template, error=error,
                prompt=row[self.config.prompt_column], response=row.get(self.config.response_column)
                if self.config.role == "Agent" else None,
                role=self.config.role, taxonomy=self.taxonomy.name, p_unsafe=score, unsafe=unsafe,
                categories=categories if error is None else None, raw_output=text,
                keep=self._keep(unsafe, categories) if error is None else None,
            ))
        return records

    def failed_row(self, row: dict[str, Any], message: str) -> SafetyRow:
        prompt = row.get(self.config.prompt_column)
        return self.Record(**self.lineage(row["id"]), model=self.engines["model"].name,
                           prompt=prompt if isinstance(prompt, str) else None, role=self.config.role,
                           taxonomy=self.taxonomy.name, error=message)
