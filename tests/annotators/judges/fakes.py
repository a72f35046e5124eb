"""Scripted judge engines: their preferences are planted, so the tests know the right answer."""

from __future__ import annotations

import re

from factory.engines import Completion, Conversation, Generation, SamplingParams
from tests.helpers import FakeEngine

SINGLE = re.compile(r"\[Response\]\n(.*?)\n\[End of response\]", re.DOTALL)
BLOCK = re.compile(r"\[Response (\w)\]\n(.*?)\n\[End of response \w\]", re.DOTALL)


def shown(conversation: Conversation) -> dict[str, str]:
    """Response label -> text as presented in the judge prompt."""
    return dict(BLOCK.findall(conversation[-1]["content"]))


class ScriptedJudge(FakeEngine):
    """'position': always prefers whatever is shown first; 'longer': prefers the longer response,
    in either order; generated verdicts follow the same rule, or are junk when `junk` is set."""

    def __init__(self, rule: str = "longer", junk: bool = False, name: str = "scripted"):
        super().__init__(name=name)
        self.rule, self.junk = rule, junk

    def _first_wins(self, conversation: Conversation) -> bool:
        texts = shown(conversation)
        return True if self.rule == "position" else len(texts["A"]) >= len(texts["B"])

    def option_probs(self, conversations: list[Conversation], options: list[str]) -> list[list[float]]:
        out = []
        for conversation in conversations:
            if options == ["A", "B"]:
                out.append([0.9, 0.1] if self._first_wins(conversation) else [0.2, 0.8])
            else:  # Likert: longer responses score higher, capped at 5
                match = SINGLE.search(conversation[-1]["content"])
                length = len(match.group(1)) if match else 0
                out.append([1.0 if i + 1 == min(5, 1 + length // 20) else 0.01 for i in range(len(options))])
        return out

    def generate(self, conversations: list[Conversation], sampling: SamplingParams) -> list[Generation]:
        out = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            if self.junk:
                reply = "I cannot decide, both are lovely."
            elif "Rank the" in text:
                texts = shown(conversation)
                order = sorted(texts, key=lambda k: -len(texts[k]))
                reply = " > ".join(order)
            elif "Verdict" in text:
                reply = f"Reasons.\nVerdict: {'A' if self._first_wins(conversation) else 'B'}"
            else:
                reply = "Response A is clearer, I think."
            out.append(Generation(prompt_tokens=len(text.split()), completions=[Completion(reply, "stop", 5)]))
        return out
