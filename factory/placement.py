"""Where a stage's batches run: Ray Data actor pools, or this process. Same stage code either way.

The stage's engines come from the run (factory.engines.shared): loaded once per run and shared by
every stage that names the model; a stage actor only holds them.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from factory.config import PlannedStage
from factory.engines import Engine
from factory.engines.metered import USAGE_KEY, MeteredEngine, Usage
from factory.engines.shared import LockedEngine
from factory.ray_logs import route_ray_logs
from factory.stage import Stage, StageContext


class StageActor:
    """The Ray Data UDF: builds the stage once around the run's engines, then maps batches."""

    def __init__(self, planned: PlannedStage, run_id: str, engines: Mapping[str, Engine]):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # batches already use every thread
        # A metering wrapper per stage actor: usage is counted per stage even where engines are shared
        # (inside a shared in-process engine's lock, so waiting for another stage is not model time).
        self.engines: dict[str, Engine] = {}
        self.meters: list[MeteredEngine] = []
        for role, engine in engines.items():
            metered = engine.around(MeteredEngine) if isinstance(engine, LockedEngine) else MeteredEngine(engine)
            self.engines[role] = metered
            self.meters.append(metered.engine if isinstance(metered, LockedEngine) else metered)  # type: ignore[arg-type]
        context = StageContext(planned.name, planned.config, run_id, planned.fingerprint, dict(self.engines))
        self.stage: Stage = planned.stage_class(context)

    def __call__(self, batch: pa.Table) -> pa.Table:
        for meter in self.meters:  # counts are per thread, and a thread runs one batch at a time
            meter.usage = Usage()
        output = self.stage(batch)
        usage = sum((meter.usage for meter in self.meters), Usage())
        # The batch's engine usage rides to the driver in the schema metadata (the runner strips it).
        return output.replace_schema_metadata({USAGE_KEY: usage.to_json()})


def batches(table: pa.Table, batch_size: int) -> list[pa.Table]:
    return [table.slice(start, batch_size) for start in range(0, table.num_rows, batch_size)]


def run_local(planned: PlannedStage, run_id: str, todo: pa.Table, engines: Mapping[str, Engine]) -> Iterator[pa.Table]:
    actor = StageActor(planned, run_id, engines)
    width = in_flight(planned).get("max_concurrent_calls_per_actor", 1)
    if width == 1:
        for batch in batches(todo, planned.spec.resources.batch_size):
            yield actor(batch)
        return
    # Up to `width` batches at once, in threads, as a Ray stage actor runs them; results in order.
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="batch") as pool:
        pending: deque[Future[pa.Table]] = deque()
        for batch in batches(todo, planned.spec.resources.batch_size):
            pending.append(pool.submit(actor, batch))
            if len(pending) >= width:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def ensure_ray() -> None:
    import ray

    if not ray.is_initialized():
        route_ray_logs()  # Ray's own lines go to a file (factory.ray_logs), not the user's terminal
        # RAY_ADDRESS (set by `ray job submit`, or by the user: `auto` joins a `ray start` cluster)
        # picks a cluster; otherwise a fresh local Ray, never some other cluster found on this machine.
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 log_to_driver=False, logging_level=logging.INFO, configure_logging=True)


def in_flight(planned: PlannedStage) -> dict[str, Any]:
    """Several batches at once per stage actor, one thread each, where a model's engine schedules
    concurrent calls together (vLLM: `in_flight_batches`); otherwise one at a time."""
    width = max([spec.in_flight_batches for spec in planned.models.values() if spec.backend == "vllm"], default=1)
    if width == 1:
        return {}
    return {"max_concurrent_calls_per_actor": width, "enable_true_multi_threading": True}


def ray_request(planned: PlannedStage) -> dict[str, float]:
    """What one of the stage's actors asks Ray for."""
    resources = planned.spec.resources
    return {"CPU": resources.num_cpus, "GPU": resources.num_gpus}


def run_ray(planned: PlannedStage, run_id: str, todo: pa.Table, engines: Mapping[str, Engine]) -> Iterator[pa.Table]:
    import ray.data

    ensure_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows one bar for the whole stage
    context.print_on_execution_start = False
    resources = planned.spec.resources
    # One block per batch: Ray Data then hands each actor call exactly one batch, and the
    # driver gets each batch back as soon as it is done (a shard per batch, for resume).
    # from_blocks, not from_arrow: it reads the blocks' metadata here, where from_arrow runs a task
    # asking for a whole CPU per block, which waits while engine actors hold the machine's CPUs.
    dataset = ray.data.from_blocks(batches(todo, resources.batch_size))
    mapped = dataset.map_batches(
        StageActor,
        fn_constructor_kwargs={"planned": planned, "run_id": run_id, "engines": dict(engines)},
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=resources.concurrency, **in_flight(planned)),
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,  # the models' GPUs belong to their engine actors
    )
    yield from mapped.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0)


EXECUTORS = {"local": run_local, "ray": run_ray}

