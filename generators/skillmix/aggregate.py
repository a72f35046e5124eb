"""What stages `skillmix.skills` and `skillmix.query_types` share: every mention -> one deduplicated list.

Merging needs all mentions at once, so it happens in `prepare_input`, which the runner calls in the
driver on every selected input row: names are normalised (exact duplicates counted), then
near-duplicates merged by MiniLM cosine similarity, most frequent first. Each merged entry becomes
one work item whose id is a hash of its normalised name, and `process` only writes the records, so
a re-run after more extraction adds the new entries and leaves existing ones alone.

Input: `{dataset: skillmix_mentions}` (what `skillmix.extract` wrote; rows of the other kind and
error rows are ignored), and/or users' own lists (`files`, `entries`); with only the latter, use
`input: {count: 1}`. The two stages, each a subclass of `AggregateStage` with its own name
normalisation: generators/skillmix/stages/skills.py and stages/query_types.py.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from factory.errors import ConfigError
from factory.ids import stable_hash
from factory.stage import SideInputs, Stage, StageConfig
from generators.skillmix.diversity import embed, near_duplicate_groups
from generators.skillmix.lists import parse_entry, read_list_file

USER_SOURCES = ("file", "config")


class AggregateConfig(StageConfig):
    files: list[Path] = Field(
        default_factory=list,
        description="Users' own lists: .txt (one per line, 'name: definition' allowed) or .yaml; relative to the working directory.",
    )
    entries: list[str] = Field(default_factory=list, description="More entries inline, each 'name' or 'name: definition'.")
    merge_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Merge names whose MiniLM cosine similarity is at least this (e.g. 0.8); null (default, as the "
        "reference, which uses the extracted lists as they are) merges only names that normalise to the same key.",
    )
    embedding_model: str = Field(default="minilm-l6", description="sentence-transformers model: bundled name or folder.")
    min_frequency: int = Field(
        default=1, ge=1, description="Drop merged entries mentioned fewer times (entries from files/entries are always kept).",
    )

    @field_validator("files")
    @classmethod
    def _files_exist(cls, files: list[Path]) -> list[Path]:
        for path in files:
            if not path.expanduser().is_file():
                raise ValueError(f"list file {str(path)!r} not found (relative to the working directory {Path.cwd()})")
        return files


@dataclass
class Group:
    key: str
    spellings: Counter = field(default_factory=Counter)
    definition: str | None = None
    frequency: int = 0
    sources: set[str] = field(default_factory=set)
    aliases: set[str] = field(default_factory=set)

    def add(self, spelling: str, definition: str | None, source: str, weight: int = 1) -> None:
        self.spellings[spelling] += weight
        self.frequency += weight
        self.sources.add(source)
        # A user's own definition wins over a model's.
        if definition and (self.definition is None or source in USER_SOURCES):
            self.definition = definition

    @property
    def name(self) -> str:
        return min(self.spellings.items(), key=lambda item: (-item[1], item[0]))[0]


class AggregateStage(Stage):
    """The shared base: a subclass sets `Record`, `default_output`, `kind` and `normalise`."""

    Config = AggregateConfig
    model_roles = ()
    kind: ClassVar[str]

    config: AggregateConfig

    @staticmethod
    @abstractmethod
    def normalise(name: str) -> tuple[str, str]:
        """(key under which spellings are the same entry, spelling kept); each kind defines its own."""

    @classmethod
    def mentions(cls, config: AggregateConfig, rows: pa.Table) -> list[tuple[str, str | None, str]]:
        """(name, definition, source) of every mention in the input rows and the user's lists."""
        found: list[tuple[str, str | None, str]] = []
        if "names" in rows.column_names:
            keep = pc.field("kind") == cls.kind if "kind" in rows.column_names else None
            if "error" in rows.column_names:
                condition = pc.field("error").is_null()
                keep = condition if keep is None else keep & condition
            selected = rows.filter(keep) if keep is not None else rows
            columns = [c for c in ("names", "definitions", "mode") if c in selected.column_names]
            for row in selected.select(columns).to_pylist():
                definitions = row.get("definitions") or []
                for index, name in enumerate(row["names"] or []):
                    definition = definitions[index] if index < len(definitions) else None
                    found.append((name, definition, row.get("mode") or "dataset"))
        elif set(rows.column_names) - {"id", "index"}:
            raise ConfigError(f"stage input has no 'names' column (columns: {', '.join(rows.column_names)}): "
                              f"read the data set `skillmix.extract` writes, or give `files`/`entries` with input {{count: 1}}")
        for path in config.files:
            found += [(name, definition, "file") for name, definition in read_list_file(path.expanduser())]
        found += [(*parse_entry(entry), "config") for entry in config.entries]
        return found

    @classmethod
    def merge(cls, config: AggregateConfig, mentions: list[tuple[str, str | None, str]]) -> list[Group]:
        groups: dict[str, Group] = {}
        for name, definition, source in mentions:
            key, spelling = cls.normalise(name)
            if key:
                groups.setdefault(key, Group(key)).add(spelling, definition, source)
        ordered = sorted(groups.values(), key=lambda g: (-g.frequency, g.key))
        if config.merge_threshold is not None and len(ordered) > 1:
            texts = [g.name.replace("_", " ") for g in ordered]
            leaders = near_duplicate_groups(embed(texts, config.embedding_model), config.merge_threshold)
            merged: dict[int, Group] = {}
            for index, leader in enumerate(leaders):
                group = ordered[index]
                if leader == index:
                    merged[index] = group
                    continue
                target = merged[leader]
                target.aliases.update(group.spellings)
                target.frequency += group.frequency
                target.sources |= group.sources
                target.definition = target.definition or group.definition
            ordered = list(merged.values())
        for group in ordered:
            group.aliases.update(s for s in group.spellings if s != group.name)
        return [g for g in ordered if g.frequency >= config.min_frequency or g.sources & set(USER_SOURCES)]

    @classmethod
    def prepare_input(cls, config: AggregateConfig, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        groups = cls.merge(config, cls.mentions(config, rows))
        if not groups:
            raise ConfigError(f"no {cls.kind.replace('_', ' ')} found: the input has no parsed mentions of kind "
                              f"{cls.kind!r} and no `files`/`entries` were given")
        return pa.Table.from_pylist([
            {"id": stable_hash(cls.kind, group.key), "name": group.name, "definition": group.definition,
             "frequency": group.frequency, "aliases": sorted(group.aliases), "sources": sorted(group.sources)}
            for group in groups
        ], schema=pa.schema([("id", pa.string()), ("name", pa.string()), ("definition", pa.string()),
                             ("frequency", pa.int64()), ("aliases", pa.list_(pa.string())),
                             ("sources", pa.list_(pa.string()))]))

    def process(self, rows: list[dict[str, Any]]) -> list[Any]:
        return [self.Record(**self.lineage(row["id"]), **{k: row[k] for k in
                ("name", "definition", "frequency", "aliases", "sources")}) for row in rows]

    def failed_row(self, row: dict[str, Any], message: str) -> Any:
        return self.Record(**self.lineage(row["id"]), name=str(row.get("name")), frequency=0, error=message)
