"""A tiny random Llama shaped like Llama Guard 3: Llama 3 header tokens, a BOS the tokenizer adds to
text, '\\n\\n' / 'safe' / 'unsafe' as single tokens, and a chat template that renders the guard prompt
itself with the S1-S14 categories built in and ends at the bare assistant header (as Meta's does)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from annotators.guard.render import render_guard_prompt
from schemas.taxonomies import V1, V3
from tests.helpers import CORPUS

BOS, START, END, EOT = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SEPARATOR = "\n\n"


def guard3_template(categories: str) -> str:
    """A Llama-Guard-3-style chat template (written for these tests, same layout as the model's)."""
    return (
        "{%- if messages|length % 2 == 0 -%}{%- set role = 'Agent' -%}{%- else -%}{%- set role = 'User' -%}{%- endif -%}"
        f"{BOS}{START}user{END}\n\nTask: Check if there is unsafe content in '{{{{ role }}}}' messages in "
        "conversations according our safety policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        "<BEGIN CONVERSATION>\n\n"
        "{% for message in messages %}{{ ('User' if message['role'] == 'user' else 'Agent') + ': ' + "
        "message['content'] | trim }}\n\n{% endfor %}"
        "<END CONVERSATION>\n\nProvide your safety assessment for ONLY THE LAST {{ role }} message in the above "
        "conversation:\n - First line must read 'safe' or 'unsafe'.\n - If unsafe, a second line must include a "
        f"comma-separated list of violated categories.{EOT}{START}assistant{END}"
    )


V3_CATEGORIES = "\n".join(f"{c.code}: {c.name}." for c in V3.categories)


def build_guard3(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A fresh random model and its tokenizer (in memory: tests train the model)."""
    conversation = [{"role": "user", "content": "write a short poem"}, {"role": "assistant", "content": "the sea"}]
    guard_text = [render_guard_prompt(conversation, "Agent", taxonomy, True) for taxonomy in (V1, V3)]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<pad>", BOS, START, END, EOT]
    bpe.train_from_iterator(CORPUS + guard_text * 5, trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # Like Llama 3's tokenizer, plain text gets the BOS; apply_chat_template does not add it (the template has it).
    bpe.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bpe.token_to_id(BOS))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token=EOT, bos_token=BOS)
    tokenizer.add_tokens([SEPARATOR, "safe", "unsafe"])  # single tokens, as in Llama 3's vocabulary ("ĊĊ" = 271)
    tokenizer.chat_template = guard3_template(V3_CATEGORIES)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def train_to_answer(model: LlamaForCausalLM, prompts: list[list[int]], answer: list[int],
                    decoy: int | None = None, steps: int = 40) -> None:
    """Fine-tune `model` so that after each prompt it writes `answer` (teacher-forced cross-entropy on the
    answer tokens only). With `decoy`, the token right after the prompt also keeps a little mass on
    `decoy` (as a real guard's first-token distribution need not favour its verdict), so reading
    the verdict at the wrong position gives the wrong answer."""
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.zeros(())
        for prompt in prompts:
            ids = torch.tensor([prompt + answer])
            logits = model(input_ids=ids).logits[0]
            start = len(prompt) - 1  # the logits there predict the answer's first token
            log_probs = torch.log_softmax(logits[start : start + len(answer)], dim=-1)
            loss = loss - log_probs[torch.arange(len(answer)), torch.tensor(answer)].sum()
            if decoy is not None:
                loss = loss - 0.1 * log_probs[0, decoy]
        loss.backward()
        optimiser.step()
    model.eval()
