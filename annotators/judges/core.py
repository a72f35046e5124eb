"""The three judging strategies as batched engine calls, shared by the judge, jury and debate stages.

- single: Likert 1-5 as the expectation over the normalised P('1'..'5'): never fails to parse.
- pairwise: always both orders. 'probs' mode reads P('A') vs P('B'); 'generate' mode parses a
  written 'Verdict: A/B/tie' (unparsable -> an error for that item). The reverse order's verdict is
  mapped back to the candidates' own order; a verdict that flips with the order is position bias
  and counts as a tie.
- ranking: all candidates in one prompt, a generated permutation ('2 > 1 > 3'); invalid -> error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from annotators.judges.prompts import (LIKERT, VerdictParseError, pair_prompt, parse_ranking, parse_verdict,
                                       ranking_prompt, single_prompt)
from factory.engines import Conversation, Engine, SamplingParams

PairMode = Literal["probs", "generate"]
SWAP = {"A": "B", "B": "A", "tie": "tie"}


def conversation(system: str | None, text: str) -> Conversation:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": text}]


def likert_expectation(probabilities: list[float]) -> float:
    """Expected score over '1'..'5', normalised over the five (always in [1, 5])."""
    total = sum(probabilities)
    if total <= 0:
        raise ValueError("every score option has probability 0")
    return sum((i + 1) * p for i, p in enumerate(probabilities)) / total


def verdict_from_probability(p_first: float, tie_margin: float) -> str:
    if p_first > 0.5 + tie_margin:
        return "A"
    if p_first < 0.5 - tie_margin:
        return "B"
    return "tie"


def combine_orders(forward: str, reverse: str) -> tuple[str, bool]:
    """(verdict, position_bias) from the forward verdict and the reverse one already mapped back.

    Agreement keeps the verdict; A in one order and B in the other is a flip: position bias, a tie.
    One decisive order and one tie is a tie without the bias flag.
    """
    if forward == reverse:
        return forward, False
    return "tie", {forward, reverse} == {"A", "B"}


@dataclass
class PairVerdict:
    verdict: str | None = None
    forward: str | None = None
    reverse: str | None = None
    p_forward: float | None = None  # P(candidate A better), candidates in order (A, B)
    p_reverse: float | None = None  # P(candidate A better), candidates presented as (B, A)
    position_bias: bool | None = None
    raw_output: str | None = None
    error: str | None = None


def score_single(engine: Engine, system: str | None, items: list[tuple[str, str]], criteria: str) -> list[float]:
    """Likert expectation for each (prompt, response)."""
    probabilities = engine.option_probs([conversation(system, single_prompt(p, r, criteria)) for p, r in items], LIKERT)
    return [likert_expectation(p) for p in probabilities]


def judge_pairs(engine: Engine, system: str | None, items: list[tuple[str, str, str]], criteria: str,
                mode: PairMode = "probs", tie_margin: float = 0.0, max_new_tokens: int = 128,
                transcripts: list[tuple[str, str]] | None = None) -> list[PairVerdict]:
    """Both-order verdicts for each (prompt, A, B); `transcripts` gives a debate per order (forward, reverse)."""
    prompts = []
    for i, (prompt, a, b) in enumerate(items):
        forward_debate, reverse_debate = transcripts[i] if transcripts else (None, None)
        prompts.append(pair_prompt(prompt, a, b, criteria, mode == "generate", forward_debate))
        prompts.append(pair_prompt(prompt, b, a, criteria, mode == "generate", reverse_debate))
    conversations = [conversation(system, text) for text in prompts]
    results = []
    if mode == "probs":
        probabilities = engine.option_probs(conversations, ["A", "B"])
        for k in range(len(items)):
            p_forward = _first(probabilities[2 * k])
            p_reverse = 1.0 - _first(probabilities[2 * k + 1])  # B was shown first: P(A better) = P('B')
            forward = verdict_from_probability(p_forward, tie_margin)
            reverse = verdict_from_probability(p_reverse, tie_margin)
            verdict, bias = combine_orders(forward, reverse)
            results.append(PairVerdict(verdict, forward, reverse, p_forward, p_reverse, bias))
        return results
    sampling = SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=0.0)
    texts = [g.completions[0].text if g.completions else "" for g in engine.generate(conversations, sampling)]
    for k in range(len(items)):
        raw = f"[order A, B]\n{texts[2 * k]}\n[order B, A]\n{texts[2 * k + 1]}"
        try:
            forward, reverse = parse_verdict(texts[2 * k]), SWAP[parse_verdict(texts[2 * k + 1])]
        except VerdictParseError as exc:
            results.append(PairVerdict(raw_output=raw, error=f"VerdictParseError: {exc}"))
            continue
        verdict, bias = combine_orders(forward, reverse)
        results.append(PairVerdict(verdict, forward, reverse, None, None, bias, raw))
    return results


def _first(probabilities: list[float]) -> float:
    total = sum(probabilities)
    return probabilities[0] / total if total > 0 else 0.5


def rank_candidates(engine: Engine, system: str | None, items: list[tuple[str, list[str]]], criteria: str,
                    max_new_tokens: int = 64) -> list[tuple[list[int] | None, str, str | None]]:
    """(ranking best first or None, raw text, error) for each (prompt, candidates)."""
    sampling = SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=0.0)
    conversations = [conversation(system, ranking_prompt(p, c, criteria)) for p, c in items]
    out = []
    for (_, candidates), generation in zip(items, engine.generate(conversations, sampling), strict=True):
        text = generation.completions[0].text if generation.completions else ""
        try:
            out.append((parse_ranking(text, len(candidates)), text, None))
        except VerdictParseError as exc:
            out.append((None, text, f"VerdictParseError: {exc}"))
    return out


def majority(verdicts: list[str]) -> str:
    """'A' or 'B' when it has strictly more votes than any other verdict; otherwise 'tie'."""
    counts = Counter(verdicts).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return "tie"
    return counts[0][0]
