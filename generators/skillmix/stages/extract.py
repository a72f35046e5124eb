"""Stage `skillmix.extract`: ask a model for skills or query types -> data set `skillmix_mentions`.

Two modes (DESIGN.md §4, Instruct-SkillMix stage 1):
- `direct`: each input row (`input: {count: N}` for N independent asks) is one prompt for a list,
  optionally narrowed to each of `topics` (or to the row's `topic_column`);
- `dataset`: each input row is an existing instruction (`text_column`); the model names the skills
  (or the query type) it needs.
Each answer is one row with the parsed names; merging and counting them is the job of the
`skillmix.skills` / `skillmix.query_types` stages, which see every answer at once.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from factory.engines import SamplingParams
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig, StreamUnit
from generators.skillmix.parsing import query_type_items, skill_items
from generators.skillmix.templates import TemplateSet, load_templates
from schemas.skillmix import SkillMentionRow

Kind = Literal["skills", "query_types"]


class ExtractConfig(StageConfig):
    kind: Kind = Field(description="What to ask for: 'skills' or 'query_types' (types come with definitions).")
    mode: Literal["direct", "dataset"] = Field(
        default="direct", description="'direct': ask for a list outright; 'dataset': ask about each input instruction."
    )
    count: int = Field(default=20, ge=1, description="Direct: how many items to ask for per prompt; dataset: the most per instruction.")
    topics: list[str] = Field(default_factory=list, description="Direct mode: one prompt per topic per input row ('... for <topic>').")
    topic_column: str | None = Field(default=None, description="Direct mode: input column holding each row's topic.")
    text_column: str = Field(default="prompt", description="Dataset mode: input column holding the instruction.")
    templates: str = Field(default="v1", description="Bundled template set name or a folder of .txt templates.")
    max_new_tokens: int = Field(default=512, ge=1, description="Longest answer, in tokens.")
    temperature: float = Field(default=0.7, ge=0.0, description="0 means greedy (then repeated asks give the same list).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(default=0, description="Sampling seed, mixed with each batch's first row id.")

    @field_validator("templates")
    @classmethod
    def _templates_load(cls, value: str) -> str:
        for kind in ("skills", "query_types"):
            load_templates(value, [template_name(kind, "direct"), template_name(kind, "dataset")])
        return value


def template_name(kind: str, mode: str) -> str:
    return f"extract_{kind}_{mode}"


class ExtractStage(Stage):
    Config = ExtractConfig
    Record = SkillMentionRow
    default_output = "skillmix_mentions"
    model_roles = ("model",)

    config: ExtractConfig

    def __init__(self, context):
        super().__init__(context)
        name = template_name(self.config.kind, self.config.mode)
        self.template_name = name
        self.templates: TemplateSet = load_templates(self.config.templates, [name])

    @classmethod
    def reads(cls, config: ExtractConfig) -> list[str]:
        if config.mode == "dataset":
            return ["id", config.text_column]
        return ["id"] + ([config.topic_column] if config.topic_column else [])

    @classmethod
    def stream_unit(cls, config: ExtractConfig) -> StreamUnit:
        return "row"  # each input row expands to its own items

    @classmethod
    def prepare_input(cls, config: ExtractConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        """Direct mode with `topics`: one work item per (input row, topic), with its own id."""
        if config.mode != "direct" or not config.topics:
            return rows
        items = [
            {"id": stable_hash(row["id"], topic), "topic": topic}
            for row in rows.select(["id"]).to_pylist() for topic in config.topics
        ]
        return pa.Table.from_pylist(items)

    def _topic(self, row: dict[str, Any]) -> str | None:
        if self.config.mode != "direct":
            return None
        topic = row.get(self.config.topic_column) if self.config.topic_column else row.get("topic")
        if topic is None:
            return None
        return str(topic).strip() or None

    def _prompt(self, row: dict[str, Any]) -> str:
        if self.config.mode == "dataset":
            text = row.get(self.config.text_column)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"column {self.config.text_column!r} is empty or not text")
            return self.templates.render(self.template_name, text=text.strip(), count=self.config.count)
        topic = self._topic(row)
        clause = f" about {topic}" if topic else ""
        return self.templates.render(self.template_name, count=self.config.count, topic_clause=clause)

    def _sampling(self, rows: list[dict[str, Any]]) -> SamplingParams:
        seed = self.config.seed
        if seed is not None:
            seed = int(stable_hash(seed, rows[0]["id"], length=8), 16)
        return SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                              top_p=self.config.top_p, seed=seed)

    def process(self, rows: list[dict[str, Any]]) -> list[SkillMentionRow]:
        engine = self.engines["model"]
        sampling = self._sampling(rows)
        prompts = [self._prompt(row) for row in rows]
        generations = engine.generate([[{"role": "user", "content": p}] for p in prompts], sampling)
        parse = skill_items if self.config.kind == "skills" else query_type_items
        records = []
        for row, generation in zip(rows, generations, strict=True):
            completion = generation.completions[0]
            items = parse(completion.text)
            if self.config.mode == "dataset":
                items = items[: self.config.count]
            records.append(SkillMentionRow(
                **self._common(row),
                sampling=sampling.model_dump_json(),
                names=[name for name, _ in items],
                definitions=[definition for _, definition in items],
                raw=completion.text,
                finish_reason=completion.finish_reason,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                error=None if items else "no list items could be parsed from the model's answer",
            ))
        return records

    def _common(self, row: dict[str, Any]) -> dict[str, Any]:
        source = row.get(self.config.text_column) if self.config.mode == "dataset" else None
        return {
            **self.lineage(row["id"]),
            "model": self.engines["model"].name,
            "template": self.templates.tag,
            "kind": self.config.kind,
            "mode": self.config.mode,
            "topic": self._topic(row),
            "source_text": source if isinstance(source, str) else None,
        }

    def failed_row(self, row: dict[str, Any], message: str) -> SkillMentionRow:
        return SkillMentionRow(**self._common(row), error=message)
