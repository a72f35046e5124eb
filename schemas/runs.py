"""Data set `runs`: one row per stage per run, written when the stage ends."""

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="run_id + stage name.")
    run_id: str = Field(description="Id shared by every stage of one `factory run`.")
    pipeline: str = Field(description="Pipeline name from the YAML.")
    stage: str = Field(description="Stage name.")
    status: str = Field(description="'completed' or 'failed'.")
    output: str = Field(description="Data set the stage writes.")
    input_rows: int = Field(description="Input rows after --limit, before resume.")
    skipped_rows: int = Field(description="Input rows already done by an earlier run (resume).")
    rows: int = Field(description="Rows written by this run.")
    error_rows: int = Field(description="Rows written with an error.")
    prompt_tokens: int = Field(description="Prompt tokens of every model call (all turns and retries).")
    completion_tokens: int = Field(description="Generated tokens plus scored response tokens of every model call.")
    seconds: float = Field(description="Wall seconds of the stage.")
    engine_seconds: float = Field(description="Wall seconds spent inside model calls, summed over actors.")
    gpu_seconds: float = Field(description="GPU-seconds reserved: wall seconds x GPUs per actor x actors.")
    config: str = Field(description="The stage's config as JSON.")
    message: str | None = Field(default=None, description="Error message when status is 'failed'.")
    started_at: dt.datetime
    finished_at: dt.datetime
    table_versions: str | None = Field(default=None, description="JSON: data set -> Delta table version the stage "
                                       "read as input and left as output (`factory sql --as-of RUN_ID` reads them).")
