"""The `transformers` backend: CPU or GPU, the embedded default."""

from __future__ import annotations

import copy
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from factory.engines.base import Completion, Engine, Generation, Prompt, SamplingParams, Scores
from factory.engines.scoring import (PromptTooLongError, check_scoring_fits, plain_prompt, prompt_token_ids,
                                     split_for_scoring)
from factory.engines.spec import ModelSpec
from factory.models import LOADING, resolve_model


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16  # ≈1.5x faster than fp32 on the CPUs here (DESIGN.md §7)


def pick_score_dtype(requested: str, generation_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """Scoring precision. 'auto': fp32 on CPU, where bf16 rounding moves summed log-probs by up to
    about a nat (enough to flip a CDR pair); on GPU the generation dtype (memory)."""
    if requested == "auto":
        return torch.float32 if device.type == "cpu" else generation_dtype
    if requested == "same":
        return generation_dtype
    return getattr(torch, requested)


__all__ = ["PromptTooLongError", "TransformersEngine", "pick_device", "pick_dtype", "pick_score_dtype", "plain_prompt"]


class TransformersEngine(Engine):
    def __init__(self, spec: ModelSpec, model: PreTrainedModel | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        """Load `spec.name`; tests may hand in an already built model and tokenizer."""
        self.name = spec.name
        self.spec = spec
        self.device = pick_device(spec.device)
        if spec.threads or self.device.type == "cpu":
            # Ray sets OMP_NUM_THREADS to the actor's CPUs; torch reads it only at import, so apply it.
            torch.set_num_threads(spec.threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
        path = resolve_model(spec.name) if model is None or tokenizer is None else None
        self.path = path
        dtype = pick_dtype(spec.dtype, self.device)
        with LOADING:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            self.model = (model or AutoModelForCausalLM.from_pretrained(path, dtype=dtype)).to(self.device, dtype).eval()
        self.score_dtype = pick_score_dtype(spec.score_dtype, dtype, self.device)
        self._scorer: PreTrainedModel | None = self.model if self.score_dtype == dtype else None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.stop_ids = self._stop_token_ids()
        self.max_context = int(
            getattr(self.model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        )

    def _stop_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    # ---- formatting ----------------------------------------------------------------------------

    def prompt_ids(self, conversation: Prompt) -> list[int]:
        return prompt_token_ids(self.tokenizer, conversation)

    @property
    def scorer(self) -> PreTrainedModel:
        """The model `logprobs` runs: the generation model, or (built on first use, so engines that only
        generate pay nothing) a copy in the scoring dtype, loaded from the checkpoint rather than
        up-cast from rounded bf16 weights."""
        if self._scorer is None:
            if self.path is not None:
                with LOADING:
                    loaded = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.score_dtype)
            else:
                loaded = copy.deepcopy(self.model)
            self._scorer = loaded.to(self.device, self.score_dtype).eval()
        return self._scorer

    def _left_padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(seq) for seq in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---- the three calls -----------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        prompts = [self.prompt_ids(conversation) for conversation in conversations]
        for prompt in prompts:
            if len(prompt) + sampling.max_new_tokens > self.max_context:
                raise PromptTooLongError(
                    f"prompt of {len(prompt)} tokens + max_new_tokens {sampling.max_new_tokens} "
                    f"exceeds the model's context of {self.max_context}"
                )
        ids, mask = self._left_padded(prompts)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        greedy = sampling.temperature == 0
        output = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            num_return_sequences=sampling.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.stop_ids),
        )
        new_tokens = output[:, ids.shape[1]:].tolist()
        generations = []
        for index, prompt in enumerate(prompts):
            generation = Generation(prompt_tokens=len(prompt))
            for sample in new_tokens[index * sampling.n : (index + 1) * sampling.n]:
                generation.completions.append(self._completion(sample))
            generations.append(generation)
        return generations

    def _completion(self, tokens: list[int]) -> Completion:
        stop = next((i for i, token in enumerate(tokens) if token in self.stop_ids), None)
        kept = tokens if stop is None else tokens[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(
            text=text.strip(),
            finish_reason="length" if stop is None else "stop",
            completion_tokens=len(kept) + (0 if stop is None else 1),  # the stop token was generated too
        )

    @torch.inference_mode()
    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        if len(conversations) != len(responses):
            raise ValueError(f"{len(conversations)} conversations but {len(responses)} responses")
        # prompt + response tokenised as one text, the response's tokens split off (factory/engines/scoring.py).
        pairs = [split_for_scoring(self.tokenizer, c, r) for c, r in zip(conversations, responses, strict=True)]
        check_scoring_fits(pairs, self.max_context, "the context of")
        # Responses to the same prompt share one forward pass over it (CDR, judges score N samples
        # of one prompt); lone pairs are scored in length-sorted batches to cut padding.
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (prompt, _) in enumerate(pairs):
            groups.setdefault(tuple(prompt), []).append(index)
        results: list[list[float]] = [[] for _ in pairs]
        lone = []
        for prompt, members in groups.items():
            if len(members) == 1:
                lone.extend(members)
                continue
            for start in range(0, len(members), self.spec.max_batch_size):
                chunk = members[start : start + self.spec.max_batch_size]
                scores = self._score_shared(list(prompt), [pairs[i][1] for i in chunk])
                for index, score in zip(chunk, scores, strict=True):
                    results[index] = score
        lone.sort(key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        for start in range(0, len(lone), self.spec.max_batch_size):
            chunk = lone[start : start + self.spec.max_batch_size]
            for index, score in zip(chunk, self._score_chunk([pairs[i] for i in chunk]), strict=True):
                results[index] = score
        return Scores(results, input_tokens=sum(len(prompt) + len(answer) for prompt, answer in pairs))

    def _score_shared(self, prompt: list[int], answers: list[list[int]]) -> list[list[float]]:
        """Score several responses to one prompt: the prompt runs once, its cache is copied per response."""
        prompt_ids = torch.tensor([prompt], device=self.device)
        head = self.scorer(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)  # only the last position is scored
        first = torch.log_softmax(head.logits[0, -1].float(), dim=-1)  # predicts each response's first token
        width = max(len(answer) for answer in answers)
        if width == 0:
            return [[] for _ in answers]
        ids = torch.full((len(answers), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(answers), len(prompt) + width), dtype=torch.long)
        mask[:, : len(prompt)] = 1
        for row, answer in enumerate(answers):  # right padding: pads come after every real token
            ids[row, : len(answer)] = torch.tensor(answer, dtype=torch.long)
            mask[row, len(prompt) : len(prompt) + len(answer)] = 1
        cache = head.past_key_values
        cache.batch_repeat_interleave(len(answers))
        logits = self.scorer(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), past_key_values=cache, use_cache=True,
        ).logits
        scores = []
        for row, answer in enumerate(answers):
            if not answer:
                scores.append([])
                continue
            tail = torch.log_softmax(logits[row, : len(answer) - 1].float(), dim=-1)
            targets = torch.tensor(answer, device=tail.device)
            values = [first[answer[0]].item()] + tail.gather(1, targets[1:].unsqueeze(1)).squeeze(1).tolist()
            scores.append(values)
        return scores

    def _score_chunk(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        sequences = [prompt + answer for prompt, answer in pairs]
        width = max(len(seq) for seq in sequences)
        ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(sequences):  # right padding: positions stay 0..len-1
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = self.scorer(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        scores = []
        for row, (prompt, answer) in enumerate(pairs):
            if not answer:
                scores.append([])
                continue
            # Logits at position t predict token t+1: the response's tokens are predicted from
            # positions len(prompt)-1 .. len(prompt)+len(answer)-2. Soft-max only those rows.
            start = len(prompt) - 1
            row_logits = logits[row, start : start + len(answer)].float()
            log_probs = torch.log_softmax(row_logits, dim=-1)
            targets = torch.tensor(answer, device=log_probs.device).unsqueeze(1)
            scores.append(log_probs.gather(1, targets).squeeze(1).tolist())
        return scores
