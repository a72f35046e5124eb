"""When each stage of a streaming run starts (DESIGN.md §3).

A stage that maps its input rows one by one (its class keeps `Stage.prepare_input`) starts at once
and streams: it consumes the committed rows of the stages that write its input data set while they
run, until they have finished and nothing is left. Any other stage (it groups rows, e.g. all N
samples of a prompt, or reads other data sets in `prepare_input`) starts once every stage before
it has finished, so it sees complete groups. The store is the queue between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from factory.config import DatasetInput, Pipeline, PlannedStage, SeedInput

UpstreamFinished = Callable[[], bool]


@dataclass
class StagePlan:
    stage: PlannedStage
    waits_for: list[int] = field(default_factory=list)     # stages that finish before this one starts
    streams_from: list[int] = field(default_factory=list)  # stages whose rows it consumes as they commit
    # For a stage taking whole groups while its upstream runs: that upstream's fingerprint.
    parent_fingerprints: list[str] | None = None


def plan(pipeline: Pipeline) -> list[StagePlan]:
    plans = []
    for stage in pipeline.stages:
        earlier = pipeline.stages[: stage.index]
        unit = stage.stage_class.stream_unit(stage.config)
        source = stage.spec.input
        writers = [s for s in earlier if isinstance(source, DatasetInput) and s.output == source.dataset]
        seeders = [s for s in earlier if isinstance(source, DatasetInput) and isinstance(s.spec.input, SeedInput)
                   and pipeline.seed_dataset(s) == source.dataset]
        if stage.stage_class.side_inputs(stage.config):  # data sets earlier stages may still be writing
            plans.append(StagePlan(stage, waits_for=[s.index for s in earlier]))
        elif unit == "row":
            plans.append(StagePlan(stage, streams_from=[s.index for s in writers + seeders]))
        elif unit == "parent" and len(writers) == 1 and not seeders:
            plans.append(StagePlan(stage, streams_from=[writers[0].index],
                                   parent_fingerprints=[writers[0].fingerprint]))
        elif unit == "parent" and not writers and not seeders:  # its input is in the store already
            plans.append(StagePlan(stage))
        else:
            plans.append(StagePlan(stage, waits_for=[s.index for s in earlier]))
    return plans


class Scheduler:
    """Runs every stage in a thread of the driver, as `plan` says; the first failure stops the rest
    at their next batch and is raised once all threads have ended."""

    def __init__(self, plans: list[StagePlan], work: Callable[[StagePlan, UpstreamFinished], object]):
        self.plans = plans
        self.work = work
        self.stop = threading.Event()
        self._finished = {p.stage.index: threading.Event() for p in plans}
        self._results: dict[int, object] = {}
        self._errors: list[BaseException] = []

    def run(self) -> list[object]:
        threads = [threading.Thread(target=self._body, args=(p,), name=f"stage-{p.stage.name}", daemon=True)
                   for p in self.plans]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except BaseException:
            self.stop.set()  # Ctrl-C: each stage stops after its current batch; committed rows stay
            raise
        if self._errors:
            raise self._errors[0]
        return [self._results[p.stage.index] for p in self.plans]

    def _body(self, stage_plan: StagePlan) -> None:
        try:
            for index in stage_plan.waits_for:
                while not self._finished[index].wait(timeout=0.5):
                    if self.stop.is_set():
                        return
            if self.stop.is_set():
                return
            sources = [self._finished[i] for i in stage_plan.streams_from]
            self._results[stage_plan.stage.index] = self.work(stage_plan, lambda: all(e.is_set() for e in sources))
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() in the driver's thread
            self._errors.append(exc)
            self.stop.set()
        finally:
            self._finished[stage_plan.stage.index].set()
