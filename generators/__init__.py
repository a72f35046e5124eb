"""Generation: stage `generate` (n sampled responses per prompt) in stages.py; skillmix/
(Instruct-SkillMix, its stages in skillmix/stages/) and feedback/ (the generator-reviewer loop, its
stages in feedback/stages.py). offline/: commands run by hand over finished data sets (the diversity
report). docs/architecture.md has the map."""
