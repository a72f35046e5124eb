"""HelpSteer2 attribute ratings, their aggregation, HelpSteer2-Preference strengths, human label import."""
