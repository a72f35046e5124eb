"""HelpSteer2-Preference as its data card has it: the seven-point scale with 0, several raters per
pair aggregated (the three most similar preferences, mean, rounded), the card's export columns.

The aggregation is checked against `card_rule`, a re-computation written from the card's words
(smallest range among all 3-subsets, mean as an exact fraction, rounded half away from zero with
`decimal`), not from the factory's code.
"""

from __future__ import annotations

import itertools
import json
import random
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import datasets
import pyarrow as pa
import pytest

from annotators.helpsteer.aggregate import aggregate_preferences
from annotators.helpsteer.parse import split_justification
from annotators.helpsteer.preference import SCALE, STRENGTHS, combine, expected_strength, preference_prompt
from annotators.webapp.render import preference_scale
from factory.config import load_pipeline
from factory.errors import ConfigError, FactoryError
from factory.cli import EXPORT_FORMATS  # every package's formats, as `factory export` has them
from factory.export import export_dataset
from factory.runner import PipelineRunner
from factory.store import Store
from schemas import HelpSteerPreferenceRow, rows_to_arrow
from tests.helpers import prompts, write_pipeline
from tests.trainers.conftest import write_config
from trainers.config import load_train_config
from trainers.data import load_training_data

CARD_COLUMNS = ["prompt", "response_1", "response_2", "preference_strength", "preference_statement",
                "preference_elaboration", "justification"]


def card_rule(strengths: list[int], keep: int = 3, max_spread: int = 2) -> tuple[int, tuple[int, ...], bool]:
    """(strength, kept indices, high disagreement): the `keep` most similar preferences (smallest
    max - min; the earliest raters on ties), their exact mean rounded to the nearest integer, halves away from 0."""
    size = min(keep, len(strengths))
    kept = min(itertools.combinations(range(len(strengths)), size),
               key=lambda s: (max(strengths[i] for i in s) - min(strengths[i] for i in s), s))
    values = [strengths[i] for i in kept]
    mean = Fraction(sum(values), len(values))
    rounded = int((Decimal(mean.numerator) / Decimal(mean.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return rounded, kept, max(values) - min(values) > max_spread


# --- the scale --------------------------------------------------------------------------------------

def test_the_scale_has_the_cards_zero():
    assert STRENGTHS == [-3, -2, -1, 0, 1, 2, 3]
    assert "0: Response 1 is about the same as Response 2" in SCALE.splitlines()
    assert "0: Response 1 is about the same as Response 2" in preference_prompt("p", "a", "b", justify=False)
    assert [value for value, _ in preference_scale()] == STRENGTHS  # the rating app shows the same seven points


def test_a_judge_sure_of_a_tie_scores_zero():
    tie = [0, 0, 0, 1, 0, 0, 0]  # all mass on '0'
    assert expected_strength(tie) == 0
    assert combine(expected_strength(tie), -expected_strength(tie)) == (0, True)
    # Before 0 existed, a judge torn between "slightly" on both sides was its only way to say "equal".
    assert expected_strength([0, 0, 1, 2, 1, 0, 0]) == 0 and expected_strength([0, 0, 0, 1, 1, 0, 0]) == 0.5


def test_the_judge_is_asked_for_all_seven_points(long_engine):
    conversation = [{"role": "user", "content": preference_prompt("Say hi", "Hi!", "Hello!", justify=False)}]
    (probabilities,) = long_engine.option_probs([conversation], [str(s) for s in STRENGTHS])
    assert len(probabilities) == 7 and probabilities[3] > 0  # '0' is scored like the other answers
    assert -3 <= expected_strength(probabilities) <= 3


# --- aggregation --------------------------------------------------------------------------------

@pytest.mark.parametrize("strengths, strength, kept, flagged", [
    ([1, 1, 2, -3], 1, [0, 1, 2], False),        # the outlier -3 is left out; 4/3 -> 1
    ([2, 2, 1, 3], 2, [0, 1, 2], False),         # tie between {2,2,1} and {2,2,3}: the earlier raters; 5/3 -> 2
    ([0, 0, 1], 0, [0, 1, 2], False),            # mostly "about the same" stays 0
    ([-1, 0, 1, 3], 0, [0, 1, 2], False),        # a 0 among them; the mean 0 is kept as 0
    ([1, 2], 2, [0, 1], False),                  # two raters: 1.5 rounds away from zero ...
    ([-1, -2], -2, [0, 1], False),               # ... on either side
    ([-2, 1, 3], 1, [0, 1, 2], True),            # signs disagree, range 5 > 2: flagged
    ([3, -1, 2, 3, 2], 3, [0, 2, 3], False),     # five raters: 8/3 -> 3
])
def test_aggregate_preferences_on_hand_made_raters(strengths, strength, kept, flagged):
    result = aggregate_preferences(strengths)
    assert (result.strength, result.kept, result.high_disagreement) == (strength, kept, flagged)
    assert card_rule(strengths) == (strength, tuple(kept), flagged)


def test_aggregate_preferences_matches_the_card_rule_on_random_raters():
    draw = random.Random(7)
    for _ in range(400):
        strengths = [draw.randint(-3, 3) for _ in range(draw.randint(1, 5))]
        result = aggregate_preferences(strengths)
        assert (result.strength, tuple(result.kept), result.high_disagreement) == card_rule(strengths), strengths
        assert result.spread == max(strengths[i] for i in result.kept) - min(strengths[i] for i in result.kept)


def test_statement_and_elaboration_split_at_the_first_sentence():
    assert split_justification("@Response 2 is better because it has the diagram. It is also complete. Well written.") == (
        "@Response 2 is better because it has the diagram.", "It is also complete. Well written.")
    assert split_justification("Response 1 wins at 3.5 points vs 2.1!  Clearer too.") == (
        "Response 1 wins at 3.5 points vs 2.1!", "Clearer too.")
    assert split_justification("Both are fine\nbut 2 is shorter") == ("Both are fine", "but 2 is shorter")
    assert split_justification("One sentence only.") == ("One sentence only.", None)
    assert split_justification("   ") == (None, None) and split_justification(None) == (None, None)


# --- the stage on a real store: LLM and human raters of the same pairs ---------------------------

def seed_line(n: int, prompt: str, pair: tuple[str, str], rater: str, strength: int, **text: str) -> dict:
    # Every text field on every line, null where unused: the seed loader takes a file's columns from
    # its first line (a field first seen on a later line is dropped; reported, not ours to change here).
    texts = dict.fromkeys(("justification", "preference_statement", "preference_elaboration")) | text
    return {"id": f"h{n}", "prompt": prompt, "response_1": pair[0], "response_2": pair[1], "rater": rater,
            "preference_strength": strength, **texts}


@pytest.fixture(scope="module")
def rated(tmp_path_factory, long_model_dir):
    """An LLM judge on two generated pairs, then humans on the first of them and on three pairs of their own."""
    folder = tmp_path_factory.mktemp("hs2p")
    store = Store(folder / "store")
    llm = {"name": "llm", "executor": "local", "models": {"m": {"name": str(long_model_dir), "dtype": "float32"}},
           "stages": [{"stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "m",
                       "config": {"n": 2, "max_new_tokens": 4}},
                      {"stage": "helpsteer_preference", "input": {"dataset": "responses"}, "model": "m",
                       "config": {"max_new_tokens": 6}}]}
    PipelineRunner(load_pipeline(write_pipeline(folder / "llm", llm, prompts(2))), store).run()
    judged = store.sql("SELECT prompt, response_1, response_2 FROM helpsteer_preferences ORDER BY prompt").rows()
    p0 = next(pair for pair in judged if pair[1].strip() and pair[2].strip())  # imports need non-blank texts
    lines = [
        seed_line(1, p0[0], p0[1:], "ann-a", 1, justification="Response 2 is slightly better. It is shorter."),
        seed_line(2, p0[0], p0[1:], "ann-b", 1),
        seed_line(3, p0[0], p0[1:], "ann-c", 2, preference_statement="Response 2 is better.",
                  preference_elaboration="It follows the instruction."),
        seed_line(4, p0[0], p0[1:], "ann-d", -3, justification="Response 1 is much better."),  # the outlier
        *(seed_line(5 + i, "tie", ("x", "y"), f"ann-{i}", s) for i, s in enumerate([0, 0, 1])),
        *(seed_line(8 + i, "split", ("u", "v"), f"ann-{i}", s) for i, s in enumerate([-2, 1, 3])),
        seed_line(11, "two", ("s", "t"), "ann-a", -1, justification="Response 1 is better. It answers the question."),
        seed_line(12, "two", ("s", "t"), "ann-b", -2),
    ]
    humans = {"name": "humans", "executor": "local",
              "stages": [{"stage": "import_preferences", "input": {"seed": "labels.jsonl"}},
                         {"stage": "helpsteer_preference_aggregate", "input": {"dataset": "helpsteer_preferences"}}]}
    path = write_pipeline(folder / "humans", humans)
    (folder / "humans" / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    # A failed judge row on the "tie" pair: never aggregated.
    store.append("helpsteer_preferences", rows_to_arrow([HelpSteerPreferenceRow(
        id="failed", parent_id="x", run_id="r", created_at="2026-01-01T00:00:00Z", stage="helpsteer_preference",
        fingerprint="f", prompt="tie", response_1="x", response_2="y", rater="m/default", source="llm",
        preference_strength=3, error="engine failed")], HelpSteerPreferenceRow))
    summaries = PipelineRunner(load_pipeline(path), store).run()
    return store, path, summaries, p0


def by_prompt(store: Store) -> dict[str, dict]:
    return {row["prompt"]: row for row in store.sql("SELECT * FROM aggregated_preferences").to_dicts()}


def test_one_aggregated_row_per_pair_by_the_cards_rule(rated):
    store, _, summaries, p0 = rated
    assert [s.rows for s in summaries] == [12, 5]  # 12 human rows; 5 pairs (2 judged by the LLM, 3 by humans only)
    rows = by_prompt(store)
    sources = store.sql("SELECT id, prompt, response_1, response_2, rater, preference_strength FROM helpsteer_preferences "
                        "WHERE error IS NULL").to_dicts()
    for row in rows.values():
        members = {s["id"]: s for s in sources if (s["prompt"], s["response_1"], s["response_2"]) ==
                   (row["prompt"], row["response_1"], row["response_2"])}
        assert sorted(row["source_ids"]) == sorted(members) and row["parent_id"] == row["pair_key"]
        assert row["strengths"] == [members[i]["preference_strength"] for i in row["source_ids"]]
        assert row["raters"] == [members[i]["rater"] for i in row["source_ids"]]
        strength, kept, flagged = card_rule(row["strengths"])
        assert (row["preference_strength"], row["high_disagreement"]) == (strength, flagged)
        assert row["kept_ids"] == [row["source_ids"][i] for i in kept]
        assert row["preference_mean"] == pytest.approx(sum(row["strengths"][i] for i in kept) / len(kept))
    first = rows[p0[0]]
    assert len(first["raters"]) == 5 and any(r.endswith("/default") for r in first["raters"])  # the LLM and 4 humans
    assert "ann-d" not in first["kept_raters"]  # the outlier
    assert rows["tie"]["preference_strength"] == 0 and "failed" not in rows["tie"]["source_ids"]
    assert rows["split"]["high_disagreement"] is True
    assert rows["two"]["preference_strength"] == -2  # mean -1.5, away from zero
    assert rows["two"]["justification"] == "Response 1 is better. It answers the question."


def test_rerun_adds_nothing(rated):
    store, path, _, _ = rated
    assert [s.rows for s in PipelineRunner(load_pipeline(path), store).run()] == [0, 0]
    assert store.sql("SELECT count(*) AS n FROM aggregated_preferences")["n"][0] == 5


def test_card_export_from_the_aggregate(rated, tmp_path):
    store, _, _, p0 = rated
    export_dataset(store, "aggregated_preferences", tmp_path / "card", fmt="helpsteer2-preference", formats=EXPORT_FORMATS)
    for data in (datasets.load_from_disk(str(tmp_path / "card")),
                 datasets.load_dataset("parquet", data_files=f"{tmp_path}/card/data/*.parquet", split="train")):
        assert data.column_names == CARD_COLUMNS
        assert data.features["preference_strength"] == datasets.Value("int32")
        assert data.num_rows == 4 and "split" not in data["prompt"]  # the high-disagreement pair is left out
        rows = {row["prompt"]: row for row in data}
        assert (rows["two"]["preference_statement"], rows["two"]["preference_elaboration"]) == (
            "Response 1 is better.", "It answers the question.")
        assert rows["tie"]["preference_strength"] == 0 and rows["tie"]["preference_statement"] is None
        first = rows[p0[0]]
        assert first["preference_statement"] and first["preference_statement"] in first["justification"]


def test_card_export_of_single_raters_and_the_card_shaped_import(rated, tmp_path):
    store, _, _, _ = rated
    export_dataset(store, "helpsteer_preferences", tmp_path / "raw", fmt="helpsteer2-preference",
                   where="source = 'human'", formats=EXPORT_FORMATS)
    data = datasets.load_from_disk(str(tmp_path / "raw"))
    assert data.column_names == CARD_COLUMNS and data.features["preference_strength"] == datasets.Value("int32")
    assert data.num_rows == 12
    carded = [row for row in data if row["preference_statement"] == "Response 2 is better."]
    assert len(carded) == 1 and carded[0]["preference_elaboration"] == "It follows the instruction."
    assert carded[0]["justification"] == "Response 2 is better. It follows the instruction."


def test_rm_export_and_trainer_read_the_aggregate(rated, tmp_path, tiny_model_dir):
    store, _, _, _ = rated
    usable = [r for r in by_prompt(store).values() if r["preference_strength"] != 0 and not r["high_disagreement"]]
    export_dataset(store, "aggregated_preferences", tmp_path / "rm", fmt="rm")
    rm = datasets.load_from_disk(str(tmp_path / "rm"))
    assert rm.num_rows == len(usable) >= 2  # 0 ("about the same") and flagged pairs are not training pairs
    assert sorted(rm["margin"]) == sorted(float(abs(r["preference_strength"])) for r in usable)
    config = load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "aggregated_preferences"},
                                            rm={"objective": "scaled_bt"}, eval_fraction=0), "rm")
    data = load_training_data(config, store)
    assert len(data.train) == len(usable)
    assert sorted(data.train["scale"]) == sorted(float(abs(r["preference_strength"])) for r in usable)


# --- bad input ----------------------------------------------------------------------------------

def import_only(folder, lines: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.jsonl").write_text("".join(line + "\n" for line in lines))
    return load_pipeline(write_pipeline(folder, {"name": "h", "executor": "local", "stages": [
        {"stage": "import_preferences", "input": {"seed": "labels.jsonl"}}]}))


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_non_number_strength_names_line_and_field(tmp_path, value):
    good = json.dumps(seed_line(1, "p", ("a", "b"), "x", 1))
    bad = json.dumps(seed_line(2, "p", ("a", "b"), "y", 0)).replace('"preference_strength": 0', f'"preference_strength": {value}')
    store = Store(tmp_path / "store")
    with pytest.raises(FactoryError, match="seed line 2: field 'preference_strength': expected an integer"):
        PipelineRunner(import_only(tmp_path, [good, bad]), store).run()
    assert not store.has("helpsteer_preferences")  # nothing written


def test_a_card_field_of_the_wrong_type_names_line_and_field(tmp_path):
    lines = [json.dumps(seed_line(1, "p", ("a", "b"), "x", 1, preference_statement="fine")),
             json.dumps(seed_line(2, "p", ("a", "b"), "y", 2) | {"preference_elaboration": ["a", "list"]})]
    with pytest.raises(FactoryError, match="seed line 2: field 'preference_elaboration': expected a string"):
        PipelineRunner(import_only(tmp_path, lines), Store(tmp_path / "store")).run()


def aggregate_only(folder, dataset: str = "helpsteer_preferences"):
    return load_pipeline(write_pipeline(folder, {"name": "agg", "executor": "local", "stages": [
        {"stage": "helpsteer_preference_aggregate", "input": {"dataset": dataset}}]}))


def test_a_strength_off_the_scale_stops_the_aggregate_naming_the_row(tmp_path):
    store = Store(tmp_path / "store")
    rows = [HelpSteerPreferenceRow(id=f"r{i}", parent_id="x", run_id="r", created_at="2026-01-01T00:00:00Z", stage="s",
                                   fingerprint="f", prompt="p", response_1="a", response_2="b", rater=f"x{i}",
                                   source="human", preference_strength=s) for i, s in enumerate([1, 5])]
    store.append("helpsteer_preferences", rows_to_arrow(rows, HelpSteerPreferenceRow))
    with pytest.raises(FactoryError, match="input row 'r1': field 'preference_strength': 5 is outside -3..3"):
        PipelineRunner(aggregate_only(tmp_path), store).run()
    assert not store.has("aggregated_preferences")


def test_an_input_without_raters_is_refused_before_any_work(tmp_path):
    store = Store(tmp_path / "store")
    store.append("pairs", pa.table({"id": ["1"], "prompt": ["p"], "response_1": ["a"], "response_2": ["b"],
                                    "preference_strength": [1]}))
    with pytest.raises(ConfigError, match="reads column.*rater"):
        PipelineRunner(aggregate_only(tmp_path, "pairs"), store).run()
