"""What one stage reads in one run, round after round (DESIGN.md §3): the runner's only reader of
a stage's input, so the stage itself never sees the store.

Each round yields the stage's work items (its `prepare_input` applied) that no earlier round of this
run offered, limited by `--limit` over the whole run:
- a seed file or a count: all of it in the first round (a seed file chunk by chunk when the stage
  takes rows as they are), nothing after;
- a data set: the rows of the data files committed since the last round (a stage streaming behind
  its upstream reads each commit once, not the whole data set again); for a stage that takes whole
  groups ("parent"), while its upstream runs, only the groups whose upstream input has committed —
  all their rows, old commits included — and once the upstream has finished, everything left.
The runner then removes what the stage's output already holds (resume by anti-join).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from factory.config import CountInput, DatasetInput, Pipeline, PlannedStage, SeedInput
from factory.errors import ConfigError, StoreError
from factory.seeds import SeedScan, read_seed_chunks
from factory.stage import Stage
from factory.store import Store, quote_identifier


def keeps_rows(stage: PlannedStage) -> bool:
    """The stage's work items are its input rows as they are (it keeps `Stage.prepare_input`)."""
    return stage.stage_class.prepare_input.__func__ is Stage.prepare_input.__func__  # type: ignore[attr-defined]


class StageInput:
    def __init__(self, stage: PlannedStage, pipeline: Pipeline, store: Store, seeds: SeedScan | None,
                 limit: int | None, parent_fingerprints: list[str] | None = None):
        self.stage = stage
        self.store = store
        self.seeds = seeds
        self.limit = limit
        # Set for a stage streaming whole groups: the fingerprint of the one stage writing its input.
        self.parent_fingerprints = parent_fingerprints
        self.dataset = pipeline.seed_dataset(stage) if isinstance(stage.spec.input, SeedInput) else (
            stage.spec.input.dataset if isinstance(stage.spec.input, DatasetInput) else None)
        self.offered = 0                # work items offered so far (`--limit` counts them)
        self._offered_ids: set[str] = set()  # kept only where a later round may read them again
        self._seen_files: list[str] = []     # data files earlier rounds read
        self._rounds = 0

    # ---- what the runner asks ------------------------------------------------------------------

    def exists(self) -> bool:
        """False while the data set this stage reads has not been committed by anyone yet."""
        return not isinstance(self.stage.spec.input, DatasetInput) or self.store.has(self.dataset)

    def versions(self) -> dict[str, int | None]:
        return {} if self.dataset is None else {self.dataset: self.store.version(self.dataset)}

    def rounds(self, upstream_finished: bool) -> Iterator[pa.Table]:
        """This round's new work items, in one or more tables (a seed file a chunk at a time)."""
        self._rounds += 1
        source = self.stage.spec.input
        if not isinstance(source, DatasetInput):
            if self._rounds == 1:
                yield from self._limited(self._fixed_input(source))
            return
        if self.parent_fingerprints is not None and not upstream_finished:
            table = self._complete_groups(source)
            if table is None:
                return
        elif self.parent_fingerprints is not None:
            table = self._read(source)  # the upstream has finished: every group is whole now
        else:
            table, self._seen_files = self._read_new(source)
        yield from self._limited([self.stage.stage_class.prepare_input(self.stage.config, table, self._side_inputs())])

    # ---- reading -------------------------------------------------------------------------------

    def _fixed_input(self, source: SeedInput | CountInput) -> Iterator[pa.Table]:
        if isinstance(source, CountInput):
            table = pa.table({"id": [str(i) for i in range(source.count)], "index": list(range(source.count))})
        elif keeps_rows(self.stage):
            yield from read_seed_chunks(self.seeds)  # never the whole file at once
            return
        else:  # a stage that regroups its rows needs all of them at once
            table = pa.concat_tables(read_seed_chunks(self.seeds))
        yield self.stage.stage_class.prepare_input(self.stage.config, table, self._side_inputs())

    def _query(self, source: DatasetInput, extra: str = "") -> str:
        conditions = [f"({source.where})"] if source.where else []  # the pipeline author's own SQL
        if extra:
            conditions.append(extra)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "created_at, id" if "created_at" in self.store.columns(source.dataset) else "id"
        return f"SELECT * FROM {quote_identifier(source.dataset)}{where} ORDER BY {order}"

    def _read(self, source: DatasetInput, extra: str = "", params: list[object] | None = None) -> pa.Table:
        try:
            return self.store.arrow(self._query(source, extra), params)
        except StoreError as exc:
            raise ConfigError(f"{self.stage.path}.input.where: {exc}") from None

    def _read_new(self, source: DatasetInput) -> tuple[pa.Table, list[str]]:
        try:
            return self.store.arrow_new_files(source.dataset, self._query(source), self._seen_files)
        except StoreError as exc:
            raise ConfigError(f"{self.stage.path}.input.where: {exc}") from None

    def _complete_groups(self, source: DatasetInput) -> pa.Table | None:
        """Every row of each parent the upstream (at its current fingerprint) committed since the
        last round: it commits all of one input's outputs together, so such a group is whole."""
        fingerprints = list(self.parent_fingerprints or [])
        marks = ", ".join("?" for _ in fingerprints)
        try:
            new, self._seen_files = self.store.arrow_new_files(
                source.dataset, f"SELECT DISTINCT parent_id FROM {quote_identifier(source.dataset)} "
                f"WHERE fingerprint IN ({marks}) AND parent_id IS NOT NULL", self._seen_files, fingerprints)
        except StoreError as exc:
            raise ConfigError(f"{self.stage.path}.input: {exc}") from None
        parents = new.column(0).to_pylist()
        return self._read(source, "parent_id IN (SELECT unnest(?::VARCHAR[]))", [parents]) if parents else None

    def _side_inputs(self) -> dict[str, pa.Table]:
        names = self.stage.stage_class.side_inputs(self.stage.config)
        return {name: self.store.arrow(f"SELECT * FROM {quote_identifier(name)}") for name in names
                if self.store.has(name)}

    # ---- offering each item once, within the limit -----------------------------------------------

    def _limited(self, tables: Iterator[pa.Table] | list[pa.Table]) -> Iterator[pa.Table]:
        # A data set's rounds may read an item again (a whole group re-read, a compacted file):
        # those remember what they offered. Seeds and counts are read once and do not (a 1M-row
        # seed file's ids would cost memory for nothing).
        remember = isinstance(self.stage.spec.input, DatasetInput)
        for table in tables:
            if remember and self._offered_ids and table.num_rows:  # work in proportion to this round's rows
                fresh = [item not in self._offered_ids for item in table.column("id").to_pylist()]
                table = table.filter(pa.array(fresh, pa.bool_()))
            if self.limit is not None:
                table = table.slice(0, max(self.limit - self.offered, 0))
            if not table.num_rows:
                continue
            self.offered += table.num_rows
            if remember:
                self._offered_ids.update(table.column("id").to_pylist())
            yield table
