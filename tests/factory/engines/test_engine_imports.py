"""A backend imports only what it uses: the OpenAI-compatible client needs no torch (a CPU-only
client machine, a fast `factory run` start)."""

import subprocess
import sys


def test_the_openai_backend_does_not_import_torch():
    code = "import sys, factory.engines.openai_engine; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_shared_length_check_names_the_backends_limit():
    import pytest

    from factory.engines.scoring import PromptTooLongError, check_scoring_fits
    from factory.engines.transformers_engine import PromptTooLongError as TransformersPromptTooLong

    assert TransformersPromptTooLong is PromptTooLongError  # one class whichever backend raises it
    check_scoring_fits([([1, 2], [3])], 3, "max_model_len")
    with pytest.raises(PromptTooLongError, match=r"^prompt \+ response of 4 tokens exceed max_model_len 3$"):
        check_scoring_fits([([1], []), ([1, 2], [3, 4])], 3, "max_model_len")
