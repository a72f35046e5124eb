"""The Instruct-SkillMix conversation, run for a whole batch at once: one `engine.generate` call per
turn, over every conversation that takes that turn (DESIGN.md §4).

    write -> continue -> critique -> refine -> rewrite
    shirkers: one more single-turn conversation that writes the lazy/brief replacement response

As the reference (princeton-pli/Instruct-SkillMix `1_generate_data.py`) all five turns are sent to every
example: "continue" and "rewrite" ask for the answer again "making sure it fits within the length
constraint", which shortens it even when nothing was cut off, and the final response is the
rewrite's. `always_rewrite=False` asks them only after a reply that hit max_new_tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory.engines import Engine, SamplingParams
from factory.ids import stable_hash
from generators.skillmix.parsing import Turn
from generators.skillmix.templates import TemplateSet

TEMPLATE_NAMES = ["write", "continue", "critique", "refine", "rewrite", "shirker_junk", "shirker_brevity"]


@dataclass
class Dialogue:
    """One example's conversation: messages as sent, assistant turns with their finish reasons."""

    item: dict[str, Any]
    messages: list[dict[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # every message, both conversations, for audit
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def last(self) -> Turn:
        return self.turns[-1]


class ConversationRunner:
    def __init__(self, engine: Engine, templates: TemplateSet, sampling: SamplingParams, seed: int | None,
                 always_rewrite: bool = True):
        self.engine = engine
        self.templates = templates
        self.sampling = sampling
        self.seed = seed
        self.always_rewrite = always_rewrite

    def _sampling(self, batch_key: str, label: str) -> SamplingParams:
        # Same batch and turn -> same seed, so a re-run of a batch reproduces its text.
        seed = None if self.seed is None else int(stable_hash(self.seed, batch_key, label, length=8), 16)
        return self.sampling.model_copy(update={"seed": seed})

    def ask(self, dialogues: list[Dialogue], label: str, prompt: Callable[[Dialogue], str], batch_key: str) -> None:
        """Append a user turn to each dialogue, then generate every reply in one engine call."""
        if not dialogues:
            return
        for dialogue in dialogues:
            message = {"role": "user", "content": prompt(dialogue)}
            dialogue.messages.append(message)
            dialogue.log.append({**message, "label": label})
        generations = self.engine.generate([d.messages for d in dialogues], self._sampling(batch_key, label))
        for dialogue, generation in zip(dialogues, generations, strict=True):
            completion = generation.completions[0]
            dialogue.messages.append({"role": "assistant", "content": completion.text})
            dialogue.turns.append(Turn(label, completion.text, completion.finish_reason))
            dialogue.log.append({"role": "assistant", "content": completion.text, "label": label,
                                 "finish_reason": completion.finish_reason})
            dialogue.prompt_tokens += generation.prompt_tokens
            dialogue.completion_tokens += completion.completion_tokens

    def _rewriting(self, dialogues: list[Dialogue]) -> list[Dialogue]:
        """Who gets a continue / rewrite turn now: everyone, or only those whose last reply was cut off."""
        return dialogues if self.always_rewrite else [d for d in dialogues if d.last.finish_reason == "length"]

    def run(self, dialogues: list[Dialogue], batch_key: str) -> None:
        """The generation conversation for every dialogue (each item has `skills`, `query_type`)."""
        render = self.templates.render
        # Both spellings of the fields: ours ({skills}, {query_type}) and the reference prompt's
        # ({skills_str}; {query_str} the type's name, {query_type} "name: definition").
        self.ask(dialogues, "write", lambda d: render(
            "write", num_skills=len(d.item["skills"]), skills=", ".join(d.item["skills"]),
            skills_str=", ".join(d.item["skills"]), query_type=d.item["query_prompt"],
            query_str=d.item["query_type"]), batch_key)
        self.ask(self._rewriting(dialogues), "continue", lambda d: render("continue"), batch_key)
        self.ask(dialogues, "critique", lambda d: render("critique"), batch_key)
        self.ask(dialogues, "refine", lambda d: render("refine"), batch_key)
        self.ask(self._rewriting(dialogues), "rewrite", lambda d: render("rewrite"), batch_key)

    def shirk(self, dialogues: list[Dialogue], instructions: list[str], style: str, batch_key: str) -> list[Turn]:
        """A deliberately poor response per instruction, each in a fresh one-turn conversation."""
        fresh = [Dialogue(item={**d.item, "instruction": text}) for d, text in zip(dialogues, instructions, strict=True)]
        self.ask(fresh, "shirker", lambda d: self.templates.render(f"shirker_{style}", instruction=d.item["instruction"]),
                 batch_key)
        for dialogue, extra in zip(dialogues, fresh, strict=True):
            dialogue.log.extend(extra.log)
            dialogue.prompt_tokens += extra.prompt_tokens
            dialogue.completion_tokens += extra.completion_tokens
        return [extra.last for extra in fresh]
