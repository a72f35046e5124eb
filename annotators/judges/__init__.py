"""LLM evaluators of the Fellowship of the LLMs (arXiv 2408.08688): judge (single, pairwise, ranking),
jury and debate, all writing data set `judgments`; agreement and win rates are computed from it."""
