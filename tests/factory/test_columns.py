import pytest

from factory.columns import missing_columns, require_columns
from factory.errors import FactoryError
from trainers.data import TrainingDataError


def test_alternatives_are_met_by_any_one_and_shown_with_or():
    assert missing_columns(["prompt", "margin|preference_strength", "id"], ["id", "preference_strength"]) == ["prompt"]
    assert missing_columns(["prompt", "margin|preference_strength"], ["id"]) == ["prompt", "margin or preference_strength"]
    assert missing_columns([], []) == []


def test_one_message_names_what_every_missing_need_and_the_columns_there_are():
    with pytest.raises(TrainingDataError) as caught:
        require_columns(["prompt", "chosen|response_1"], ["id", "text"], "rm data", "the rows have", TrainingDataError)
    assert str(caught.value) == "rm data needs column(s) prompt, chosen or response_1; the rows have: id, text"
    with pytest.raises(FactoryError, match=r"^--format sft needs column\(s\) prompt; 'scores' has: id, score$"):
        require_columns(["id", "prompt"], ["id", "score"], "--format sft", "'scores' has")
    require_columns(["id"], ["id"], "nothing", "nobody has")  # met: no error
