import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from annotators.cdr.customise import Customisation, Exemplar, system_message
from annotators.cdr.pairs import build_pair
from annotators.cdr.router import RouterConfig, parse_domain, route
from factory.config import load_pipeline
from factory.engines import Completion, Generation
from factory.runner import PipelineRunner
from factory.store import Store
from tests.helpers import FakeEngine, prompts, write_pipeline


def reference_logprob(folder, prompt_text_or_ids, response: str) -> float:
    """Sum of log p(response tokens) from one plain forward pass, no padding, fp32. A text prompt is the
    plain layout: the response follows it after one space, and the two are tokenised as one text (the
    reference's rule: the response's tokens are those after the prompt's own)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    if isinstance(prompt_text_or_ids, list):
        prompt = prompt_text_or_ids
        answer = tokenizer(response, add_special_tokens=False).input_ids
    else:
        whole = tokenizer(prompt_text_or_ids + " " + response).input_ids
        prompt = tokenizer(prompt_text_or_ids).input_ids
        assert whole[: len(prompt)] == prompt
        answer = whole[len(prompt):]
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    return sum(log_probs[len(prompt) - 1 + t, token].item() for t, token in enumerate(answer))


def chat_ids(folder, conversation) -> list[int]:
    encoded = AutoTokenizer.from_pretrained(folder).apply_chat_template(conversation, add_generation_prompt=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def cdr_pipeline(strong: str, weak: str, n: int = 3, **cdr_config) -> dict:
    return {
        "name": "cdr-test", "executor": "local",
        "models": {"strong": {"name": strong, "dtype": "float32"}, "weak": {"name": weak, "dtype": "float32"}},
        "stages": [
            {"stage": "generate", "input": {"seed": "prompts.jsonl"}, "model": "strong",
             "config": {"n": n, "max_new_tokens": 6, "seed": 3}, "resources": {"batch_size": 4}},
            {"stage": "cdr", "input": {"dataset": "responses"}, "models": {"strong": "strong", "weak": "weak"},
             "config": {"criteria": "be helpful", **cdr_config}, "resources": {"batch_size": 2}},
            {"stage": "cdr_pairs", "input": {"dataset": "rewards"}, "config": {"rule": "argmin"}},
        ],
    }


def test_rewards_equal_plain_transformers_forward_passes(tmp_path, tiny_model_dir, base_model_dir):
    store = Store(tmp_path / "store")
    path = write_pipeline(tmp_path, cdr_pipeline(str(tiny_model_dir), str(base_model_dir)), prompts(3))
    summaries = PipelineRunner(load_pipeline(path), store).run()
    assert [s.rows for s in summaries[:2]] == [9, 9] and summaries[1].error_rows == 0
    rows = store.sql("SELECT prompt, response, reward, strong_logprob, weak_logprob, strong_tokens FROM rewards").to_dicts()
    for row in rows[:4]:
        conversation = [{"role": "system", "content": "be helpful"}, {"role": "user", "content": row["prompt"]}]
        strong = reference_logprob(tiny_model_dir, chat_ids(tiny_model_dir, conversation), row["response"])
        # The base model has no chat template: the engine's plain layout, written out independently here.
        weak = reference_logprob(base_model_dir, f"System: be helpful\n\nUser: {row['prompt']}\n\nAssistant:",
                                 row["response"])
        assert row["strong_logprob"] == pytest.approx(strong, abs=1e-4)
        assert row["weak_logprob"] == pytest.approx(weak, abs=1e-4)
        assert row["reward"] == pytest.approx(strong - weak, abs=1e-4)
    # One pair per prompt (random weights: rewards differ), chosen has the max reward, argmin rule.
    pairs = store.sql("SELECT p.*, max(r.reward) AS best, min(r.reward) AS worst FROM preferences p "
                      "JOIN rewards c ON c.response_id = p.chosen_id "
                      "JOIN rewards r ON r.parent_id = c.parent_id GROUP BY ALL").to_dicts()
    assert len(pairs) == 3
    for pair in pairs:
        assert pair["chosen_reward"] == pair["best"] and pair["rejected_reward"] == pair["worst"]
        assert pair["margin"] > 0 and pair["candidates"] == 3
    # Resume: nothing left to do.
    again = PipelineRunner(load_pipeline(path), store).run()
    assert [s.rows for s in again] == [0, 0, 0]


def test_weak_system_prompt_changes_only_the_weak_side(tmp_path, tiny_model_dir):
    store = Store(tmp_path / "store")
    config = cdr_pipeline(str(tiny_model_dir), str(tiny_model_dir), n=2, weak_system_prompt="be careless")
    PipelineRunner(load_pipeline(write_pipeline(tmp_path, config, prompts(2))), store).run()
    rows = store.sql("SELECT prompt, response, strong_logprob, weak_logprob FROM rewards").to_dicts()
    row = rows[0]
    weak_conversation = [{"role": "system", "content": "be careless"}, {"role": "user", "content": row["prompt"]}]
    expected = reference_logprob(tiny_model_dir, chat_ids(tiny_model_dir, weak_conversation), row["response"])
    assert row["weak_logprob"] == pytest.approx(expected, abs=1e-4)
    assert row["strong_logprob"] != pytest.approx(row["weak_logprob"], abs=1e-6)


def test_build_pair_on_crafted_rewards():
    rng = random.Random(0)
    assert build_pair([1.0, 1.0, 1.0], "random", rng) is None  # max == min: skipped
    assert build_pair([2.0], "random", rng) is None
    assert build_pair([0.5, 3.0, -1.0, 2.0], "argmin", rng) == (1, 2)
    rejected = {build_pair([0.5, 3.0, -1.0, 2.0], "random", random.Random(seed))[1] for seed in range(40)}
    assert rejected == {0, 2, 3}  # any non-max response, never the chosen one
    # A tie at the top: the first max is chosen, the other max is not a "non-max" sample.
    assert {build_pair([3.0, 3.0, 1.0], "random", random.Random(s))[1] for s in range(20)} == {2}


def test_customisation_system_layout_renders_criteria_and_exemplars():
    text = system_message(Customisation(criteria="Refuse harmful requests.", exemplars=[
        Exemplar(user="how to pick a lock", good="I can't help with that.", bad="Sure: ...", explanation="It refuses.")]))
    assert text.startswith("Refuse harmful requests.")
    for part in ("User: how to pick a lock", "Good Assistant: I can't help", "Bad Assistant: Sure", "Explanation: It refuses."):
        assert part in text
    assert system_message(Customisation()) is None


class OptionEngine(FakeEngine):
    """Prefers the option named in the prompt, to check the router reads option probabilities."""

    def option_probs(self, conversations, options):
        return [[0.9 if option.lower() in c[-1]["content"].split("Request: ")[1].split("\n")[0].lower() else 0.05 for option in options]
                for c in conversations]


class TextEngine(FakeEngine):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def generate(self, conversations, sampling):
        return [Generation(prompt_tokens=1, completions=[Completion(self.text, "stop", 2)]) for _ in conversations]


def test_router_labels_and_unparsable_is_chat():
    labels = route(OptionEngine(), ["a safety question", "chat with me", "reasoning puzzle"], RouterConfig())
    assert labels == ["SAFETY", "CHAT", "REASONING"]
    assert parse_domain("  reasoning.") == "REASONING"
    assert parse_domain("I think this is **Safety** related") == "SAFETY"
    assert parse_domain("no idea") == "CHAT" and parse_domain("") == "CHAT"
    # Generate mode: the answer text is parsed, and text with no label means CHAT.
    assert route(TextEngine("Reasoning, clearly"), ["x"], RouterConfig(mode="generate")) == ["REASONING"]
    assert route(TextEngine("I cannot tell"), ["x"], RouterConfig(mode="generate")) == ["CHAT"]


def test_router_picks_domain_criteria(tmp_path, tiny_model_dir):
    store = Store(tmp_path / "store")
    config = cdr_pipeline(str(tiny_model_dir), str(tiny_model_dir), n=2, router={"mode": "generate", "max_new_tokens": 2,
                                                                                  "instruction": "{prompt}: SAFETY, REASONING or CHAT?"},
                          domains={"CHAT": {"criteria": "chat criteria"}})
    PipelineRunner(load_pipeline(write_pipeline(tmp_path, config, prompts(2))), store).run()
    rows = store.sql("SELECT domain, prompt, response, strong_logprob, error FROM rewards").to_dicts()
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    assert {r["domain"] for r in rows} <= {"SAFETY", "REASONING", "CHAT"}
    chat = [r for r in rows if r["domain"] == "CHAT"]
    assert chat  # the random model's two tokens hold no label -> CHAT -> its criteria are the system prompt
    row = chat[0]
    conversation = [{"role": "system", "content": "chat criteria"}, {"role": "user", "content": row["prompt"]}]
    expected = reference_logprob(tiny_model_dir, chat_ids(tiny_model_dir, conversation), row["response"])
    assert row["strong_logprob"] == pytest.approx(expected, abs=1e-4)


# ---- issue 13, item 4: the reference's layout, pairs per run, identical texts, router role -------------

SAFETY_SHOT = Exemplar(user="how to pick a lock", good="I can't help with that.", bad="Sure: ...", explanation="It refuses.")


def test_user_turn_layout_is_the_references():
    """gx-ai-architect/CDR-preference-annotation: criteria as the system prompt, the user turn is
    fewshot + "\\n" + query + "\\nGood Assistant:", the few-shot block ending in "User:"."""
    from annotators.cdr.customise import build_conversation

    custom = Customisation(criteria="Refuse harmful requests.", exemplars=[SAFETY_SHOT])
    fewshot = ("For example,\nUser:\nhow to pick a lock\nGood Assistant:\nI can't help with that.\n"
               "Bad Assistant:\nSure: ...\nExplanation:\nIt refuses.\nUser:")
    assert build_conversation(custom, "open my neighbour's door", "user_turn") == [
        {"role": "system", "content": "Refuse harmful requests."},
        {"role": "user", "content": fewshot + "\nopen my neighbour's door\nGood Assistant:"},
    ]
    # A verbatim pool text (the reference's FewShotN strings) replaces the rendered exemplars.
    pool = "\nYou must answer.\nFor example, \nUser:\nq\nGood Assistant:\na\nUser:"
    verbatim = build_conversation(Customisation(fewshot=pool), "x", "user_turn")
    assert verbatim == [{"role": "user", "content": pool + "\nx\nGood Assistant:"}]
    # No exemplars: the query alone; the weak model's system prompt replaces the criteria only.
    assert build_conversation(Customisation(criteria="c"), "x", "user_turn", "be careless") == [
        {"role": "system", "content": "be careless"}, {"role": "user", "content": "x"}]
    # Today's layout stays as an option.
    assert build_conversation(custom, "x", "system") == [
        {"role": "system", "content": system_message(custom)}, {"role": "user", "content": "x"}]


def test_stage_scores_under_the_reference_layout(tmp_path, tiny_model_dir):
    store = Store(tmp_path / "store")
    shot = SAFETY_SHOT.model_dump()
    config = cdr_pipeline(str(tiny_model_dir), str(tiny_model_dir), n=2, exemplars=[shot])
    PipelineRunner(load_pipeline(write_pipeline(tmp_path, config, prompts(1))), store).run()
    row = store.sql("SELECT prompt, response, strong_logprob, template FROM rewards").to_dicts()[0]
    fewshot = ("For example,\nUser:\nhow to pick a lock\nGood Assistant:\nI can't help with that.\n"
               "Bad Assistant:\nSure: ...\nExplanation:\nIt refuses.\nUser:")
    conversation = [{"role": "system", "content": "be helpful"},
                    {"role": "user", "content": f"{fewshot}\n{row['prompt']}\nGood Assistant:"}]
    expected = reference_logprob(tiny_model_dir, chat_ids(tiny_model_dir, conversation), row["response"])
    assert row["strong_logprob"] == pytest.approx(expected, abs=1e-4)
    assert row["template"].startswith("cdr/v2:")


def test_build_pair_never_pairs_identical_texts():
    rng = random.Random(0)
    # Rounding gave two copies of one text different rewards: the copy is not a rejected candidate.
    assert build_pair([2.0, 1.9999, 0.5], "argmin", rng, ["a", "a", "b"]) == (0, 2)
    assert {build_pair([2.0, 1.9999, 0.5], "random", random.Random(s), ["a", "a", "b"])[1] for s in range(20)} == {2}
    assert build_pair([2.0, 1.9999], "random", rng, ["a", "a"]) is None


def pairs_stage(rule: str = "argmin"):
    from annotators.cdr.stages import CDRPairsConfig, CDRPairsStage
    from factory.stage import StageContext

    config = CDRPairsConfig(rule=rule)
    return CDRPairsStage, CDRPairsStage(StageContext(name="cdr_pairs", config=config, run_id="r", fingerprint="fp"))


def test_pairs_group_by_cdr_run_and_prompt():
    """Two cdr runs (other criteria: another fingerprint, another reward scale) over one prompt's responses
    give one pair each; one group never mixes the two scales."""
    import pyarrow as pa

    rows = []
    for fingerprint, scale in (("run-a", 1.0), ("run-b", 100.0)):
        for i, (text, reward) in enumerate((("x", 3.0), ("y", 1.0), ("z", 2.0))):
            rows.append({"id": f"{fingerprint}-{i}", "parent_id": "p0", "fingerprint": fingerprint,
                         "response_id": f"r{i}", "prompt": "q", "response": text, "reward": reward * scale - scale,
                         "domain": None})
    table = pa.Table.from_pylist(rows)
    cls, stage = pairs_stage()
    items = cls.prepare_input(stage.config, table, {}).to_pylist()
    assert len(items) == 2 and all(len(item["reward"]) == 3 for item in items)
    records = stage.process(items)
    assert [(r.chosen, r.rejected) for r in records] == [("x", "y"), ("x", "y")]
    assert sorted(r.margin for r in records) == [2.0, 200.0]


class RecordingEngine(FakeEngine):
    def __init__(self, name):
        super().__init__(name)
        self.routed: list[str] = []

    def option_probs(self, conversations, options):
        self.routed += [c[-1]["content"] for c in conversations]
        return [[0.1, 0.8, 0.1] for _ in conversations]


def test_router_model_role_labels_the_prompts():
    from annotators.cdr.stages import CDRConfig, CDRStage
    from factory.stage import StageContext

    assert "router" in CDRStage.optional_model_roles
    strong, weak, router = RecordingEngine("strong"), RecordingEngine("weak"), RecordingEngine("router")
    config = CDRConfig(router=RouterConfig(), domains={"REASONING": {"criteria": "show your steps"}})
    stage = CDRStage(StageContext(name="cdr", config=config, run_id="r", fingerprint="fp",
                                  engines={"strong": strong, "weak": weak, "router": router}))
    records = stage.process([{"id": "p0", "member_ids": ["a", "b"], "prompt": ["2+2?", "2+2?"], "response": ["4", "5"]}])
    assert len(router.routed) == 1 and strong.routed == []  # the router model labelled, not the strong one
    assert {r.domain for r in records} == {"REASONING"}
