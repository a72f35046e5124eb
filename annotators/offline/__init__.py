"""Offline commands: what the CLI runs over finished data sets, never a pipeline stage.

- calibrate.py: `factory calibrate`, agreement of every evaluator in `judgments` with human labels
  -> data set `agreement`;
- agreement.py: the statistics it uses (Cohen's, weighted and Fleiss' kappa with bootstrap
  intervals), also read by the rating app's live agreement page;
- report.py: `factory report`, pictures and a Markdown page of agreement and win rates."""
