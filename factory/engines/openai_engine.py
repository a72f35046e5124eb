"""The `openai` backend: any OpenAI-compatible HTTP server (`vllm serve`, llama.cpp's server, a hosted API).

- `generate` uses /chat/completions (one request per conversation, `n` samples), many in flight;
  a pre-formatted prompt (a str, `factory.engines.Prompt`) goes to /completions as it is.
- `logprobs` uses /completions with `echo` + `logprobs` and `max_tokens: 0`-like requests: the
  server returns the log-probability of every prompt token, and the response's tokens are those
  starting at or after the end of the formatted prompt. Servers without it get a clear error.
- Retries with exponential backoff on 429, 5xx, timeouts and malformed JSON; a conversation that
  still fails becomes `Generation.error` (an error row), never a crash of the batch.
- Fails fast (factory/engines/breaker.py): a call has a total deadline across its retries; a request
  with no reply is checked against a liveness probe; after `breaker_failures` consecutive connection
  failures or timeouts the breaker opens and every call fails at once with the reason.
- The API key is read from the environment variable the spec names, sent as a header, and never
  stored, logged or put into a data set card.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from factory.engines.base import Completion, Conversation, Engine, Generation, Prompt, SamplingParams, Scores
from factory.engines.breaker import Breaker, CircuitOpenError, DeadlineError, HungServerError, Liveness, wait_for
from factory.engines.spec import ModelSpec
from factory.engines.scoring import format_prompt
from factory.redact import register, scrub

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """A request that failed after every retry."""

    def __init__(self, message: str):
        super().__init__(scrub(message))  # a 4xx body may echo our headers: no key in error text


class MissingCapabilityError(RuntimeError):
    """The server cannot do what the call needs (e.g. prompt log-probabilities)."""

    def __init__(self, message: str):
        super().__init__(scrub(message))


class OpenAIEngine(Engine):
    def __init__(self, spec: ModelSpec):
        assert spec.base_url is not None
        self.name = spec.name
        self.spec = spec
        self.base_url = spec.base_url.rstrip("/")
        self.session = requests.Session()
        key = os.environ.get(spec.api_key_env)
        if key:
            register(key)
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.pool = ThreadPoolExecutor(max_workers=spec.max_concurrency)
        # Room for every in-flight request, the probe, and requests abandoned while they time out.
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=2 * spec.max_concurrency + 2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.breaker = Breaker(spec.breaker_failures, spec.breaker_cooldown_s)
        self.liveness = Liveness(self._probe, cache_s=min(5.0, spec.probe_after_s))
        self.template = None
        if spec.tokenizer:
            from transformers import AutoTokenizer

            from factory.models import resolve_model

            self.template = AutoTokenizer.from_pretrained(resolve_model(spec.tokenizer))

    # ---- HTTP ----------------------------------------------------------------------------------

    def _probe(self) -> str | None:
        """None if the server answers anything at all (a 404 or 401 is an answer), else what went wrong."""
        try:
            self.session.get(f"{self.base_url}/models", timeout=self.spec.probe_timeout_s)
        except requests.RequestException as exc:
            return f"GET /models got no answer either ({type(exc).__name__} within {self.spec.probe_timeout_s:g}s)"
        return None

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        problem = "no attempt"
        begun = time.monotonic()
        deadline = begun + self.spec.deadline_s
        attempts = 0
        for attempt in range(self.spec.max_retries + 1):
            if attempt:
                pause = min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random())  # jittered backoff
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            try:
                self.breaker.check()
            except CircuitOpenError as exc:
                raise ServerError(f"{url}: {exc}") from None
            attempts += 1
            started = time.monotonic()
            read_timeout = max(0.1, min(self.spec.timeout_s, deadline - started))
            try:
                response = wait_for(
                    lambda: self.session.post(url, json=payload, timeout=read_timeout),
                    started=started, deadline=deadline, probe_after_s=self.spec.probe_after_s,
                    liveness=self.liveness, breaker=self.breaker,
                )
            except CircuitOpenError as exc:
                raise ServerError(f"{url}: {exc}") from None
            except (requests.Timeout, HungServerError, DeadlineError) as exc:
                problem = (f"timed out after {read_timeout:.3g}s" if isinstance(exc, requests.Timeout)
                           else f"{exc}")
                self.breaker.failure(problem)
                if time.monotonic() >= deadline:
                    break
                continue
            except requests.ConnectionError as exc:
                problem = f"cannot connect: {type(exc).__name__}"
                self.breaker.failure(problem)
                continue
            self.breaker.success()  # any HTTP reply: the server is alive, whatever it said
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:  # a client error will not get better by asking again
                raise ServerError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
            try:
                body = response.json()
            except ValueError:
                problem = f"malformed JSON: {response.text[:120]!r}"
                continue
            if not isinstance(body, dict):
                problem = f"unexpected JSON: {str(body)[:120]}"
                continue
            return body
        if time.monotonic() >= deadline or attempts < self.spec.max_retries + 1:
            raise ServerError(f"{url}: {problem} (deadline of {self.spec.deadline_s:g}s passed after "
                              f"{attempts} attempts)")
        raise ServerError(f"{url}: {problem} (after {attempts} attempts)")

    # ---- generate ------------------------------------------------------------------------------

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        return list(self.pool.map(lambda conversation: self._generate_one(conversation, sampling), conversations))

    def _generate_one(self, conversation: Prompt, sampling: SamplingParams) -> Generation:
        # Formatted text bypasses the server's chat template: /completions takes it as it is.
        path, key = ("/completions", "prompt") if isinstance(conversation, str) else ("/chat/completions", "messages")
        payload: dict[str, Any] = {
            "model": self.name, key: conversation, "n": sampling.n, "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature, "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        try:
            body = self._post(path, payload)
            choices = body["choices"]
            usage = body.get("usage") or {}
            if len(choices) < sampling.n and sampling.n > 1:
                # Some servers ignore n: ask for the rest one at a time.
                extra = [self._post(path, {**payload, "n": 1})["choices"][0]
                         for _ in range(sampling.n - len(choices))]
                choices = choices + extra
            per_choice = int(usage.get("completion_tokens", 0)) // max(1, len(body["choices"]))
            completions = [
                Completion(
                    text=((choice["message"].get("content") if "message" in choice else choice["text"]) or "").strip(),
                    finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                    completion_tokens=per_choice,
                )
                for choice in choices[: sampling.n]
            ]
            return Generation(prompt_tokens=int(usage.get("prompt_tokens", 0)), completions=completions)
        except (ServerError, KeyError, TypeError, IndexError, AttributeError) as exc:
            return Generation(prompt_tokens=0, error=scrub(f"{type(exc).__name__}: {exc}"))

    # ---- scoring -------------------------------------------------------------------------------

    def format_prompt(self, conversation: Prompt) -> tuple[str, str]:
        """The prompt text and what joins it to the response (the rules of factory/engines/scoring.py)."""
        if isinstance(conversation, str):
            return conversation, ""
        prompt, joiner, _ = format_prompt(self.template, conversation)
        return prompt, joiner

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        if len(conversations) != len(responses):
            raise ValueError(f"{len(conversations)} conversations but {len(responses)} responses")
        scored = list(self.pool.map(self._score_one, conversations, responses))
        return Scores([values for values, _ in scored], input_tokens=sum(read for _, read in scored))

    def _score_one(self, conversation: Prompt, response: str) -> tuple[list[float], int]:
        """The response's token log-probabilities, and how many tokens the server read (prompt + response)."""
        prompt, joiner = self.format_prompt(conversation)
        joiner = joiner if response else ""
        text = prompt + joiner + response
        body = self._post("/completions", {
            "model": self.name, "prompt": text, "echo": True, "logprobs": 1,
            "max_tokens": 1, "temperature": 0.0,
        })
        try:
            choice = body["choices"][0]
            detail = choice["logprobs"]
            tokens, values, offsets = detail["tokens"], detail["token_logprobs"], detail["text_offset"]
        except (KeyError, IndexError, TypeError):
            raise MissingCapabilityError(
                f"{self.base_url} returned no prompt log-probabilities: the openai backend scores through "
                "/completions with echo=true and logprobs, which this server does not support"
            ) from None
        # The echo is prompt + response + generated tokens. Servers disagree on text offsets (llama.cpp
        # counts special tokens as empty), so walk back from the end of the echoed input instead,
        # taking tokens until they cover the response's characters (a token may straddle the seam).
        prompt_count = (body.get("usage") or {}).get("prompt_tokens")
        echoed = list(zip(tokens, values, offsets, strict=False))
        echoed = echoed[:prompt_count] if prompt_count else [e for e in echoed if e[2] < len(text)]
        if len(echoed) < 2:
            raise MissingCapabilityError(f"{self.base_url} did not echo the prompt; cannot score responses")
        scored: list[float] = []
        covered, target = 0, len(joiner + response)
        for token, value, _ in reversed(echoed):
            if covered >= target:
                break
            scored.append(value)
            covered += len(token)
        scored.reverse()
        if any(value is None for value in scored):
            raise MissingCapabilityError(f"{self.base_url} returned null log-probabilities for prompt tokens")
        return [float(value) for value in scored], len(echoed)
