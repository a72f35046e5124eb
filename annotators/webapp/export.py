"""`factory annotate export`: a campaign's human labels, aggregated the HelpSteer2 way, in the
HelpSteer2 formats (the same conversions as `factory export --format helpsteer2[-preference]`).

Aggregation runs on the campaign's current rows each time (the `helpsteer_aggregate` stage would
skip responses it aggregated before, which is right for a finished campaign but stale for one still
running). Per response: keep the `aggregate.keep` most agreeing raters, average, drop the response
when their helpfulness spans more than `aggregate.max_spread`. Per pair the same rule is applied to
the preference strength, and the kept raters' justifications are joined.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from annotators.helpsteer.exports import to_helpsteer2, to_helpsteer2_preference
from annotators.helpsteer.aggregate import aggregate, aggregate_preferences
from annotators.webapp.answers import AnswerBook
from annotators.webapp.campaign import Campaign
from factory.errors import FactoryError
from factory.export import prepare_output, write_dataset_folder
from factory.store import Store
from schemas.ratings import ATTRIBUTES

Format = Literal["helpsteer2", "helpsteer2-preference"]


def _groups(rows: dict[tuple[str, str], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by unit (response key or item id), raters in name order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for (rater, unit), row in sorted(rows.items()):
        groups.setdefault(unit, []).append(row)
    return groups


def aggregated_ratings(book: AnswerBook) -> pl.DataFrame:
    """One row per rated response: prompt, response, the five means, raters, kept_raters, spread, high_disagreement."""
    config, records = book.campaign.aggregate, []
    for key, rows in sorted(_groups(book.ratings).items()):
        if len(rows) < config.min_raters:
            continue
        result = aggregate([{a: row[a] for a in ATTRIBUTES} for row in rows], config.keep, config.max_spread)
        records.append({"response_key": key, "prompt": rows[0]["prompt"], "response": rows[0]["response"],
                        **result.scores, "raters": [r["rater"] for r in rows],
                        "kept_raters": [rows[i]["rater"] for i in result.kept], "spread": result.spread,
                        "high_disagreement": result.high_disagreement})
    schema = {"response_key": pl.String, "prompt": pl.String, "response": pl.String, **dict.fromkeys(ATTRIBUTES, pl.Float64),
              "raters": pl.List(pl.String), "kept_raters": pl.List(pl.String), "spread": pl.Float64,
              "high_disagreement": pl.Boolean}
    return pl.DataFrame(records, schema=schema)


def aggregated_preferences(book: AnswerBook) -> pl.DataFrame:
    """One row per judged pair with the kept raters' mean strength rounded half away from zero."""
    config, records = book.campaign.aggregate, []
    for item_id, rows in sorted(_groups(book.preferences).items()):
        if len(rows) < config.min_raters:
            continue
        # The same rule as the helpsteer_preference_aggregate stage.
        result = aggregate_preferences([int(row["preference_strength"]) for row in rows], config.keep, config.max_spread)
        kept = [rows[i] for i in result.kept]
        records.append({"item": item_id, "prompt": rows[0]["prompt"], "response_1": rows[0]["response_1"],
                        "response_2": rows[0]["response_2"], "preference_strength": result.strength,
                        "justification": "\n\n".join(f"{r['rater']}: {r['justification']}" for r in kept if r["justification"]),
                        "raters": [r["rater"] for r in rows], "kept_raters": [r["rater"] for r in kept],
                        "spread": result.spread, "high_disagreement": result.high_disagreement})
    schema = {"item": pl.String, "prompt": pl.String, "response_1": pl.String, "response_2": pl.String,
              "preference_strength": pl.Int64, "justification": pl.String, "raters": pl.List(pl.String),
              "kept_raters": pl.List(pl.String), "spread": pl.Float64, "high_disagreement": pl.Boolean}
    return pl.DataFrame(records, schema=schema)


@dataclass
class CampaignExport:
    path: Path
    rows: int
    dropped: int  # high-disagreement units left out


def export_campaign(campaign: Campaign, store: Store, out: str | Path, fmt: Format = "helpsteer2",
                    overwrite: bool = False) -> CampaignExport:
    """Write the aggregated labels as a Hugging Face dataset folder (save_to_disk + data/*.parquet)."""
    if fmt not in ("helpsteer2", "helpsteer2-preference"):
        raise FactoryError(f"unknown format {fmt!r} (choose helpsteer2 or helpsteer2-preference)")
    if fmt == "helpsteer2" and campaign.task == "preference" or fmt == "helpsteer2-preference" and campaign.task == "ratings":
        raise FactoryError(f"campaign {campaign.name} (task {campaign.task}) has no labels for --format {fmt}")
    out = prepare_output(out, overwrite)
    book = AnswerBook(campaign, store)
    if fmt == "helpsteer2":
        frame = aggregated_ratings(book)
        exported = to_helpsteer2(frame)
    else:
        frame = aggregated_preferences(book)
        exported = to_helpsteer2_preference(frame.filter(~pl.col("high_disagreement").fill_null(False)))
    raters = sorted({r for rs in frame["raters"].to_list() for r in rs}) if frame.height else []
    kept = exported.height
    hf = write_dataset_folder(out, exported, f"""# {campaign.title or campaign.name}: human labels ({fmt})

Exported by `factory annotate export` on {dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
from store `{store.location}`, rows with stage `{campaign.stage}`.

- rows: {kept} (aggregated from {frame.height}; {frame.height - kept} left out for high disagreement or missing scores)
- aggregation: keep the {campaign.aggregate.keep} most agreeing raters, drop spreads above {campaign.aggregate.max_spread},
  at least {campaign.aggregate.min_raters} rater(s) per unit
- raters: {", ".join(raters) or "none"}
""")
    return CampaignExport(out, hf.num_rows, frame.height - hf.num_rows)
