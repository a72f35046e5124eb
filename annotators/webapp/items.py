"""The campaign's items, read once when the app starts: one response (ratings) or a pair of
responses to one prompt (preference, both), each with a deterministic id."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from annotators.grouping import pair_rows, require_input_columns
from annotators.helpsteer.aggregate import response_key
from annotators.webapp.campaign import Campaign
from factory.errors import ConfigError, FactoryError
from factory.seeds import read_seed_file
from factory.store import Store, query_tables, quote_identifier


@dataclass(frozen=True)
class Item:
    id: str                              # the response's row id, or the pair's id
    prompt: str
    responses: tuple[str, ...]           # one (ratings) or two (preference, both)
    response_ids: tuple[str | None, ...]

    @property
    def response_keys(self) -> tuple[str, ...]:
        """Hash of (prompt, response) per response: how rating rows of the same text join."""
        return tuple(response_key(self.prompt, r) for r in self.responses)


def _source_rows(campaign: Campaign, store: Store) -> pa.Table:
    source = campaign.source
    condition = f" WHERE {source.where}" if source.where else ""
    if source.seed is not None:
        path = source.seed if source.seed.is_absolute() else campaign.base_dir / source.seed
        try:
            # The same SQL dialect (and the same read-only gate) as a store filter, over the file's rows.
            return query_tables(f"SELECT * FROM source{condition} ORDER BY id", {"source": read_seed_file(path)})
        except FactoryError as exc:
            raise ConfigError(f"source.where: {exc}") from None
    assert source.dataset is not None
    if not store.has(source.dataset):
        raise ConfigError(f"source.dataset: no data set {source.dataset!r} in store {store.location}")
    if "error" in store.columns(source.dataset):
        condition = f"{condition} AND error IS NULL" if condition else " WHERE error IS NULL"
    try:
        return store.arrow(f"SELECT * FROM {quote_identifier(source.dataset)}{condition} ORDER BY id")
    except FactoryError as exc:
        raise ConfigError(f"source.where: {exc}") from None


def load_items(campaign: Campaign, store: Store) -> list[Item]:
    """Items in a stable order (by id). Pairs come from `response_1`/`response_2` columns when the
    source has them, else from responses grouped by `source.group_by` (as `helpsteer_preference` pairs them)."""
    rows = _source_rows(campaign, store)
    items: list[Item] = []
    if campaign.task == "ratings":
        require_input_columns(rows, ["id", "prompt", "response"], f"campaign {campaign.name} (source)")
        seen: set[str] = set()
        for row in rows.to_pylist():
            if not isinstance(row["response"], str):
                continue
            item = Item(str(row["id"]), row["prompt"], (row["response"],), (str(row["id"]),))
            if item.response_keys[0] not in seen:  # the same text twice is one item: one rating per rater
                seen.add(item.response_keys[0])
                items.append(item)
    else:
        if not {"response_1", "response_2"} <= set(rows.column_names):
            require_input_columns(rows, ["id", "prompt", "response", campaign.source.group_by], f"campaign {campaign.name} (source)")
            rows = pair_rows(rows, campaign.source.group_by, campaign.source.max_pairs_per_prompt)
        for row in rows.to_pylist():
            ids = (row.get("response_1_id"), row.get("response_2_id"))
            items.append(Item(str(row["id"]), row["prompt"], (row["response_1"], row["response_2"]), ids))
        items.sort(key=lambda item: item.id)
    if not items:
        raise ConfigError(f"campaign {campaign.name}: the source selects no items")
    return items[: campaign.source.limit]
