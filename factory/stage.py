"""The stage contract: one class, one typed config, one batch method (DESIGN.md §3, §5)."""

from __future__ import annotations

import datetime as dt
import traceback
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from factory.engines import Engine
from factory.ids import row_id
from schemas import BaseRow, rows_to_arrow

# The other data sets a stage's `prepare_input` reads (its `side_inputs`), each read whole by the
# runner; a data set not in the store is absent. Stages never get the store itself: the runner alone
# decides what is read and when, which is what lets it stream (DESIGN.md §3).
SideInputs = Mapping[str, pa.Table]

# What a streaming run may hand a stage while its upstream still commits (factory.schedule):
#   "row"    - any committed input rows (each input row is its own work item, or expands to items alone);
#   "parent" - only whole groups of rows sharing a `parent_id` (all outputs of one upstream input,
#              which the upstream commits together), so grouping stages work while the upstream runs;
#   None     - nothing until every earlier stage has finished (groups that span upstream inputs).
StreamUnit = Literal["row", "parent"] | None


def grouped_by(column: str) -> StreamUnit:
    """The stream unit of a stage that groups its input rows by `column`: whole groups as they
    commit when it is the upstream's `parent_id` (one upstream input's outputs, committed together);
    otherwise nothing until the upstream has finished."""
    return "parent" if column == "parent_id" else None


class StageConfig(BaseModel):
    """Base for stage configs: unknown keys are errors, so typos fail before any work."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StageContext:
    """What a stage instance is built with: its typed config, loaded engines and lineage values."""

    name: str
    config: Any
    run_id: str
    fingerprint: str
    engines: dict[str, Engine] = field(default_factory=dict)


class Stage(ABC):
    """Subclasses set the class attributes and implement `process` and `failed_row`.

    `__init__` runs once per actor (load what is expensive there); `__call__` is pure.
    """

    Config: ClassVar[type[StageConfig]] = StageConfig
    Record: ClassVar[type[BaseRow]]
    default_output: ClassVar[str]
    model_roles: ClassVar[tuple[str, ...]] = ()
    # Roles a pipeline may fill but need not (a jury of one to several models, say).
    optional_model_roles: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: StageContext):
        self.context = context
        self.config = context.config
        self.engines = context.engines

    @classmethod
    def reads(cls, config: Any) -> list[str]:
        """Input columns this stage needs; checked against what the input provides before launch."""
        return ["id"]

    @classmethod
    def side_inputs(cls, config: Any) -> list[str]:
        """Data sets besides the input that `prepare_input` reads (handed to it whole, by name)."""
        return []

    @classmethod
    def prepare_input(cls, config: Any, rows: pa.Table, side_inputs: SideInputs) -> pa.Table:
        """Turn the selected input rows into this stage's work items, in the driver, before resume.

        The default keeps them as they are. Stages override it to group rows (all N responses of a
        prompt in one item), to draw work items (k skills per example), or to read the data sets
        they name in `side_inputs`. Every returned row needs a deterministic `id`.
        """
        return rows

    @classmethod
    def stream_unit(cls, config: Any) -> StreamUnit:
        """How this stage may consume its upstream's rows while it runs (see `StreamUnit`). A stage
        that keeps the default `prepare_input` streams row by row; one that overrides it says what
        its items need, else it waits for every earlier stage."""
        return "row" if cls.prepare_input.__func__ is Stage.prepare_input.__func__ else None  # type: ignore[attr-defined]

    @classmethod
    def writes(cls) -> list[str]:
        return list(cls.Record.model_fields)

    @abstractmethod
    def process(self, rows: list[dict[str, Any]]) -> list[BaseRow]:
        """Turn a batch of input rows into output records. May raise; see `__call__`."""

    @abstractmethod
    def failed_row(self, row: dict[str, Any], message: str) -> BaseRow:
        """The error record kept for an input row that could not be processed."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        try:
            records = self.process(rows)
        except Exception:
            # One bad row must not sink its batch: redo the rows one at a time, keep the failures.
            records = []
            for row in rows:
                try:
                    records.extend(self.process([row]))
                except Exception as exc:  # noqa: BLE001 - any failure becomes an error row
                    records.append(self.failed_row(row, _describe(exc)))
        return rows_to_arrow(records, self.Record)

    def lineage(self, parent_id: str | None, index: int = 0) -> dict[str, Any]:
        """The common fields of an output row made from `parent_id`."""
        return {
            "id": row_id(self.context.fingerprint, parent_id, index),
            "parent_id": parent_id,
            "run_id": self.context.run_id,
            "created_at": dt.datetime.now(dt.timezone.utc),
            "stage": self.context.name,
            "fingerprint": self.context.fingerprint,
        }


def _describe(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
