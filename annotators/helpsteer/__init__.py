"""HelpSteer2 attribute ratings, their aggregation, HelpSteer2-Preference strengths, human label import.

Stages (helpsteer, import_ratings, import_preferences, helpsteer_aggregate, helpsteer_preference,
helpsteer_preference_aggregate): stages.py. Logic: rubrics.py, parse.py, preference.py, aggregate.py, human.py."""
