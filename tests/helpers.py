"""Test helpers: tiny models built in milliseconds, a fake engine, pipeline writers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from factory.engines import Completion, Conversation, Engine, Generation, SamplingParams

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "write a short poem about the sea and the sky",
    "explain why the sky is blue in two sentences",
    "user assistant system hello world answer question",
    "yes no maybe safe unsafe 0 1 2 3 4 A B",
] * 20


def build_tiny_model(folder: Path, max_positions: int = 256) -> Path:
    """A random 2-layer Llama (hidden 64) and a BPE tokenizer trained on a few sentences."""
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>")
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class FakeEngine(Engine):
    """Deterministic engine for unit tests of stage logic; `fail_on` makes prompts containing it raise."""

    def __init__(self, name: str = "fake", fail_on: str | None = None):
        self.name = name
        self.fail_on = fail_on
        self.calls: list[int] = []

    def generate(self, conversations: list[Conversation], sampling: SamplingParams) -> list[Generation]:
        self.calls.append(len(conversations))
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            if self.fail_on and self.fail_on in prompt:
                raise RuntimeError(f"cannot answer {prompt!r}")
            out.append(Generation(prompt_tokens=len(prompt.split()), completions=[
                Completion(f"answer {i} to {prompt}", "stop", 3 + i) for i in range(sampling.n)
            ]))
        return out

    def logprobs(self, conversations: list[Conversation], responses: list[str]) -> list[list[float]]:
        return [[-0.5] * len(response.split()) for response in responses]


def write_pipeline(folder: Path, config: dict[str, Any], prompts: list[dict[str, Any]] | None = None) -> Path:
    """Write pipeline.yaml (and prompts.jsonl when given) into folder; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    if prompts is not None:
        (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def generate_pipeline(model: str, executor: str = "local", n: int = 2, batch_size: int = 2,
                      max_new_tokens: int = 8, **stage: Any) -> dict[str, Any]:
    return {
        "name": "test",
        "executor": executor,
        "models": {"m": {"name": model, "dtype": "float32"}},
        "stages": [{
            "stage": "generate",
            "input": {"seed": "prompts.jsonl"},
            "model": "m",
            "config": {"n": n, "max_new_tokens": max_new_tokens, "seed": 1},
            "resources": {"batch_size": batch_size},
            **stage,
        }],
    }


def prompts(count: int) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "prompt": f"write a short poem number {i}"} for i in range(count)]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for servers a test starts)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Readiness of servers a test starts (moto, llama.cpp, Ray heads, the rating app). Sized for a loaded
# 2-core machine, where a server's first answer can take minutes: a probe gets several seconds, the
# whole wait several minutes, and a give-up says what it waited for and the last thing it saw.
PROBE_TIMEOUT_S = 10.0
READY_DEADLINE_S = 300.0


def wait_until_ready(what: str, probe: Callable[[], object], *, process: subprocess.Popen | None = None,
                     deadline_s: float = READY_DEADLINE_S, interval_s: float = 0.5) -> None:
    """Call `probe` until it returns something truthy without raising. Fails (AssertionError) when
    `process` exits first or `deadline_s` passes, naming `what`, the wait, and the probe's last error."""
    began = time.monotonic()
    last = "no probe finished"
    while True:
        try:
            if probe():
                return
            last = "the probe answered not ready"
        except Exception as exc:  # noqa: BLE001 - any failure of the probe is 'not yet'
            last = f"{type(exc).__name__}: {exc}"
        waited = time.monotonic() - began
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with code {process.returncode} after {waited:.0f}s "
                                 f"before it was ready (last probe: {last})")
        if waited >= deadline_s:
            raise AssertionError(f"gave up waiting for {what} after {waited:.0f}s (deadline {deadline_s:g}s; "
                                 f"last probe: {last})")
        time.sleep(interval_s)


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[dict[str, Any]]:
    """A Ray head on loopback with its job server and token authentication (as Ray 2.60 clusters
    have), for `ray job submit` and `factory submit` tests. Yields `address` (the job server),
    `env` (for clients: the token, this interpreter's scripts first on PATH), `token` and `temp`
    (Ray's session folder, which holds every job's working-dir copy). Stopped by killing exactly the
    processes started with its temp dir: `ray stop` would stop every Ray on the machine."""
    import psutil
    import requests

    temp = f"/tmp/rf-{uuid.uuid4().hex[:6]}"  # short: Ray's unix sockets live under it
    dashboard = free_port()
    token = "factory-test-" + uuid.uuid4().hex
    # The cluster's `python` is this interpreter, as on a cluster whose nodes installed the package.
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RAY_ADDRESS", None)
    try:
        start = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--num-cpus={num_cpus}",
             "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp}",
             f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
            capture_output=True, text=True, env=env, timeout=READY_DEADLINE_S)
        assert start.returncode == 0, start.stderr[-2000:]
        # Any HTTP answer (401 without the token included) means the job server listens.
        wait_until_ready(f"the Ray head's job server at 127.0.0.1:{dashboard} to answer GET /api/version",
                         lambda: requests.get(f"http://127.0.0.1:{dashboard}/api/version",
                                              timeout=PROBE_TIMEOUT_S) is not None)
        yield {"address": f"http://127.0.0.1:{dashboard}", "env": env, "token": token, "temp": temp}
    finally:
        for process in psutil.process_iter(["cmdline"]):
            if temp in " ".join(process.info["cmdline"] or []):
                try:
                    process.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(temp, ignore_errors=True)
