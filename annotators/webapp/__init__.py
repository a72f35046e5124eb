"""Human rating campaigns: a web app that writes HelpSteer2 ratings and preferences into the same
tables as the LLM raters (`factory annotate serve|export`, docs/webapp.md)."""
