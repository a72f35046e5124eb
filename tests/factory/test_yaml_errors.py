import pytest

from factory.errors import ConfigError, StoreError
from factory.yaml_errors import parse_yaml


def test_a_syntax_error_is_one_line_with_file_line_and_column():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("name: x\nraters: [\n", "campaign.yaml")
    message = str(caught.value)
    assert message.startswith("campaign.yaml:3:1: malformed YAML: ")
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_caller_chooses_the_error_class_and_valid_yaml_parses():
    with pytest.raises(StoreError, match=r"^s\.yaml:2:1: malformed YAML"):
        parse_yaml("a: [b\n", "s.yaml", error=StoreError)
    assert parse_yaml("a: [1, 2]\n", "ok.yaml") == {"a": [1, 2]}
