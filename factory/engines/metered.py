"""Accounting: every engine call's tokens and wall-clock span, summed per batch into the run summary.

A stage's model time is the union of its calls' spans, not their sum: calls in flight together (a
stage actor's concurrent batches, several stage actors on one engine actor) are counted once, so
model time never exceeds wall time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from factory.engines.base import Engine, Generation, Prompt, SamplingParams, Scores

USAGE_KEY = b"factory.usage"  # Arrow schema metadata key carrying a batch's usage to the driver


Span = tuple[float, float]  # wall-clock start and end (time.time()) of one engine call


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0  # every token the model read: prompts, and prompt+response when scoring
    completion_tokens: int = 0  # generated tokens only (scoring generates none)
    spans: list[Span] = field(default_factory=list)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.calls + other.calls, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.spans + other.spans)

    @property
    def seconds(self) -> float:
        return busy_seconds(self.spans)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Usage:
        values = json.loads(raw)
        return cls(**{**values, "spans": [tuple(span) for span in values.get("spans", [])]})


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """The same time as `spans`, as disjoint spans in order."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def busy_seconds(spans: Iterable[Span]) -> float:
    """Seconds in which at least one of `spans` was running."""
    return sum(end - start for start, end in merge_spans(spans))


def _call(usage: Usage, prompt_tokens: int, completion_tokens: int, start: float) -> Usage:
    return usage + Usage(1, prompt_tokens, completion_tokens, [(start, time.time())])


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
        start = time.time()
        generations = self.engine.generate(conversations, sampling)
        self.usage = _call(self.usage, sum(g.prompt_tokens for g in generations),
                           sum(c.completion_tokens for g in generations for c in g.completions), start)
        return generations

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        start = time.time()
        scores = self.engine.logprobs(conversations, responses)
        # Scoring is prefill: what the model read is input. An engine that does not say (a plain
        # list) is credited with the response tokens it scored, the least it read.
        read = scores.input_tokens if isinstance(scores, Scores) else sum(len(s) for s in scores)
        self.usage = _call(self.usage, read, 0, start)
        return scores

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        # Through our own logprobs (metered once), unless the engine has a cheaper way of its own.
        if type(self.engine).option_probs is Engine.option_probs:
            return super().option_probs(conversations, options)
        start = time.time()
        probs = self.engine.option_probs(conversations, options)
        self.usage = _call(self.usage, probs.input_tokens if isinstance(probs, Scores) else 0, 0, start)
        return probs
