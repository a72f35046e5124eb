"""What text a `logprobs` call scores, the same on every backend.

A response is scored as the continuation of the formatted prompt: the text `prompt + joiner +
response` is tokenised in one go (as a server tokenises an echoed completion, and as the CDR reference
code does), and the scored tokens are those that overlap the response's characters (joiner
included): a token straddling the seam belongs to the response. The joiner is "" after a chat
template (its generation prompt ends where the answer starts) and " " after the plain
`...Assistant:` layout, since generation strips the space a base model writes after the colon.
Every backend uses these rules, so transformers, vLLM and an OpenAI-compatible server score the same
tokens of the same text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from factory.engines.base import Conversation, Prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PLAIN_JOINER = " "


class PromptTooLongError(ValueError):
    """The prompt (plus the tokens to generate, or the response being scored) does not fit the model's context."""


def plain_prompt(conversation: Conversation) -> str:
    """Prompt text for a model without a chat template (a base model)."""
    turns = [f"{message['role'].capitalize()}: {message['content']}" for message in conversation]
    return "\n\n".join(turns) + "\n\nAssistant:"


def format_prompt(tokenizer: "PreTrainedTokenizerBase | None", conversation: Conversation) -> tuple[str, str, bool]:
    """(prompt text, joiner, templated): the chat template when the tokenizer has one, else the plain layout."""
    if tokenizer is not None and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return str(text), "", True
    return plain_prompt(conversation), PLAIN_JOINER, False


def prompt_token_ids(tokenizer: "PreTrainedTokenizerBase", conversation: Prompt) -> list[int]:
    """Token ids of a conversation formatted for the assistant's next turn (a str: already formatted)."""
    if isinstance(conversation, str):
        return list(tokenizer(conversation).input_ids)
    if tokenizer.chat_template:
        encoded = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here; older releases a plain list.
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
    return list(tokenizer(plain_prompt(conversation)).input_ids)


def check_scoring_fits(pairs: list[tuple[list[int], list[int]]], limit: int, limit_name: str) -> None:
    """Refuse a logprobs call whose (prompt, response) token pair is longer than the model's context
    (`limit_name`, e.g. "the context of" or "max_model_len", says which limit in the backend's words)."""
    for prompt, answer in pairs:
        if len(prompt) + len(answer) > limit:
            tokens = len(prompt) + len(answer)
            raise PromptTooLongError(f"prompt + response of {tokens} tokens exceed {limit_name} {limit}")


def split_for_scoring(tokenizer: "PreTrainedTokenizerBase", conversation: Prompt,
                      response: str) -> tuple[list[int], list[int]]:
    """(prompt token ids, response token ids) of `prompt + joiner + response` tokenised as one text.

    A chat template's text carries its own special tokens (so no BOS is added); the plain layout and a
    pre-formatted prompt (a str, joined with nothing) get the tokenizer's usual special tokens, as
    generation does.
    """
    if isinstance(conversation, str):
        return split_text(tokenizer, conversation, "", response, add_special_tokens=True)
    prompt, joiner, templated = format_prompt(tokenizer, conversation)
    return split_text(tokenizer, prompt, joiner, response, add_special_tokens=not templated)


def split_text(tokenizer: "PreTrainedTokenizerBase", prompt: str, joiner: str, response: str,
               add_special_tokens: bool) -> tuple[list[int], list[int]]:
    """`split_for_scoring` for an already formatted prompt text."""
    text = prompt + (joiner + response if response else "")
    if tokenizer.is_fast:
        encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
        # The first token that ends inside the response; added special tokens have (0, 0) spans.
        start = next((i for i, (_, end) in enumerate(offsets) if end > len(prompt)), len(ids))
        return ids[:start], ids[start:]
    # Slow tokenizers have no offsets: the reference's rule, response = tokens after the prompt's own.
    ids = tokenizer(text, add_special_tokens=add_special_tokens).input_ids
    start = len(tokenizer(prompt, add_special_tokens=add_special_tokens).input_ids)
    return ids[:start], ids[start:]
