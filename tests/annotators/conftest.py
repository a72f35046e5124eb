"""A second tiny model for two-model stages: other weights, another tokenizer, and no chat template
(a base model, formatted by the engine's plain 'User: ... Assistant:' fallback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.helpers import CORPUS


def build_base_model(folder: Path) -> Path:
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=280, special_tokens=["<pad>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory) -> Path:
    return build_base_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def base_engine(base_model_dir):
    from factory.engines import ModelSpec, load_engine

    return load_engine(ModelSpec(name=str(base_model_dir), dtype="float32"))


@pytest.fixture(scope="session")
def long_model_dir(tmp_path_factory) -> Path:
    """The tiny chat model with room for long judge prompts (guard and rubric prompts run to ~1k tiny tokens)."""
    from tests.helpers import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_positions=2048)


@pytest.fixture(scope="session")
def long_engine(long_model_dir):
    from factory.engines import ModelSpec, load_engine

    return load_engine(ModelSpec(name=str(long_model_dir), dtype="float32"))


@pytest.fixture(scope="session")
def guard_model_dir(tmp_path_factory) -> Path:
    """The long tiny model with 'safe' and 'unsafe' as single tokens, as in Llama Guard's tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.helpers import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-guard"), max_positions=2048)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["safe", "unsafe"])
    model = AutoModelForCausalLM.from_pretrained(folder)
    torch.manual_seed(2)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
