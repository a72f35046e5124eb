"""LLM evaluators of the Fellowship of the LLMs (arXiv 2408.08688): judge (single, pairwise, ranking),
jury and debate, all writing data set `judgments`; win rates are computed from it by stage
`win_rates`, agreement with humans by `factory calibrate` (annotators/offline/).

Stages: stages/, one module per stage. Logic: prompts.py (prompts, verdict parsing), core.py (the
three strategies as batched engine calls, votes), items.py (work items from responses), winrates.py
(raw and length-controlled win rates), exports.py (the `judge-dpo` export format)."""
