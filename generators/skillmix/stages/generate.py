"""Stage `skillmix.generate`: k-skill examples by write -> continue -> critique -> refine -> rewrite
-> data set `instructions`.

Input: `{dataset: skills}` (what `skillmix.skills` wrote). `prepare_input` reads the query types
from the store and draws `num_examples` work items — k distinct skills each, query types cycled,
shirkers chosen — deterministically from `seed` (generators/skillmix/sampling.py). Each work item's
id hashes its draw and the prompt templates, so a re-run resumes and a changed prompt makes new rows.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from factory.engines import SamplingParams
from factory.errors import ConfigError, StoreError
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig
from factory.store import check_dataset_name
from generators.skillmix.conversation import TEMPLATE_NAMES, ConversationRunner, Dialogue
from generators.skillmix.parsing import Parsed, parse_example, strip_quotes
from generators.skillmix.sampling import QueryType, draw_examples
from generators.skillmix.templates import load_templates
from schemas.skillmix import InstructionRow


class SkillMixConfig(StageConfig):
    num_examples: int = Field(ge=1, description="How many examples to make (paper: 4000).")
    k: int = Field(default=2, ge=1, description="Distinct skills per example, drawn uniformly at random.")
    seed: int = Field(default=0, description="Seed of every draw (skills, query types, shirkers) and of sampling.")
    query_types_dataset: str = Field(default="query_types", description="Data set holding the query types (`name`, `definition`).")
    skill_column: str = Field(default="name", description="Input column holding the skill name.")
    balance_query_types: bool = Field(
        default=True, description="Cycle query types so each gets an equal share (±1); false draws each at random.",
    )
    shirker_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Ablation: exactly round(fraction * num_examples) examples get a deliberately poor response.",
    )
    shirker_style: Literal["junk", "brevity"] = Field(
        default="junk", description="'junk': lazy, generic, padded responses; 'brevity': one-paragraph responses.",
    )
    templates: str = Field(
        default="reference",
        description="Bundled template set ('reference': the released Instruct-SkillMix prompt, three complete "
        "examples with ### Task Type / ### Skills headers; 'v1': a shorter prompt with one brief example) or a "
        "folder of .txt templates with the same file names.",
    )
    turns: Literal["all", "when_cut_off"] = Field(
        default="all",
        description="'all': every example gets all five turns (write, continue, critique, refine, rewrite) and the "
        "response comes from the rewrite turn, as in the reference; 'when_cut_off': continue and rewrite are "
        "asked only after a reply that hit max_new_tokens (fewer calls, longer responses).",
    )
    max_new_tokens: int = Field(default=1024, ge=1, description="Longest reply per turn, in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, description="0 means greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")

    @field_validator("templates")
    @classmethod
    def _templates_load(cls, value: str) -> str:
        load_templates(value, TEMPLATE_NAMES)
        return value

    @field_validator("query_types_dataset")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        try:
            return check_dataset_name(value)
        except StoreError as exc:
            raise ValueError(str(exc)) from None


class SkillMixGenerateStage(Stage):
    Config = SkillMixConfig
    Record = InstructionRow
    default_output = "instructions"
    model_roles = ("model",)

    config: SkillMixConfig

    def __init__(self, context):
        super().__init__(context)
        self.templates = load_templates(self.config.templates, TEMPLATE_NAMES)
        sampling = SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                                  top_p=self.config.top_p)
        self.runner = ConversationRunner(self.engines["model"], self.templates, sampling, self.config.seed,
                                         always_rewrite=self.config.turns == "all")

    @classmethod
    def reads(cls, config: SkillMixConfig) -> list[str]:
        return ["id", config.skill_column]

    # ---- work items (driver) -------------------------------------------------------------------

    @classmethod
    def side_inputs(cls, config: SkillMixConfig) -> list[str]:
        return [config.query_types_dataset]

    @classmethod
    def query_types(cls, config: SkillMixConfig, side_inputs: SideInputs) -> list[QueryType]:
        dataset = config.query_types_dataset
        table = side_inputs.get(dataset)
        if table is None:
            raise ConfigError(f"config.query_types_dataset: data set {dataset!r} is not in the store; "
                              "run a `skillmix.query_types` stage before this one")
        if "name" not in table.column_names:
            raise ConfigError(f"config.query_types_dataset: data set {dataset!r} has no 'name' column")
        if "error" in table.column_names:
            table = table.filter(table.column("error").is_null())
        names = table.column("name").to_pylist()
        definitions = table.column("definition").to_pylist() if "definition" in table.column_names else [None] * len(names)
        types: dict[str, QueryType] = {}
        for name, definition in sorted(zip(names, definitions, strict=True), key=lambda pair: pair[0] or ""):
            if name and name not in types:  # re-runs with other configs may repeat a name
                types[name] = QueryType(name, definition)
        return list(types.values())

    @classmethod
    def prepare_input(cls, config: SkillMixConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        if "error" in rows.column_names:
            rows = rows.filter(rows.column("error").is_null())
        skills = sorted({name for name in rows.column(config.skill_column).to_pylist() if name})
        types = cls.query_types(config, side_inputs)
        try:
            draws = draw_examples(skills, types, config.num_examples, config.k, config.seed,
                                  config.balance_query_types, config.shirker_fraction)
        except ValueError as exc:
            raise ConfigError(f"config.k: {exc}") from None
        tag = load_templates(config.templates, TEMPLATE_NAMES).tag
        items = []
        for draw in draws:
            style = config.shirker_style if draw.shirker else None
            items.append({
                "id": stable_hash(config.seed, draw.index, list(draw.skills), draw.query_type.name, style, tag),
                "example_index": draw.index, "skills": list(draw.skills),
                "query_type": draw.query_type.name, "query_definition": draw.query_type.definition,
                "query_prompt": draw.query_type.prompt_text, "shirker": draw.shirker, "shirker_style": style,
            })
        return pa.Table.from_pylist(items, schema=pa.schema([
            ("id", pa.string()), ("example_index", pa.int64()), ("skills", pa.list_(pa.string())),
            ("query_type", pa.string()), ("query_definition", pa.string()), ("query_prompt", pa.string()),
            ("shirker", pa.bool_()), ("shirker_style", pa.string()),
        ]))

    # ---- the conversation (actors) -------------------------------------------------------------

    def process(self, rows: list[dict[str, Any]]) -> list[InstructionRow]:
        key = rows[0]["id"]
        dialogues = [Dialogue(item=row) for row in rows]
        self.runner.run(dialogues, key)
        parsed = [parse_example(d.turns) for d in dialogues]
        shirkers = [i for i, (row, p) in enumerate(zip(rows, parsed, strict=True)) if row["shirker"] and not p.error]
        if shirkers:
            replies = self.runner.shirk([dialogues[i] for i in shirkers], [parsed[i].instruction for i in shirkers],
                                        self.config.shirker_style, key)
            for i, reply in zip(shirkers, replies, strict=True):
                parsed[i] = Parsed(parsed[i].instruction, strip_quotes(reply.text) or None, reply)
        return [self._record(dialogue, result) for dialogue, result in zip(dialogues, parsed, strict=True)]

    def _record(self, dialogue: Dialogue, parsed: Parsed) -> InstructionRow:
        error = parsed.error
        return InstructionRow(
            **self._common(dialogue.item),
            sampling=self.runner.sampling.model_dump_json(),
            instruction=parsed.instruction if not error else None,
            response=parsed.response if not error else None,
            rewrites=sum(turn.label in ("continue", "rewrite") for turn in dialogue.turns),
            truncated=bool(parsed.response_turn and parsed.response_turn.finish_reason == "length"),
            turns=json.dumps(dialogue.log, ensure_ascii=False),
            prompt_tokens=dialogue.prompt_tokens,
            completion_tokens=dialogue.completion_tokens,
            error=error,
        )

    def _common(self, item: dict[str, Any]) -> dict[str, Any]:
        name = self.engines["model"].name
        return {
            **self.lineage(item["id"]), "model": name, "generator": name, "template": self.templates.tag,
            "skills": list(item.get("skills") or []), "query_type": item.get("query_type"),
            "query_definition": item.get("query_definition"), "example_index": int(item.get("example_index") or 0),
            "shirker": bool(item.get("shirker")), "shirker_style": item.get("shirker_style"),
        }

    def failed_row(self, row: dict[str, Any], message: str) -> InstructionRow:
        return InstructionRow(**self._common(row), error=message)
