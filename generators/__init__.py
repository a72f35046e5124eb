"""Generation stages: sampling responses, Instruct-SkillMix, multi-agent feedback loops."""
