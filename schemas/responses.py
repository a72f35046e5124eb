"""Data set `responses`: sampled responses to prompts (stage `generate`)."""

from pydantic import Field

from schemas.common import BaseRow


class ResponseRow(BaseRow):
    prompt: str = Field(description="The user prompt as given to the model.")
    system_prompt: str | None = Field(default=None, description="System message put before the prompt, if any.")
    response: str | None = Field(default=None, description="The model's reply; None on an error row.")
    sample_index: int = Field(description="Which of the n samples for this prompt (0-based).")
    finish_reason: str | None = Field(default=None, description="'stop' (EOS) or 'length' (max_new_tokens hit).")
    prompt_tokens: int = Field(default=0, description="Tokens in the formatted prompt.")
    completion_tokens: int = Field(default=0, description="Tokens generated.")
