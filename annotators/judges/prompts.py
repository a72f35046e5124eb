"""Judge prompts and verdict parsers. Letters A, B, ... name candidates in presented order."""

from __future__ import annotations

import re
import string

CRITERIA = "helpfulness, correctness, and clarity"
LIKERT = ["1", "2", "3", "4", "5"]
VERDICTS = ("A", "B", "tie")


class VerdictParseError(ValueError):
    """Generated text holds no usable verdict."""


def _block(label: str, text: str) -> str:
    return f"[{label}]\n{text}\n[End of {label.lower()}]"


def single_prompt(prompt: str, response: str, criteria: str = CRITERIA) -> str:
    return (f"Rate the assistant's response to the user's prompt for {criteria}.\n"
            "5: excellent; 4: good, minor issues; 3: acceptable; 2: poor; 1: useless or wrong.\n\n"
            f"{_block('Prompt', prompt)}\n\n{_block('Response', response)}\n\n"
            "Answer with a single digit from 1 to 5 and nothing else.")


def pair_prompt(prompt: str, first: str, second: str, criteria: str = CRITERIA, generative: bool = False,
                transcript: str | None = None) -> str:
    debate = f"\n\n[Debate]\n{transcript}\n[End of debate]" if transcript else ""
    task = ("Explain your choice in one or two sentences, then finish with a last line 'Verdict: A', "
            "'Verdict: B' or 'Verdict: tie'." if generative else
            "Which response is better? Answer with a single letter, A or B, and nothing else.")
    return (f"Compare two responses to the same prompt for {criteria}.\n\n{_block('Prompt', prompt)}\n\n"
            f"{_block('Response A', first)}\n\n{_block('Response B', second)}{debate}\n\n{task}")


def ranking_prompt(prompt: str, responses: list[str], criteria: str = CRITERIA) -> str:
    blocks = "\n\n".join(_block(f"Response {i + 1}", text) for i, text in enumerate(responses))
    example = " > ".join(str(i + 1) for i in reversed(range(len(responses))))
    return (f"Rank the {len(responses)} responses to the prompt from best to worst for {criteria}.\n\n"
            f"{_block('Prompt', prompt)}\n\n{blocks}\n\n"
            f"Answer with the response numbers from best to worst separated by '>', for example '{example}'.")


def debate_prompt(agent: str, prompt: str, first: str, second: str, transcript: str, criteria: str = CRITERIA) -> str:
    so_far = f"[Debate so far]\n{transcript}\n[End of debate so far]\n\n" if transcript else ""
    return (f"You are {agent}, one of several judges debating which of two responses to a prompt is better for "
            f"{criteria}.\n\n{_block('Prompt', prompt)}\n\n{_block('Response A', first)}\n\n"
            f"{_block('Response B', second)}\n\n{so_far}"
            "Give your argument in two or three sentences; answer the other judges' points if there are any, "
            "and say which response you favour.")


VERDICT = re.compile(r"verdict\s*[:=]?\s*\**\s*\[?(A|B|tie)\b", re.IGNORECASE)


def parse_verdict(text: str) -> str:
    """'A', 'B' or 'tie' from the last 'Verdict: X' line."""
    matches = VERDICT.findall(text or "")
    if not matches:
        raise VerdictParseError(f"no 'Verdict: A/B/tie' in {(text or '')[:80]!r}")
    last = matches[-1]
    return "tie" if last.lower() == "tie" else last.upper()


def parse_ranking(text: str, count: int) -> list[int]:
    """Candidate indices (0-based), best first, from e.g. '2 > 1 > 3'; a line with '>' is preferred."""
    lines = [line for line in (text or "").splitlines() if ">" in line] or [text or ""]
    seen: list[int] = []
    for number in (int(n) for n in re.findall(r"\d+", lines[0])):
        if 1 <= number <= count and number - 1 not in seen:
            seen.append(number - 1)
    if sorted(seen) != list(range(count)):
        raise VerdictParseError(f"no permutation of 1..{count} in {(text or '')[:80]!r}")
    return seen


def letter(index: int) -> str:
    return string.ascii_uppercase[index]
