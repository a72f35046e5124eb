"""Data sets of the multi-agent workflows (Fellowship of the LLMs, arXiv 2408.08688):
`feedback_turns` (generator-reviewer loop), `judgments` (judge, jury, debate), `agreement`
(evaluators against humans and each other) and `win_rates` (raw and length-controlled)."""

from pydantic import Field

from schemas.common import BaseRow


class FeedbackTurnRow(BaseRow):
    """One turn of the feedback loop: a generator answer (round 0 or a revision) or a review."""

    configuration: str = Field(description="Name of the feedback-loop configuration (generator + reviewer setup).")
    prompt: str = Field(description="The user prompt.")
    round: int = Field(description="0 = first answer; r >= 1 = the r-th review and the revision after it.")
    role: str = Field(description="'generator' or 'reviewer'.")
    text: str | None = Field(default=None, description="The answer or the review; None on an error row.")
    approved: bool | None = Field(default=None, description="Reviewer turns: the parsed verdict (None when unparsable).")
    final: bool = Field(default=False, description="True on the generator turn that is the loop's final answer.")
    finish_reason: str | None = Field(default=None, description="'stop' or 'length'.")
    prompt_tokens: int = Field(default=0, description="Tokens in the formatted prompt of this turn.")
    completion_tokens: int = Field(default=0, description="Tokens generated in this turn.")


class JudgmentRow(BaseRow):
    """One evaluation of one work item: a response (single), a pair (pairwise), or a list (ranking)."""

    evaluator: str = Field(description="Evaluator configuration, e.g. 'judge:pairwise:<model>/<variant>', 'jury:<name>'.")
    method: str = Field(description="'judge', 'jury' or 'debate'.")
    strategy: str = Field(description="'single' (score one), 'pairwise' (A vs B) or 'ranking' (order all).")
    group_id: str | None = Field(default=None, description="Key shared by the candidates (the prompt's id).")
    prompt: str = Field(description="The user prompt the candidates answer.")
    candidate_ids: list[str] = Field(default_factory=list, description="Ids of the judged responses, in presented order.")
    candidates: list[str] = Field(default_factory=list, description="The judged response texts (A, B, ... order).")
    configurations: list[str] = Field(default_factory=list, description="Configuration that produced each candidate.")
    score: float | None = Field(default=None, description="single: Likert 1-5 as the expectation over P('1'..'5').")
    verdict: str | None = Field(default=None, description="pairwise: 'A', 'B' or 'tie' after both orders (a flip is a tie).")
    verdict_forward: str | None = Field(default=None, description="pairwise: verdict with the candidates in order (A, B).")
    verdict_reverse: str | None = Field(default=None, description="pairwise: verdict in order (B, A), mapped back to A/B.")
    p_a_forward: float | None = Field(default=None, description="pairwise: P(A better) judged in order (A, B).")
    p_a_reverse: float | None = Field(default=None, description="pairwise: P(A better) judged in order (B, A).")
    position_bias: bool | None = Field(default=None, description="pairwise: the verdict flipped with the order.")
    ranking: list[int] | None = Field(default=None, description="ranking: candidate indices (0-based), best first.")
    jurors: str | None = Field(default=None, description="jury: JSON list of each juror's own verdict or score.")
    transcript: str | None = Field(default=None, description="debate: JSON list of {order, round, agent, text}.")
    raw_output: str | None = Field(default=None, description="Generated verdict text, kept for audit.")


class AgreementRow(BaseRow):
    """Agreement of an evaluator with a reference (humans or another evaluator), or of a rater panel."""

    evaluator: str = Field(description="Evaluator configuration, or 'humans' / 'evaluators' for a Fleiss panel.")
    reference: str = Field(description="'human' (the human majority label), another evaluator, or 'panel' (Fleiss).")
    strategy: str = Field(description="'pairwise' or 'single': what the labels are (verdicts or Likert scores).")
    metric: str = Field(description="'cohen_kappa', 'weighted_kappa' (ordinal) or 'fleiss_kappa'.")
    value: float | None = Field(default=None, description="The statistic; None when undefined (e.g. one label only).")
    ci_low: float | None = Field(default=None, description="Lower end of the bootstrap percentile interval.")
    ci_high: float | None = Field(default=None, description="Upper end of the bootstrap percentile interval.")
    percent_agreement: float | None = Field(default=None, description="Share of items with identical labels.")
    n_items: int = Field(description="Items both sides labelled.")
    n_raters: int = Field(default=2, description="Raters in the comparison (2 for Cohen's kappa).")
    rank: int | None = Field(default=None, description="Rank among evaluators by kappa against humans (1 = best).")


class WinRateRow(BaseRow):
    """How often configuration A beats B by one evaluator: raw and length-controlled (arXiv 2404.04475)."""

    evaluator: str = Field(description="Evaluator configuration whose judgments are counted.")
    configuration_a: str = Field(description="The configuration whose win rate this is.")
    configuration_b: str = Field(description="The baseline configuration.")
    n: int = Field(description="Judged pairs (ties included).")
    wins: int = Field(description="Pairs A won.")
    losses: int = Field(description="Pairs B won.")
    ties: int = Field(description="Ties, position-biased flips included; each counts half a win.")
    win_rate: float | None = Field(default=None, description="(wins + ties/2) / n.")
    win_rate_ci_low: float | None = Field(default=None, description="Bootstrap percentile interval of win_rate.")
    win_rate_ci_high: float | None = Field(default=None, description="Bootstrap percentile interval of win_rate.")
    lc_win_rate: float | None = Field(
        default=None, description="Length-controlled: the logistic GLM's prediction with the length term set to zero."
    )
    lc_ci_low: float | None = Field(default=None, description="Bootstrap percentile interval of lc_win_rate.")
    lc_ci_high: float | None = Field(default=None, description="Bootstrap percentile interval of lc_win_rate.")
    length_coef: float | None = Field(default=None, description="GLM weight of tanh(length difference / its std).")
    mean_length_a: float | None = Field(default=None, description="Mean characters of A's responses.")
    mean_length_b: float | None = Field(default=None, description="Mean characters of B's responses.")
