"""The `vllm` backend (GPU nodes, extra `vllm`): the offline `vllm.LLM` engine inside the stage actor.

Scoring uses `prompt_logprobs` on prompt + response token ids (teacher forcing); with prefix
caching on, N responses to one prompt reuse the prompt's KV blocks. vLLM's PyPI wheel has CUDA
kernels only, so this backend needs a GPU; its tests carry the `gpu` marker.
"""

from __future__ import annotations

from factory.engines.base import Completion, Engine, Generation, Prompt, SamplingParams
from factory.engines.spec import ModelSpec
from factory.models import resolve_model


class VLLMEngine(Engine):
    def __init__(self, spec: ModelSpec):
        from vllm import LLM  # imported here: CPU machines never install vllm

        self.name = spec.name
        self.spec = spec
        self.llm = LLM(
            model=resolve_model(spec.name),
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            max_model_len=spec.max_model_len,
            dtype="auto" if spec.dtype == "auto" else spec.dtype,
            enable_prefix_caching=True,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def prompt_ids(self, conversation: Prompt) -> list[int]:
        if isinstance(conversation, str):  # already formatted: no chat template
            return self.tokenizer(conversation).input_ids
        if self.tokenizer.chat_template:
            encoded = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
            return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
        from factory.engines.scoring import plain_prompt

        return self.tokenizer(plain_prompt(conversation)).input_ids

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        from vllm import SamplingParams as VLLMSampling
        from vllm.inputs import TokensPrompt

        params = VLLMSampling(
            n=sampling.n, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
            top_p=sampling.top_p, seed=sampling.seed,
        )
        prompts = [TokensPrompt(prompt_token_ids=self.prompt_ids(c)) for c in conversations]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            Generation(
                prompt_tokens=len(output.prompt_token_ids),
                completions=[
                    Completion(
                        text=sample.text.strip(),
                        finish_reason="length" if sample.finish_reason == "length" else "stop",
                        completion_tokens=len(sample.token_ids),
                    )
                    for sample in output.outputs
                ],
            )
            for output in outputs
        ]

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        from vllm import SamplingParams as VLLMSampling
        from vllm.inputs import TokensPrompt

        if len(conversations) != len(responses):
            raise ValueError(f"{len(conversations)} conversations but {len(responses)} responses")
        from factory.engines.scoring import split_for_scoring

        # prompt + response tokenised as one text, the same split on every backend (factory/engines/scoring.py).
        pairs = [split_for_scoring(self.tokenizer, c, r) for c, r in zip(conversations, responses, strict=True)]
        params = VLLMSampling(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=prompt + answer) for prompt, answer in pairs], params, use_tqdm=False
        )
        scores = []
        for (prompt, answer), output in zip(pairs, outputs, strict=True):
            # prompt_logprobs[t] maps token ids to Logprob for position t; the actual token is always in it.
            positions = output.prompt_logprobs[len(prompt) : len(prompt) + len(answer)]
            scores.append([position[token].logprob for position, token in zip(positions, answer, strict=True)])
        return scores
