"""Deterministic assignment of items to raters by rendezvous (highest-random-weight) hashing.

Each item goes to the `raters_per_item` raters with the highest hash(seed, item, rater). An item's
raters depend only on that item and the rater list, so adding items (a wider SQL filter, new
responses) never moves the existing ones, and adding a rater moves only about 1/N of the items.
Every rater's list is shown in its own stable shuffled order, so raters do not all start on the
same items and order effects average out.
"""

from __future__ import annotations

from collections.abc import Sequence

from annotators.webapp.items import Item
from factory.ids import stable_hash


def _weight(seed: int, item_id: str, rater: str) -> str:
    return stable_hash("assign", seed, item_id, rater)


def raters_of(item_id: str, raters: Sequence[str], per_item: int, seed: int = 0) -> list[str]:
    """The raters an item is assigned to (by descending weight)."""
    if per_item > len(raters):
        raise ValueError(f"{per_item} raters per item, but only {len(raters)} raters")
    return sorted(raters, key=lambda rater: _weight(seed, item_id, rater), reverse=True)[:per_item]


def assign(items: Sequence[Item], raters: Sequence[str], per_item: int, seed: int = 0) -> dict[str, list[Item]]:
    """rater -> their items, in the rater's own deterministic order."""
    assigned: dict[str, list[Item]] = {rater: [] for rater in raters}
    for item in items:
        for rater in raters_of(item.id, raters, per_item, seed):
            assigned[rater].append(item)
    for rater, own in assigned.items():
        own.sort(key=lambda item: stable_hash("order", seed, rater, item.id))
    return assigned
