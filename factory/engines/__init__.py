"""Inference backends behind one interface (DESIGN.md §3)."""

from factory.engines.base import Completion, Conversation, Engine, Generation, Message, Prompt, SamplingParams, Scores
from factory.engines.spec import ModelSpec


def load_engine(spec: ModelSpec) -> Engine:
    """Load the model a spec names, on the backend it names. Expensive: once per actor."""
    if spec.backend == "transformers":
        from factory.engines.transformers_engine import TransformersEngine

        return TransformersEngine(spec)
    if spec.backend == "openai":
        from factory.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(spec)
    if spec.backend == "vllm":
        from factory.engines.vllm_engine import VLLMEngine

        return VLLMEngine(spec)
    raise ValueError(f"unknown backend {spec.backend!r}")


__all__ = [
    "Completion", "Conversation", "Engine", "Generation", "Message", "ModelSpec", "Prompt", "SamplingParams",
    "Scores", "load_engine",
]
