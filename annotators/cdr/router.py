"""The CDR domain router: a model labels each prompt SAFETY / REASONING / CHAT.

Mode 'options' reads the label from the option probabilities of the three words (it always gives
a label); mode 'generate' asks for the word and parses it, and unparsable text means CHAT.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from annotators.cdr.customise import DOMAINS, Domain
from factory.engines import Conversation, Engine, SamplingParams

ROUTER_PROMPT = """Classify the request below into exactly one domain.
SAFETY: the request may be harmful, dangerous, unethical or illegal, so a careful assistant would refuse or redirect.
REASONING: maths, coding, logic or another problem with a checkable answer.
CHAT: anything else (conversation, writing, advice, general knowledge).

Request: {prompt}

Answer with one word: SAFETY, REASONING or CHAT."""


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["options", "generate"] = Field(
        default="options", description="'options': argmax of P(label); 'generate': parse generated text (unparsable -> CHAT)."
    )
    instruction: str = Field(default=ROUTER_PROMPT, description="Router prompt; '{prompt}' is replaced by the query.")
    max_new_tokens: int = Field(default=8, ge=1, description="Generate mode: tokens to generate.")


LABEL = re.compile(r"\b(SAFETY|REASONING|CHAT)\b", re.IGNORECASE)


def parse_domain(text: str) -> Domain:
    """The first domain word in `text`, any case; CHAT when there is none."""
    match = LABEL.search(text or "")
    return match.group(1).upper() if match else "CHAT"  # type: ignore[return-value]


def route(engine: Engine, prompts: list[str], config: RouterConfig) -> list[Domain]:
    conversations: list[Conversation] = [
        [{"role": "user", "content": config.instruction.replace("{prompt}", prompt)}] for prompt in prompts
    ]
    if config.mode == "generate":
        sampling = SamplingParams(n=1, max_new_tokens=config.max_new_tokens, temperature=0.0)
        generations = engine.generate(conversations, sampling)
        return [parse_domain(g.completions[0].text if g.completions else "") for g in generations]
    probabilities = engine.option_probs(conversations, list(DOMAINS))
    return [DOMAINS[max(range(len(DOMAINS)), key=lambda i: p[i])] for p in probabilities]
