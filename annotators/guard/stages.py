"""Stage `llama_guard`: safety labels for prompts (last User turn) or responses (last Agent turn).

P(unsafe) is read from the option probabilities of 'safe' / 'unsafe' where the guard writes its
verdict (after the "\n\n" Llama Guard 3 writes first), normalised over the two, and thresholded
into a label; in generative mode the guard also writes its verdict, whose second line gives the
violated categories (one boolean column each). A filter policy sets `keep`, which exports select
on (docs/annotators.md).

Prompt formats: `render` tokenizes the official guard prompt in the official wrapper itself (no
chat template); `model_template` hands the raw conversation to a guard model's own template (its
built-in categories); `chat` sends the rendered guard prompt as a user message through the
model's chat template (for instruct models used as zero-shot guards); `auto` picks one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from annotators.guard.parse import GuardOutputError, parse_guard_output
from annotators.guard.render import Role, Wrapper, judged_turns, render_guard_prompt, verdict_prefix, wrap_guard_prompt
from annotators.guard.template import (
    chat_template, engine_tokenizer, is_guard_template, taxonomy_difference, template_categories,
)
from factory.engines import Conversation, Prompt, SamplingParams
from factory.errors import ConfigError
from factory.stage import Stage, StageConfig, StageContext
from schemas.safety import SafetyRow, category_column, safety_record_type
from schemas.taxonomies import CustomTaxonomy, Taxonomy, resolve_taxonomy

PromptFormat = Literal["render", "chat", "model_template"]
VERDICTS = ("safe", "unsafe")


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
    prompt_format: Literal["auto", "render", "chat", "model_template"] = Field(
        default="auto",
        description="'render': our guard prompt (this taxonomy) in the official wrapper, tokenized as is, "
        "bypassing the model's chat template (Llama Guard checkpoints with a custom taxonomy); "
        "'model_template': the raw conversation, for guard models whose chat template renders the guard prompt "
        "itself with its built-in categories (the taxonomy must be those); 'chat': our guard prompt as one user "
        "message inside the model's chat template (instruct models as zero-shot guards); 'auto': model_template "
        "for a guard template (refused when the taxonomy differs from its categories), chat for another chat "
        "template or when the tokenizer is not visible (openai backend without `tokenizer`), render without one.",
    )
    wrapper: Literal["auto", "inst", "llama3"] = Field(
        default="auto",
        description="render: 'inst' ([INST] ... [/INST], Llama Guard 1/2), 'llama3' (Llama 3 header layout, "
        "Llama Guard 3), 'auto': llama3 when the tokenizer knows <|start_header_id|>, else inst.",
    )
    verdict_prefix: str | None = Field(
        default=None,
        description="Text the guard writes before 'safe'/'unsafe'; the verdict is scored after it. None: "
        "'\\n\\n' when the formatted prompt ends at a bare Llama 3 assistant header (Llama Guard 3), else ''.",
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
        engine = self.engines["model"]
        self.tokenizer = engine_tokenizer(engine)
        self.mode = self._prompt_format(chat_template(self.tokenizer), engine.name)
        self.wrapper: Wrapper | None = self._wrapper() if self.mode == "render" else None

    def _prompt_format(self, template: str, model: str) -> PromptFormat:
        """The prompt format to use; refuses a guard template that would judge by other categories."""
        requested = self.config.prompt_format
        if requested == "auto":
            if self.tokenizer is None:
                return "chat"  # the server formats; we cannot see its template
            if not template:
                return "render"
            if not is_guard_template(template):
                return "chat"
        if requested in ("auto", "model_template") and is_guard_template(template):
            built_in = template_categories(template)
            where = f"stage {self.context.name!r}: config.taxonomy"
            if built_in is None:
                raise ConfigError(f"{where}: cannot read the categories built into {model}'s chat template, so "
                                  f"cannot check they are taxonomy {self.taxonomy.name!r}; set prompt_format: render "
                                  "to send this taxonomy yourself, or prompt_format: chat")
            difference = taxonomy_difference(self.taxonomy, built_in)
            if difference:
                raise ConfigError(
                    f"{where}: taxonomy {self.taxonomy.name!r} differs from the categories built into {model}'s chat "
                    f"template ({difference}); the template would judge by its own categories. Set prompt_format: "
                    "render to send this taxonomy in the official guard wrapper, or use the built-in taxonomy")
            return "model_template"
        return "model_template" if requested == "auto" else requested

    def _wrapper(self) -> Wrapper:
        if self.config.wrapper != "auto":
            return self.config.wrapper
        if self.tokenizer is None:
            raise ConfigError(f"stage {self.context.name!r}: config.wrapper: the model's tokenizer is not visible "
                              "(openai backend without `tokenizer`), so the guard wrapper cannot be told; set wrapper: "
                              "inst (Llama Guard 1/2) or llama3 (Llama Guard 3)")
        return "llama3" if "<|start_header_id|>" in self.tokenizer.get_vocab() else "inst"

    @classmethod
    def reads(cls, config: LlamaGuardConfig) -> list[str]:
        return ["id", config.prompt_column] + ([config.response_column] if config.role == "Agent" else [])

    def _turns(self, row: dict[str, Any]) -> Conversation:
        prompt = row[self.config.prompt_column]
        if not isinstance(prompt, str):
            raise ValueError(f"column {self.config.prompt_column!r} is empty")
        turns = [{"role": "user", "content": prompt}]
        if self.config.role == "Agent":
            response = row[self.config.response_column]
            if not isinstance(response, str):
                raise ValueError(f"column {self.config.response_column!r} is empty")
            turns.append({"role": "assistant", "content": response})
        return turns

    def prompt(self, row: dict[str, Any]) -> Prompt:
        """What the engine gets for a row: formatted text (render) or a conversation (its template applies)."""
        turns = self._turns(row)
        if self.mode == "model_template":
            return judged_turns(turns, self.config.role)
        text = render_guard_prompt(turns, self.config.role, self.taxonomy, self.config.descriptions)
        if self.mode == "render":
            assert self.wrapper is not None
            return wrap_guard_prompt(text, self.wrapper)
        return [{"role": "user", "content": text}]

    def formatted(self, prompt: Prompt) -> str | None:
        """The prompt text the model sees (None when only the server knows it)."""
        if isinstance(prompt, str):
            return prompt
        if chat_template(self.tokenizer):
            return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return None

    def options(self, prompt: Prompt) -> tuple[str, str]:
        """The two scored texts: the verdict words after what the guard writes before them."""
        prefix = self.config.verdict_prefix
        if prefix is None:
            text = self.formatted(prompt)
            prefix = verdict_prefix(text) if text is not None else ""
        return prefix + VERDICTS[0], prefix + VERDICTS[1]

    def _probabilities(self, prompts: list[Prompt]) -> list[list[float]]:
        """P(safe), P(unsafe) per prompt; one engine call per distinct verdict prefix (usually one)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(self.options(prompt), []).append(index)
        results: list[list[float]] = [[] for _ in prompts]
        for options, members in groups.items():
            scores = self.engines["model"].option_probs([prompts[i] for i in members], list(options))
            for index, score in zip(members, scores, strict=True):
                results[index] = score
        return results

    def _keep(self, unsafe: bool, categories: list[str] | None) -> bool:
        policy = self.config.policy
        if not (policy.drop_unsafe and unsafe):
            return True
        if policy.categories is None or categories is None:
            return False
        return not set(categories) & set(policy.categories)

    def process(self, rows: list[dict[str, Any]]) -> list[SafetyRow]:
        engine = self.engines["model"]
        conversations = [self.prompt(row) for row in rows]
        probabilities = self._probabilities(conversations)
        texts: list[str | None] = [None] * len(rows)
        if self.config.generate:
            sampling = SamplingParams(n=1, max_new_tokens=self.config.max_new_tokens, temperature=0.0)
            texts = [g.completions[0].text if g.completions else "" for g in engine.generate(conversations, sampling)]
        template = {"model_template": "guard/model-template", "chat": f"guard/chat-{self.taxonomy.style}",
                    "render": f"guard/render-{self.wrapper}-{self.taxonomy.style}"}[self.mode]
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
