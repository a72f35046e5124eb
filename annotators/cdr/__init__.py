"""CDR: customizable density-ratio rewards and on-policy preference pairs (arXiv 2411.02481).

Stages `cdr` and `cdr_pairs`: stages.py. Logic: customise.py (layouts, criteria, exemplars), router.py
(domain labels), pairs.py (which responses make a pair)."""
