"""Instruct-SkillMix (arXiv 2408.14774; DESIGN.md §4), as factory stages.

Stages (stages/, one module per stage):
- `skillmix.extract` (stages/extract.py): ask a model for skills or query types -> `skillmix_mentions`
- `skillmix.skills` / `skillmix.query_types` (stages/skills.py, stages/query_types.py; shared base in
  aggregate.py): normalise, merge near-duplicates, count -> `skills` / `query_types` (users' own lists join here)
- `skillmix.generate` (stages/generate.py): k random skills + a cycled query type per example, one
  write -> continue -> critique -> refine -> rewrite conversation each -> `instructions`
  (shirker ablation included)
- `skillmix.dedup` (stages/dedup.py): drop near-duplicate instructions -> `instructions_dedup`
Logic: parsing.py (model answers), sampling.py (draws), conversation.py (the five-turn dialogue),
templates.py (+ templates/), lists.py (users' lists), diversity.py (embeddings, near-duplicates, the
diversity report's maths; its command: generators/offline/diversity.py), export.py (the `alpaca` export format).
"""
