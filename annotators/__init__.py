"""Annotation stages: CDR preferences, safety labels, attribute ratings, judges."""
