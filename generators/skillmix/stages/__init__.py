"""Instruct-SkillMix's stages, one module each, named after the stage: `skillmix.extract` (extract.py),
`skillmix.skills` (skills.py), `skillmix.query_types` (query_types.py), `skillmix.generate`
(generate.py), `skillmix.dedup` (dedup.py). The logic they call lives one folder up."""
