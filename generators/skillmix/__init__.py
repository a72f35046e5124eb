"""Instruct-SkillMix (arXiv 2408.14774; DESIGN.md §4), as factory stages.

- `skillmix.extract` (extract.py): ask a model for skills or query types -> `skillmix_mentions`
- `skillmix.skills` / `skillmix.query_types` (aggregate.py): normalise, merge near-duplicates,
  count -> `skills` / `query_types` (users' own lists join here)
- `skillmix.generate` (generate.py): k random skills + a cycled query type per example, one
  write -> continue -> critique -> refine -> rewrite conversation each -> `instructions`
  (shirker ablation included)
- `skillmix.dedup` (dedup.py): drop near-duplicate instructions -> `instructions_dedup`
- diversity.py: mean pairwise cosine / near-duplicate report (`python -m generators.skillmix.diversity`)
- export.py: the `alpaca` export format
"""
