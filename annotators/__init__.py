"""Annotation: one folder per method, each with its stages in `stages.py` (or `stages/`, one module
per stage) beside the logic they call: cdr/ (CDR rewards and pairs), guard/ (Llama Guard safety
labels), helpsteer/ (HelpSteer2 ratings and preferences, human label import), judges/ (judge, jury,
debate, win rates). offline/: commands over finished data sets (`factory calibrate`, `factory
report`). webapp/: the human rating app (`factory annotate`). grouping.py: work items made of several
rows, shared by stages; exports.py: the HelpSteer2 export formats. docs/architecture.md has the map."""
