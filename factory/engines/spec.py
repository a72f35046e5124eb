"""How a pipeline names a model: the `models:` section of the YAML."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Bundled name (see `factory models`), a local folder, or a hub id.")
    backend: Literal["transformers"] = Field(default="transformers", description="Inference backend.")
    device: str = Field(default="auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1'...")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="'auto': bf16 where the hardware has it (CPU here, most GPUs), else fp16 on GPU."
    )
    max_batch_size: int = Field(default=16, ge=1, description="Most sequences in one forward pass when scoring.")
    threads: int | None = Field(default=None, ge=1, description="Torch CPU threads; default: what the actor was given.")
