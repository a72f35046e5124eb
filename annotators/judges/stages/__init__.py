"""The evaluators' stages, one module each, named after the stage: `judge` (judge.py), `jury`
(jury.py), `debate` (debate.py), `win_rates` (win_rates.py). The logic they call lives one folder up."""
