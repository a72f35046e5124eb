"""`--as-of`: which table versions a query reads, named the way a user remembers them.

- `12`: every data set at its version 12 (one that did not exist yet is absent);
- `responses=12`: that data set at version 12 (repeat for several);
- a `training_runs` id: the versions that training run read its rows at;
- a `runs` run id (`20261130T...-abc123`) or stage run id (`RUN_ID/STAGE`): the versions those
  stages read and left, the latest per data set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from factory.errors import StoreError
from factory.store import Store, VersionPin
from factory.store.names import STAGE_RUNS_DATASET, TRAINING_RUNS_DATASET


def resolve_as_of(store: Store, values: Sequence[str]) -> VersionPin:
    if not values:
        return None
    if len(values) == 1 and values[0].isdigit():
        return int(values[0])
    pins: dict[str, int] = {}
    for value in values:
        name, sep, version = value.partition("=")
        if sep:
            if not version.isdigit():
                raise StoreError(f"--as-of {value!r}: the version after '=' must be a whole number")
            pins[name.strip()] = int(version)
        else:
            pins.update(_recorded_versions(store, value))
    return pins


def _recorded_versions(store: Store, run: str) -> dict[str, int]:
    recorded: list[str] = []
    if store.has(TRAINING_RUNS_DATASET) and "data_versions" in store.columns(TRAINING_RUNS_DATASET):
        recorded += store.sql(f"SELECT data_versions FROM {TRAINING_RUNS_DATASET} WHERE id = ? AND data_versions IS NOT NULL",
                              [run])["data_versions"].to_list()
    if not recorded and store.has(STAGE_RUNS_DATASET) and "table_versions" in store.columns(STAGE_RUNS_DATASET):
        recorded += store.sql(f"SELECT table_versions FROM {STAGE_RUNS_DATASET} WHERE (id = ? OR run_id = ?) "
                              "AND table_versions IS NOT NULL", [run, run])["table_versions"].to_list()
    if not recorded:
        raise StoreError(f"--as-of {run!r}: no training run, run or stage run with that id has recorded table "
                         "versions (give a version number, or DATASET=VERSION)")
    versions: dict[str, int] = {}
    for text in recorded:
        for name, version in json.loads(text).items():
            versions[name] = max(version, versions.get(name, version))
    return versions
