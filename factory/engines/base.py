"""The engine interface: three calls cover every method in the factory (DESIGN.md §3)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Conversation = list[Message]
# What the engine calls take per item: a conversation, formatted by the model's chat template, or a
# str that is already formatted: no template is applied, and the tokenizer adds only what it adds to
# any text (its BOS), so every backend sees the same tokens. Guard models need this: their official
# prompt wrapper is not what their chat template makes of a user message (annotators/guard).
Prompt = Conversation | str


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=1, ge=1, description="Samples per conversation.")
    max_new_tokens: int = Field(default=256, ge=1, description="Generation stops after this many tokens.")
    temperature: float = Field(default=0.7, ge=0.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(default=None, description="Seed for sampling; same seed and batch give the same text.")


@dataclass
class Completion:
    text: str
    finish_reason: Literal["stop", "length"]
    completion_tokens: int


@dataclass
class Generation:
    """The n completions of one conversation."""

    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)
    error: str | None = None  # set when this conversation failed for good (e.g. a server's final 5xx)


class Scores(list):  # list[list[float]]: what `logprobs` returns, plus what it cost
    """Per-token log-probabilities of each response, and `input_tokens`: every token the model read
    to score them (prompt + response; a scoring call prefills, it generates nothing). A plain list
    subclass, so callers index it as before and it pickles with its count through Ray."""

    def __init__(self, values: list[list[float]] = (), input_tokens: int = 0):  # type: ignore[assignment]
        super().__init__(values)
        self.input_tokens = input_tokens


class Engine(ABC):
    """A loaded model. Built once per actor; every call takes a whole batch."""

    name: str

    @abstractmethod
    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        """n sampled completions for each conversation (or pre-formatted prompt text)."""

    @abstractmethod
    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        """Teacher-forced log-probability of each token of each response, given its conversation."""

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        """Probability of each option string as the assistant's next text, for each conversation.

        Exact for multi-token options: the product of the option's token probabilities. Not
        renormalised over the options; callers that want a distribution divide by the sum.
        """
        pairs = [(conversation, option) for conversation in conversations for option in options]
        scores = self.logprobs([c for c, _ in pairs], [o for _, o in pairs])
        flat = [math.exp(sum(tokens)) for tokens in scores]
        width = len(options)
        return Scores([flat[i * width : (i + 1) * width] for i in range(len(conversations))],
                      input_tokens=getattr(scores, "input_tokens", 0))
