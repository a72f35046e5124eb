"""The LLM feedback loop (Fellowship of the LLMs, arXiv 2408.08688): write -> review -> revise."""
