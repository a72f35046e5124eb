"""Record types for every table the factory writes. Imports nothing of ours (DESIGN.md §2)."""

from schemas.common import BaseRow, arrow_schema, rows_to_arrow
from schemas.responses import ResponseRow
from schemas.runs import RunRecord
from schemas.seeds import SeedPrompt

__all__ = ["BaseRow", "ResponseRow", "RunRecord", "SeedPrompt", "arrow_schema", "rows_to_arrow"]
