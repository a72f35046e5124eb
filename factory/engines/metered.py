"""Accounting: every engine call's tokens and wall seconds, summed per batch into the run summary."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from factory.engines.base import Engine, Generation, Prompt, SamplingParams, Scores

USAGE_KEY = b"factory.usage"  # Arrow schema metadata key carrying a batch's usage to the driver


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0  # every token the model read: prompts, and prompt+response when scoring
    completion_tokens: int = 0  # generated tokens only (scoring generates none)
    seconds: float = 0.0

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.calls - other.calls, self.prompt_tokens - other.prompt_tokens,
                     self.completion_tokens - other.completion_tokens, self.seconds - other.seconds)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.calls + other.calls, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.seconds + other.seconds)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Usage:
        return cls(**json.loads(raw))


class MeteredEngine(Engine):
    """Wraps an engine; counts what each call did. Other attributes pass through to the engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.name = engine.name
        # Per calling thread: a stage actor with several batches in flight (one thread each) counts
        # each batch's calls apart.
        self._local = threading.local()

    @property
    def usage(self) -> Usage:
        """What this thread's calls did so far."""
        return getattr(self._local, "usage", Usage())

    @usage.setter
    def usage(self, value: Usage) -> None:
        self._local.usage = value

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self.engine, attribute)

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        start = time.perf_counter()
        generations = self.engine.generate(conversations, sampling)
        self.usage += Usage(
            1, sum(g.prompt_tokens for g in generations),
            sum(c.completion_tokens for g in generations for c in g.completions), time.perf_counter() - start,
        )
        return generations

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        start = time.perf_counter()
        scores = self.engine.logprobs(conversations, responses)
        # Scoring is prefill: what the model read is input. An engine that does not say (a plain
        # list) is credited with the response tokens it scored, the least it read.
        read = scores.input_tokens if isinstance(scores, Scores) else sum(len(s) for s in scores)
        self.usage += Usage(1, read, 0, time.perf_counter() - start)
        return scores

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        # Through our own logprobs (metered once), unless the engine has a cheaper way of its own.
        if type(self.engine).option_probs is Engine.option_probs:
            return super().option_probs(conversations, options)
        start = time.perf_counter()
        probs = self.engine.option_probs(conversations, options)
        self.usage += Usage(1, probs.input_tokens if isinstance(probs, Scores) else 0, 0, time.perf_counter() - start)
        return probs
