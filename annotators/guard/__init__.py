"""Llama Guard safety labels: the `llama_guard` stage (stages.py); prompt rendering (render.py), chat
templates (template.py), output parsing (parse.py)."""

from annotators.guard.parse import GuardOutputError, GuardVerdict, parse_guard_output
from annotators.guard.render import render_guard_prompt, verdict_prefix, wrap_guard_prompt

__all__ = ["GuardOutputError", "GuardVerdict", "parse_guard_output", "render_guard_prompt", "verdict_prefix",
           "wrap_guard_prompt"]
