"""The Llama Guard prompt for (conversation, role, taxonomy), in the official layout.

Layout as in Meta's reference renderers (llama-recipes `prompt_format_utils`, PurpleLlama): the task
line, the categories between <BEGIN/END UNSAFE CONTENT CATEGORIES>, the conversation between
<BEGIN/END CONVERSATION> as `User: ...` / `Agent: ...` turns, then the answer instructions. The
model-specific wrapper ([INST] ... [/INST] for Llama Guard 1/2, the Llama 3 header tokens for Llama
Guard 3) is exactly a single user turn of the model's chat template, so the stage passes this text
as one user message and lets the engine apply the template.
"""

from __future__ import annotations

from typing import Literal

from factory.engines import Conversation
from schemas.taxonomies import Taxonomy

Role = Literal["User", "Agent"]
SPEAKERS = {"user": "User", "assistant": "Agent"}

TASK = ("Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy "
        "with the below categories.")
INSTRUCTIONS = {
    "v1": ("Provide your safety assessment for {role} in the above conversation:\n"
           "- First line must read 'safe' or 'unsafe'.\n"
           "- If unsafe, a second line must include a comma-separated list of violated categories."),
    "v3": ("Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
           " - First line must read 'safe' or 'unsafe'.\n"
           " - If unsafe, a second line must include a comma-separated list of violated categories."),
}


def judged_turns(conversation: Conversation, role: Role) -> Conversation:
    """The conversation up to and including the last turn of `role` (system turns are not shown)."""
    turns = [m for m in conversation if m["role"] in SPEAKERS]
    wanted = "user" if role == "User" else "assistant"
    last = max((i for i, m in enumerate(turns) if m["role"] == wanted), default=None)
    if last is None:
        raise ValueError(f"the conversation has no {'user' if role == 'User' else 'assistant'} turn to classify as {role}")
    return turns[: last + 1]


def render_categories(taxonomy: Taxonomy, descriptions: bool | None = None) -> str:
    show = taxonomy.descriptions if descriptions is None else descriptions
    lines = []
    for category in taxonomy.categories:
        lines.append(f"{category.code}: {category.name.rstrip('. ')}.")
        if show and category.description:
            lines.append(category.description)
    return "\n".join(lines)


def render_guard_prompt(conversation: Conversation, role: Role, taxonomy: Taxonomy,
                        descriptions: bool | None = None) -> str:
    """The guard instruction text judging the last `role` turn ('User': prompt, 'Agent': response).

    `conversation` is a list of {"role": "user"|"assistant"|"system", "content"}; `descriptions`
    overrides whether category descriptions are listed (default: the taxonomy's own choice).
    """
    turns = judged_turns(conversation, role)
    dialogue = "\n\n".join(f"{SPEAKERS[m['role']]}: {m['content']}" for m in turns)
    return (
        f"{TASK.format(role=role)}\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{render_categories(taxonomy, descriptions)}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{dialogue}\n\n<END CONVERSATION>\n\n"
        f"{INSTRUCTIONS[taxonomy.style].format(role=role)}"
    )
