"""Reviewer and reviser prompts of the feedback loop, and the reviewer's verdict parser."""

from __future__ import annotations

import re

from factory.engines import Conversation

REVIEWER_SYSTEM = ("You are a demanding reviewer. You check answers for errors, missing points and unclear "
                   "wording, and you say exactly how to improve them.")

REVIEW_TASK = (
    "Review the answer to the question below. In a few sentences, name its concrete problems and how to fix "
    "them. Finish with a last line 'Verdict: APPROVE' if the answer needs no change, else 'Verdict: REVISE'."
)

REVISE_TASK = ("A reviewer gave this feedback on your answer:\n\n{review}\n\n"
               "Write an improved answer to the original question. Reply with the improved answer only.")

VERDICT = re.compile(r"verdict\s*[:=]?\s*\**\s*(approved?|accept(?:ed)?|revise|reject(?:ed)?)", re.IGNORECASE)


def parse_approval(review: str) -> bool | None:
    """True for 'Verdict: APPROVE', False for 'Verdict: REVISE'; the last verdict wins; None if there is none."""
    matches = VERDICT.findall(review or "")
    if not matches:
        return None
    return matches[-1].lower().startswith(("approve", "accept"))


def review_conversation(system: str | None, prompt: str, answer: str, task: str = REVIEW_TASK) -> Conversation:
    head = [{"role": "system", "content": system}] if system else []
    text = f"{task}\n\n[Question]\n{prompt}\n[End of question]\n\n[Answer]\n{answer}\n[End of answer]"
    return head + [{"role": "user", "content": text}]


def revise_conversation(system: str | None, prompt: str, answer: str, review: str, task: str = REVISE_TASK) -> Conversation:
    """The generator sees its own previous answer as its turn, then the review as the user's next message."""
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer},
                   {"role": "user", "content": task.format(review=review)}]
