"""Data sets of Instruct-SkillMix (DESIGN.md §4): extracted mentions, skills, query types, instructions."""

from pydantic import Field

from schemas.common import BaseRow


class SkillMentionRow(BaseRow):
    """Data set `skillmix_mentions`: one model answer to one extraction prompt (stage `skillmix.extract`)."""

    kind: str = Field(description="'skills' or 'query_types': what the prompt asked for.")
    mode: str = Field(description="'direct' (asked outright) or 'dataset' (asked about one existing instruction).")
    topic: str | None = Field(default=None, description="Topic the direct prompt was narrowed to, if any.")
    source_text: str | None = Field(default=None, description="The instruction asked about (dataset mode).")
    names: list[str] = Field(default_factory=list, description="Names parsed from the answer (skills normalised to snake_case).")
    definitions: list[str | None] = Field(default_factory=list, description="Definition per name (None when none was given).")
    raw: str | None = Field(default=None, description="The model's answer as generated.")
    finish_reason: str | None = Field(default=None, description="'stop' or 'length' (cut off at max_new_tokens).")
    prompt_tokens: int = Field(default=0, description="Tokens in the formatted prompt.")
    completion_tokens: int = Field(default=0, description="Tokens generated.")


class SkillRow(BaseRow):
    """Data set `skills`: one deduplicated skill (stage `skillmix.skills`)."""

    name: str = Field(description="Normalised skill name (lower-case snake_case), the most frequent of its merged group.")
    definition: str | None = Field(default=None, description="Definition, when a source gave one.")
    frequency: int = Field(description="How many mentions were merged into this skill.")
    aliases: list[str] = Field(default_factory=list, description="Other names merged into this one (exact or near duplicates).")
    sources: list[str] = Field(default_factory=list, description="Where the mentions came from: direct, dataset, file, config.")


class QueryTypeRow(BaseRow):
    """Data set `query_types`: one deduplicated query type (stage `skillmix.query_types`)."""

    name: str = Field(description="Display name, e.g. 'Information-Seeking' (the most frequent spelling of its group).")
    definition: str | None = Field(default=None, description="What queries of this type ask for.")
    frequency: int = Field(description="How many mentions were merged into this type.")
    aliases: list[str] = Field(default_factory=list, description="Other names merged into this one.")
    sources: list[str] = Field(default_factory=list, description="Where the mentions came from: direct, dataset, file, config.")


class InstructionRow(BaseRow):
    """Data set `instructions`: one (instruction, response) example (stage `skillmix.generate`)."""

    instruction: str | None = Field(default=None, description="The final (refined) instruction; None on an error row.")
    response: str | None = Field(default=None, description="The final response (a shirker's lazy one when `shirker`).")
    skills: list[str] = Field(default_factory=list, description="The k skills the example was asked to need.")
    query_type: str | None = Field(default=None, description="The query type the example was asked to be.")
    query_definition: str | None = Field(default=None, description="That query type's definition as given to the model.")
    example_index: int = Field(description="Position of the example among `num_examples` (draws are made per index).")
    generator: str | None = Field(default=None, description="The teacher model that wrote the example.")
    shirker: bool = Field(default=False, description="True when the response was replaced by a deliberately poor one.")
    shirker_style: str | None = Field(default=None, description="'junk' or 'brevity' on shirker rows.")
    rewrites: int = Field(default=0, description="How many times the model was asked to rewrite a cut-off answer.")
    truncated: bool = Field(default=False, description="True when the kept response was still cut off at max_new_tokens.")
    turns: str | None = Field(default=None, description="Every message of the conversation(s) as JSON, for audit.")
    prompt_tokens: int = Field(default=0, description="Prompt tokens summed over every turn.")
    completion_tokens: int = Field(default=0, description="Completion tokens summed over every turn.")
