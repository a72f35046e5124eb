"""Human labels from the app, aggregated the HelpSteer2 way, exported in the HelpSteer2 formats."""

from __future__ import annotations

import datasets
import pytest

from annotators.webapp.export import export_campaign
from factory.cli import main
from factory.config import load_pipeline
from factory.cli import EXPORT_FORMATS  # every package's formats, as `factory export` has them
from factory.export import export_dataset
from factory.runner import PipelineRunner
from schemas.ratings import ATTRIBUTES
from tests.annotators.webapp.conftest import auth
from tests.helpers import write_pipeline

HELPSTEER2_COLUMNS = ["prompt", "response", *ATTRIBUTES]


@pytest.fixture
def rated(make_app):
    """Three raters on every item; item 0's raters disagree wildly (4, 0, 2 and -3, +3, 0)."""
    client, campaign, store = make_app(task="both", raters_per_item=3)
    items = sorted(i["id"] for i in client.get("/api/assignments", headers=auth("alice")).json()["items"])
    wild = {"alice": (4, -3), "bob": (0, 3), "carol": (2, 0)}
    calm = {"alice": (3, -2), "bob": (3, -1), "carol": (4, -2)}
    for n, item in enumerate(items):
        for rater, (score, strength) in (wild if n == 0 else calm).items():
            body = {f"{a}_{r}": score for a in ATTRIBUTES for r in (1, 2)}
            body.update(preference_strength=strength, justification=f"{rater}: reasons")
            assert client.post(f"/api/items/{item}", json=body, headers=auth(rater)).status_code == 200
    return campaign, store, items


def test_helpsteer2_export_of_aggregated_human_labels_loads_with_datasets(rated, tmp_path):
    campaign, store, _ = rated
    result = export_campaign(campaign, store, tmp_path / "hs2", "helpsteer2")
    # 12 responses rated; the two of item 0 are dropped for high disagreement (spread 4 > 2).
    assert result.rows == 10 and result.dropped == 2
    for loaded in (datasets.load_from_disk(str(tmp_path / "hs2")),
                   datasets.load_dataset("parquet", data_files=str(tmp_path / "hs2" / "data" / "*.parquet"))["train"]):
        assert loaded.column_names == HELPSTEER2_COLUMNS and loaded.num_rows == 10
        assert loaded.features["helpfulness"].dtype == "int64"
        assert set(loaded["helpfulness"]) == {3}  # mean of 3, 3, 4 = 3.33 -> 3
    assert "alice, bob, carol" in (tmp_path / "hs2" / "README.md").read_text()


def test_helpsteer2_preference_export(rated, tmp_path):
    campaign, store, _ = rated
    result = export_campaign(campaign, store, tmp_path / "pref", "helpsteer2-preference")
    loaded = datasets.load_from_disk(str(tmp_path / "pref"))
    assert result.rows == 5 and loaded.column_names == ["prompt", "response_1", "response_2", "preference_strength",
                                                        "preference_statement", "preference_elaboration", "justification"]
    assert set(loaded["preference_strength"]) == {-2}  # mean of -2, -1, -2 = -1.67 -> -2
    assert "bob: bob: reasons" in loaded["justification"][0]


def test_cli_export_and_its_errors(rated, tmp_path, capsys):
    campaign, store, _ = rated
    yaml_path = str(campaign.base_dir / "campaign.yaml")
    code = main(["annotate", "export", "--campaign", yaml_path, "--store", store.location, "--out", str(tmp_path / "x")])
    assert code == 0 and "exported 10 rows of campaign test (helpsteer2)" in capsys.readouterr().out
    assert main(["annotate", "export", "--campaign", yaml_path, "--store", store.location, "--out", str(tmp_path / "x")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["annotate", "export", "--campaign", yaml_path, "--store", store.location]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_the_existing_aggregate_stage_and_export_work_on_the_apps_rows(rated, tmp_path):
    """The app writes the same record type as import_ratings: helpsteer_aggregate + `factory export` take it as is."""
    _, store, _ = rated
    path = write_pipeline(tmp_path / "pipeline", {
        "name": "aggregate_humans", "executor": "local",
        "stages": [{"stage": "helpsteer_aggregate", "input": {"dataset": "ratings", "where": "source = 'human'"},
                    "config": {"keep": 3, "max_spread": 2.0}}],
    })
    PipelineRunner(load_pipeline(path), store).run()
    aggregated = store.sql("SELECT raters, high_disagreement FROM aggregated_ratings")
    assert aggregated.height == 12 and aggregated["high_disagreement"].sum() == 2
    assert all(sorted(r) == ["alice", "bob", "carol"] for r in aggregated["raters"].to_list())
    export_dataset(store, "aggregated_ratings", tmp_path / "via-pipeline", fmt="helpsteer2", formats=EXPORT_FORMATS)
    loaded = datasets.load_from_disk(str(tmp_path / "via-pipeline"))
    assert loaded.column_names == HELPSTEER2_COLUMNS and loaded.num_rows == 10
