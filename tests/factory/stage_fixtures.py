"""A stage used by the runner tests to exercise `prepare_input` and `CountInput` (a dotted-path stage)."""

from typing import Any

import pyarrow as pa

from factory.stage import Stage, StageConfig
from schemas import BaseRow


class CountRow(BaseRow):
    members: list[str]


class GroupConfig(StageConfig):
    groups: int = 2


class GroupStage(Stage):
    """Groups the input rows into `groups` work items by index modulo `groups`."""

    Config = GroupConfig
    Record = CountRow
    default_output = "groups"

    @classmethod
    def reads(cls, config: GroupConfig) -> list[str]:
        return ["id", "index"]

    @classmethod
    def prepare_input(cls, config: GroupConfig, rows: pa.Table, side_inputs) -> pa.Table:
        members: dict[str, list[str]] = {}
        for row in rows.to_pylist():
            members.setdefault(f"g{row['index'] % config.groups}", []).append(row["id"])
        return pa.table({"id": list(members), "members": list(members.values())})

    def process(self, rows: list[dict[str, Any]]) -> list[CountRow]:
        return [CountRow(**self.lineage(row["id"]), members=row["members"]) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> CountRow:
        return CountRow(**self.lineage(row["id"]), members=[], error=message)


class ParentGroupConfig(StageConfig):
    pass


class ParentGroupStage(Stage):
    """One work item per parent: the ids of all its rows (all N samples of a prompt), taken while
    the upstream still runs (`stream_unit` "parent")."""

    Config = ParentGroupConfig
    Record = CountRow
    default_output = "parents"

    @classmethod
    def reads(cls, config: ParentGroupConfig) -> list[str]:
        return ["id", "parent_id"]

    @classmethod
    def stream_unit(cls, config: ParentGroupConfig) -> str:
        return "parent"

    @classmethod
    def prepare_input(cls, config: ParentGroupConfig, rows: pa.Table, side_inputs) -> pa.Table:
        members: dict[str, list[str]] = {}
        for row in rows.to_pylist():
            members.setdefault(row["parent_id"], []).append(row["id"])
        return pa.table({"id": list(members), "members": [sorted(m) for m in members.values()]},
                        schema=pa.schema([("id", pa.string()), ("members", pa.list_(pa.string()))]))

    def process(self, rows: list[dict[str, Any]]) -> list[CountRow]:
        return [CountRow(**self.lineage(row["id"]), members=row["members"]) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> CountRow:
        return CountRow(**self.lineage(row["id"]), members=[], error=message)


class EchoStage(Stage):
    """Row-wise and model-free: one output row per input row."""

    Config = ParentGroupConfig
    Record = CountRow
    default_output = "echoes"

    def process(self, rows: list[dict[str, Any]]) -> list[CountRow]:
        return [CountRow(**self.lineage(row["id"]), members=[row["id"]]) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> CountRow:
        return CountRow(**self.lineage(row["id"]), members=[], error=message)
