"""Generation: stage `generate` (n sampled responses per prompt) in stages.py; skillmix/
(Instruct-SkillMix, its stages in skillmix/stages/) and feedback/ (the generator-reviewer loop, its
stages in feedback/stages.py). docs/architecture.md has the map."""
