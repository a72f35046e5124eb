"""Data sets `ratings`, `aggregated_ratings`, `helpsteer_preferences`, `aggregated_preferences`
(HelpSteer2 and -Preference)."""

from pydantic import Field

from schemas.common import BaseRow

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


class RatingRow(BaseRow):
    """One rater's five attribute scores for one response: LLM raters and imported human raters alike."""

    response_id: str | None = Field(default=None, description="Id of the rated row in its data set (None if imported without one).")
    response_key: str = Field(description="Hash of (prompt, response): joins ratings of the same text from any source.")
    prompt: str = Field(description="The user prompt.")
    response: str = Field(description="The rated response.")
    rater: str = Field(description="Who rated: '<model>/<prompt variant>' for an LLM, the annotator's id for a human.")
    source: str = Field(description="'llm' or 'human'.")
    helpfulness: float | None = Field(default=None, description="0-4; an LLM's is the expectation over P('0'..'4').")
    correctness: float | None = Field(default=None, description="0-4.")
    coherence: float | None = Field(default=None, description="0-4.")
    complexity: float | None = Field(default=None, description="0-4.")
    verbosity: float | None = Field(default=None, description="0-4.")
    justification: str | None = Field(default=None, description="The rater's written reasons (generative mode, or human notes).")


class AggregatedRatingRow(BaseRow):
    """The HelpSteer2 aggregate of several raters of one response (stage `helpsteer_aggregate`)."""

    response_key: str = Field(description="Hash of (prompt, response), as in `ratings`.")
    response_id: str | None = Field(default=None, description="A response id among the raters' rows, if any.")
    prompt: str = Field(description="The user prompt.")
    response: str = Field(description="The rated response.")
    helpfulness: float | None = Field(default=None, description="Mean over the kept raters, 0-4.")
    correctness: float | None = Field(default=None, description="Mean over the kept raters, 0-4.")
    coherence: float | None = Field(default=None, description="Mean over the kept raters, 0-4.")
    complexity: float | None = Field(default=None, description="Mean over the kept raters, 0-4.")
    verbosity: float | None = Field(default=None, description="Mean over the kept raters, 0-4.")
    raters: list[str] = Field(default_factory=list, description="Every rater of the response.")
    kept_raters: list[str] = Field(default_factory=list, description="The most agreeing raters, averaged.")
    spread: float | None = Field(default=None, description="Max - min helpfulness among the kept raters.")
    high_disagreement: bool | None = Field(default=None, description="spread above the threshold: HelpSteer2 drops these.")


class HelpSteerPreferenceRow(BaseRow):
    """Preference strength between two responses to one prompt (HelpSteer2-Preference scale)."""

    prompt: str = Field(description="The user prompt.")
    response_1: str = Field(description="First response.")
    response_2: str = Field(description="Second response.")
    response_1_id: str | None = Field(default=None, description="Id of response 1 in its data set.")
    response_2_id: str | None = Field(default=None, description="Id of response 2 in its data set.")
    rater: str = Field(description="LLM '<model>/<variant>' or a human annotator's id.")
    source: str = Field(description="'llm' or 'human'.")
    preference_strength: int | None = Field(
        default=None, description="-3..-1: response 1 better (much better at -3); 0: about the same; +1..+3: response 2 better."
    )
    strength_forward: float | None = Field(default=None, description="LLM: expected strength judged in the order (1, 2).")
    strength_reverse: float | None = Field(
        default=None, description="LLM: expected strength judged in the order (2, 1), sign flipped back to (1, 2)."
    )
    position_consistent: bool | None = Field(default=None, description="LLM: both orders prefer the same response.")
    justification: str | None = Field(default=None, description="Written reasons (order 1, 2; for humans their note).")
    justification_reverse: str | None = Field(default=None, description="LLM: written reasons in the order (2, 1).")


class AggregatedPreferenceRow(BaseRow):
    """The HelpSteer2-Preference aggregate of several raters of one pair (stage `helpsteer_preference_aggregate`)."""

    pair_key: str = Field(description="Hash of (prompt, response_1, response_2): the raters' rows that were grouped.")
    prompt: str = Field(description="The user prompt.")
    response_1: str = Field(description="First response.")
    response_2: str = Field(description="Second response.")
    response_1_id: str | None = Field(default=None, description="A response 1 id among the raters' rows, if any.")
    response_2_id: str | None = Field(default=None, description="A response 2 id among the raters' rows, if any.")
    preference_strength: int | None = Field(
        default=None, description="Mean of the kept raters' strengths rounded half away from zero, -3..3 (0: about the same)."
    )
    preference_mean: float | None = Field(default=None, description="Mean of the kept raters' strengths, unrounded.")
    justification: str | None = Field(
        default=None, description="One kept rater's justification: the first whose strength is nearest the aggregate."
    )
    raters: list[str] = Field(default_factory=list, description="Every rater of the pair, in input order.")
    strengths: list[int] = Field(default_factory=list, description="Every rater's strength, as `raters`.")
    source_ids: list[str] = Field(default_factory=list, description="Ids of every rater's `helpsteer_preferences` row.")
    kept_raters: list[str] = Field(default_factory=list, description="The most similar raters, averaged.")
    kept_ids: list[str] = Field(default_factory=list, description="Ids of the kept raters' rows.")
    spread: int | None = Field(default=None, description="Max - min strength among the kept raters.")
    high_disagreement: bool | None = Field(
        default=None, description="spread above the threshold: exports and trainers leave these pairs out."
    )
