"""A scripted teacher for the SkillMix conversation: replies by which template the last user turn is."""

from __future__ import annotations

from collections.abc import Callable

from factory.engines import Completion, Conversation, Engine, Generation, SamplingParams

Reply = Callable[[Conversation], tuple[str, str]]  # -> (text, finish_reason)


def skills_asked(first: str) -> str:
    """The skills the write prompt names: ours ("needs all of these 2 skills: a, b.") or the released
    prompt's last line ("### Skills: a, b")."""
    if "needs all of these " in first:
        return first.split("needs all of these ", 1)[-1].split(": ", 1)[-1].split(".\n", 1)[0]
    if "### Skills: " in first:
        return first.rsplit("### Skills: ", 1)[-1].strip()
    return ""


def well_behaved(conversation: Conversation) -> tuple[str, str]:
    prompt = conversation[-1]["content"]
    skills = skills_asked(conversation[0]["content"])
    if prompt.startswith("I am creating"):
        return f"### Instruction: A question needing {skills}?\n### Response: A first answer.", "stop"
    if prompt.startswith("Thanks! It looks like"):  # continue: the whole example again, within the length
        return f"### Instruction: A question needing {skills}?\n### Response: A first answer, in full.", "stop"
    if prompt.startswith("Pretend you are"):
        return "Strengths: clear. Weaknesses: generic.", "stop"
    if prompt.startswith("Now, please refine"):
        return f"### Refined Instruction: A sharper question needing {skills}?\n### Response: A detailed answer.", "stop"
    if prompt.startswith("It looks like the improved"):  # rewrite: only the response, shorter
        return "A detailed answer that fits.", "stop"
    if "Consider the following instruction" in prompt and "unhelpful" in prompt:
        return '"Well, it depends, basically, on many things, you know."', "stop"
    if "Consider the following instruction" in prompt:
        return "One short paragraph.", "stop"
    if prompt.startswith("I am building") and "skills" in prompt:
        return "Here are some skills:\n1. Data Analysis\n2. creative-writing\n3. **Public Speaking**", "stop"
    if prompt.startswith("I am building"):
        return "Information-Seeking: wants facts\nHelp-Seeking: wants help", "stop"
    if prompt.startswith("Here is a request"):
        return "- cooking\n- time_management", "stop"
    return "I do not know.", "stop"


class ScriptedEngine(Engine):
    def __init__(self, reply: Reply = well_behaved, name: str = "scripted"):
        self.name = name
        self.reply = reply
        self.calls: list[int] = []
        self.conversations: list[Conversation] = []

    def generate(self, conversations: list[Conversation], sampling: SamplingParams) -> list[Generation]:
        self.calls.append(len(conversations))
        out = []
        for conversation in conversations:
            self.conversations.append([dict(m) for m in conversation])
            text, finish = self.reply(conversation)
            out.append(Generation(prompt_tokens=10, completions=[Completion(text, finish, 5)]))
        return out

    def logprobs(self, conversations, responses):
        return [[-0.5] * len(r.split()) for r in responses]
