"""Seed prompts loaded from a JSONL or Parquet file into a data set."""

from pydantic import BaseModel, ConfigDict, Field


class SeedPrompt(BaseModel):
    """One line of a seed file. Extra fields are kept as columns."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, description="Row id; a hash of the row's content when absent.")
    prompt: str = Field(min_length=1, description="The user prompt.")
    system_prompt: str | None = Field(default=None, description="Optional system message.")
