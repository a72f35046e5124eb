"""CDR: customizable density-ratio rewards and on-policy preference pairs (arXiv 2411.02481)."""
