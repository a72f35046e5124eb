"""The `rm:` options of ArmoRM and the HelpSteer2 recipe: bad values are refused with the field named."""

import pytest

from factory.errors import ConfigError
from trainers.config import load_train_config
from tests.trainers.conftest import write_config


def _load(tmp_path, tiny_model_dir, **rm):
    return load_train_config(write_config(tmp_path, tiny_model_dir, data={"dataset": "ratings"}, rm=rm), "rm")


ARMO = {"objective": "multi_objective"}
HELPSTEER = {"objective": "regression_then_scaled_bt", "regression_data": {"dataset": "ratings"}}


@pytest.mark.parametrize("rm, field", [
    (ARMO | {"ridge_alphas": []}, "rm.ridge_alphas"),
    (ARMO | {"ridge_alphas": [1.0, 0.0]}, "rm.ridge_alphas[1]"),
    (ARMO | {"ridge_validation_fraction": 1.0}, "rm.ridge_validation_fraction"),
    (ARMO | {"corr_threshold": 1.5}, "rm.corr_threshold"),
    (ARMO | {"corr_threshold": -1.01}, "rm.corr_threshold"),
    (ARMO | {"decorrelate_rule": "pearson"}, "rm.decorrelate_rule"),
    (ARMO | {"decorrelate": "length"}, "rm.decorrelate"),
    (ARMO | {"pair_attribute": "safety"}, "rm.pair_attribute"),
    (ARMO | {"gating_dropout": 1.0}, "rm.gating_dropout"),
    (ARMO | {"gating_temperature": 0}, "rm.gating_temperature"),
    (ARMO | {"gating_n_hidden": -1}, "rm.gating_n_hidden"),
    (ARMO | {"gating_epochs": 20}, "rm.gating_epochs"),  # the old name is gone, not silently ignored
    (HELPSTEER | {"regression_attributes": ["helpfulness", "safety"]}, "rm.regression_attributes"),
    (HELPSTEER | {"regression_attributes": []}, "rm.regression_attributes"),
    (HELPSTEER | {"regression_attributes": ["correctness"]}, "rm.head_attribute"),
    (HELPSTEER | {"head_attribute": "safety"}, "rm.head_attribute"),
])
def test_bad_rm_option_names_the_field(rm, field, tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, tiny_model_dir, **rm)
    assert field in str(error.value)
    assert "train.yaml" in str(error.value)


def test_helpsteer_regression_defaults_to_the_head_attribute_alone(tmp_path, tiny_model_dir):
    assert _load(tmp_path, tiny_model_dir, **HELPSTEER).rm.regression_phase_attributes == ["helpfulness"]
    chosen = _load(tmp_path, tiny_model_dir, **HELPSTEER, regression_attributes=["helpfulness", "correctness"],
                   head_attribute="correctness")
    assert chosen.rm.regression_phase_attributes == ["helpfulness", "correctness"]


def test_options_of_other_objectives_are_not_checked(tmp_path, tiny_model_dir):
    # decorrelate's default (verbosity) only matters to multi_objective
    config = _load(tmp_path, tiny_model_dir, objective="regression", attributes=["helpfulness"])
    assert config.rm.attributes == ["helpfulness"]
