"""Offline commands: what is run by hand over finished data sets, never a pipeline stage.

- diversity.py: `python -m generators.offline.diversity`, the diversity report of a text column."""
