"""Llama Guard safety labels: prompt rendering, output parsing, the `llama_guard` stage."""

from annotators.guard.parse import GuardOutputError, GuardVerdict, parse_guard_output
from annotators.guard.render import render_guard_prompt, verdict_prefix, wrap_guard_prompt

__all__ = ["GuardOutputError", "GuardVerdict", "parse_guard_output", "render_guard_prompt", "verdict_prefix",
           "wrap_guard_prompt"]
