import pytest

from factory.config import load_pipeline, parse_pipeline
from factory.errors import ConfigError
from factory.runner import PipelineRunner
from factory.seeds import SeedFileError
from factory.stages import FINGERPRINT_NAMES, STAGE_TABLE
from factory.store import Store
from tests.helpers import generate_pipeline, prompts, write_pipeline


def parse(raw, tmp_path):
    return parse_pipeline(raw, tmp_path, "p.yaml")


def test_valid_pipeline_plans_stages(tmp_path):
    pipeline = parse(generate_pipeline("some/model"), tmp_path)
    (stage,) = pipeline.stages
    assert stage.name == "generate" and stage.output == "responses"
    assert stage.config.n == 2 and stage.models["model"].name == "some/model"


def test_fingerprint_follows_output_affecting_config_only(tmp_path):
    base = parse(generate_pipeline("org/m"), tmp_path).stages[0].fingerprint
    other_batch = parse(generate_pipeline("org/m", batch_size=7), tmp_path).stages[0].fingerprint
    other_n = parse(generate_pipeline("org/m", n=3), tmp_path).stages[0].fingerprint
    other_model = parse(generate_pipeline("org/m2"), tmp_path).stages[0].fingerprint
    assert base == other_batch
    assert len({base, other_n, other_model}) == 3


def test_fingerprints_do_not_move_with_the_stage_classes(tmp_path):
    # Fingerprints are part of every row id: these values were computed before the stages moved into
    # `stages.py` modules (commit 18c4cb1), so an existing store still resumes instead of doubling rows.
    raw = {"name": "pin", "executor": "local", "models": {"smol": {"name": "smollm2-135m-instruct"}}, "stages": [
        {"stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "smol", "config": {"n": 2, "seed": 0}},
        {"stage": "cdr", "input": {"dataset": "responses"}, "models": {"strong": "smol", "weak": "smol"}},
        {"stage": "judge", "input": {"dataset": "responses"}, "model": "smol"},
        {"stage": "annotators.judges.stages.win_rates:WinRatesStage", "name": "win_rates", "input": {"dataset": "judgments"}},
    ]}
    pipeline = load_pipeline(write_pipeline(tmp_path, raw, prompts(1)))
    assert {s.name: s.fingerprint for s in pipeline.stages} == {
        "generate": "212c686ccee0732b", "cdr": "eb5e8356b3eac7fa", "judge": "39842077bc178bd2",
        "win_rates": "3aba1adfde2e32e7"}  # the last one named by its dotted path: the same name
    assert set(FINGERPRINT_NAMES) == set(STAGE_TABLE)  # every shipped stage has its fixed name


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nstages:\n  - stage: generate\n    config: {n: 2\n")
    with pytest.raises(ConfigError, match=r"p\.yaml:\d+:\d+: malformed YAML"):
        load_pipeline(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline"):
        load_pipeline(tmp_path / "nope.yaml")


def test_unknown_stage(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["stage"] = "summon"
    with pytest.raises(ConfigError, match=r"stages\[0\]\.stage: unknown stage .summon. \(known: .*generate"):
        parse(raw, tmp_path)


def test_unknown_model(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["model"] = "gpt-9"
    with pytest.raises(ConfigError, match=r"stages\[0\]\.model: unknown model 'gpt-9' \(defined in models: m\)"):
        parse(raw, tmp_path)


def test_stage_config_field_is_named(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["config"]["n"] = 0
    with pytest.raises(ConfigError, match=r"stages\[0\]\.config\.n: Input should be greater than or equal to 1"):
        parse(raw, tmp_path)
    raw["stages"][0]["config"] = {"temprature": 0.5}
    with pytest.raises(ConfigError, match=r"stages\[0\]\.config\.temprature: Extra inputs are not permitted"):
        parse(raw, tmp_path)


def test_resources_and_top_level_fields_are_named(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["resources"]["batch_size"] = "many"
    with pytest.raises(ConfigError, match=r"stages\[0\]\.resources\.batch_size"):
        parse(raw, tmp_path)
    with pytest.raises(ConfigError, match=r"stages: Field required"):
        parse({"name": "x"}, tmp_path)
    with pytest.raises(ConfigError, match="a pipeline is a YAML mapping"):
        parse(["not", "a", "mapping"], tmp_path)


def test_duplicate_stage_names(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"].append(dict(raw["stages"][0]))
    with pytest.raises(ConfigError, match=r"stages\[1\]\.name: stage name 'generate' is used twice"):
        parse(raw, tmp_path)


def test_dotted_path_stage(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["stage"] = "generators.stages:GenerateStage"
    assert parse(raw, tmp_path).stages[0].stage_class.__name__ == "GenerateStage"
    raw["stages"][0]["stage"] = "factory.store:Store"
    with pytest.raises(ConfigError, match="is not a Stage class"):
        parse(raw, tmp_path)


def test_column_nothing_writes_is_rejected_before_work(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["config"]["prompt_column"] = "question"
    path = write_pipeline(tmp_path, raw, prompts(2))
    store = Store(tmp_path / "store")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.input\.seed: stage 'generate' reads column\(s\) question"):
        PipelineRunner(load_pipeline(path), store).check()
    assert store.datasets() == []


def test_unknown_input_dataset_is_rejected(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["input"] = {"dataset": "nowhere"}
    path = write_pipeline(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"stages\[0\]\.input\.dataset: data set 'nowhere' is not in the store"):
        PipelineRunner(load_pipeline(path), Store(tmp_path / "store")).check()


def test_a_later_stage_may_read_an_earlier_output(tmp_path):
    raw = generate_pipeline("org/m")
    second = dict(raw["stages"][0], name="again", input={"dataset": "responses"}, output="again")
    raw["stages"].append(second)
    path = write_pipeline(tmp_path, raw, prompts(2))
    store = Store(tmp_path / "store")
    assert PipelineRunner(load_pipeline(path), store).check() is None
    assert store.datasets() == []  # checking writes nothing
    raw["stages"].reverse()  # now the first stage reads what only a later one writes
    with pytest.raises(ConfigError, match=r"stages\[0\]\.input\.dataset: data set 'responses' is not in the store"):
        PipelineRunner(load_pipeline(write_pipeline(tmp_path / "reversed", raw, prompts(2))), store).check()


def test_broken_seed_line_writes_nothing(tmp_path):
    path = write_pipeline(tmp_path, generate_pipeline("org/m"), prompts(3))
    with (tmp_path / "prompts.jsonl").open("a") as handle:
        handle.write('{"prompt": "ok"}\n{"prompt": broken}\n')
    store = Store(tmp_path / "store")
    with pytest.raises(SeedFileError, match=r"prompts\.jsonl:5: invalid JSON"):
        PipelineRunner(load_pipeline(path), store).check()
    assert store.datasets() == []


def test_unknown_model_name_fails_before_launch(tmp_path):
    with pytest.raises(ConfigError, match=r"models\.m\.name: unknown model 'smollm3': not a bundled model"):
        parse(generate_pipeline("smollm3"), tmp_path)
    (tmp_path / "my-model").mkdir()
    planned = parse(generate_pipeline("my-model"), tmp_path).stages[0]  # a folder next to the YAML
    assert planned.models["model"].name == str(tmp_path / "my-model")
    parse(generate_pipeline("smollm2-135m-instruct"), tmp_path)


def test_train_steps_need_their_config_file(tmp_path):
    from factory.cli import plan_training  # the trainers' plug-in, as `factory run` passes it

    raw = generate_pipeline("org/m")
    raw["train"] = [{"kind": "sft", "config": "missing.yaml"}]
    with pytest.raises(ConfigError, match=r"train\[0\]\.config: training config missing\.yaml not found"):
        parse_pipeline(raw, tmp_path, "p.yaml", plan_training)
    with pytest.raises(ConfigError, match=r"train\[0\]: this loader was given no trainers"):
        parse(raw, tmp_path)
    raw["train"] = [{"kind": "pretrain", "config": "missing.yaml"}]
    with pytest.raises(ConfigError, match=r"train\[0\]\.kind"):
        parse_pipeline(raw, tmp_path, "p.yaml", plan_training)


@pytest.mark.parametrize(("field", "value", "where"), [
    ("output", "order", r"stages\[0\]\.output: .*invalid data set name 'order': it is a reserved SQL keyword"),
    ("output", "../../outside_store", r"stages\[0\]\.output: .*invalid data set name '\.\./\.\./outside_store'"),
    ("output", "a/b", r"stages\[0\]\.output: .*invalid data set name 'a/b'"),
    ("output", "Runs", r"stages\[0\]\.output: .*lower-case"),
    ("input", {"dataset": "select"}, r"stages\[0\]\.input\.dataset: .*reserved SQL keyword"),
    ("input", {"seed": "prompts.jsonl", "dataset": "Prompts"}, r"stages\[0\]\.input\.dataset: .*lower-case"),
])
def test_bad_data_set_names_fail_before_any_work(tmp_path, field, value, where):
    raw = generate_pipeline("org/m")
    raw["stages"][0][field] = value
    path = write_pipeline(tmp_path, raw, prompts(2))
    with pytest.raises(ConfigError, match=where):
        load_pipeline(path)
    assert not (tmp_path / "store").exists() and not (tmp_path.parent / "outside_store").exists()


def test_a_seed_file_stem_becomes_a_lower_case_name(tmp_path):
    raw = generate_pipeline("org/m")
    raw["stages"][0]["input"] = {"seed": "My Prompts.jsonl"}
    write_pipeline(tmp_path, raw, prompts(2))
    (tmp_path / "prompts.jsonl").rename(tmp_path / "My Prompts.jsonl")
    pipeline = load_pipeline(tmp_path / "pipeline.yaml")
    assert pipeline.seed_dataset(pipeline.stages[0]) == "my_prompts"
