"""Engines shared by every stage of a run (DESIGN.md §3): each distinct model (name + backend +
settings) loads once per run, not once per stage.

- `local` executor: one engine object per distinct model, in this process.
- `ray` executor: `replicas` long-lived Ray actors per distinct model, holding the GPUs; a stage's
  own actors hold `RemoteEngine`s, which send the three engine calls there. An engine actor that
  dies (OOM, SIGKILL) is restarted by Ray and its in-flight calls retried (calls are pure: rows are
  committed by the driver, so a retried call cannot duplicate one); one that keeps dying fails the
  stage with Ray's reason instead of hanging.

Stage code cannot tell which it has: both are `Engine`s.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from factory.engines import load_engine
from factory.engines.base import Engine, Generation, Prompt, SamplingParams
from factory.engines.spec import ModelSpec
from factory.errors import FactoryError
from factory.models import LOADING

ENGINE_RESTARTS = 3  # restarts of a dead engine actor before its stage fails with the reason
UNAVAILABLE_WAIT_S = 600.0  # how long a call waits for an engine actor Ray is restarting (a lost node)
VLLM_ACTOR_CALLS = 256  # concurrent calls a vLLM engine actor takes; vLLM's scheduler queues the rest


def engine_key(spec: ModelSpec) -> str:
    """Two `models:` entries with the same settings are one engine (the YAML key is only a name)."""
    return spec.model_dump_json()


class EngineActor:
    """A Ray actor holding one loaded model."""

    def __init__(self, spec: ModelSpec):
        if spec.threads is None and spec.num_cpus == 0:
            # Ray gives a zero-CPU actor one OpenMP thread; a CPU model should use the machine.
            os.environ["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
        self.engine = load_engine(spec)

    def ready(self) -> str:
        return self.engine.name

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        return self.engine.generate(conversations, sampling)

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        return self.engine.logprobs(conversations, responses)

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        return self.engine.option_probs(conversations, options)

    def attribute(self, name: str) -> Any:
        return getattr(self.engine, name, None)


class RemoteEngine(Engine):
    """The engine interface over a model's engine actors: each call goes to the next replica."""

    def __init__(self, name: str, handles: list[Any]):
        self.name = name
        self._handles = handles
        self._next = itertools.cycle(range(len(handles)))
        self._attributes: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "_handles": self._handles}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["_handles"])

    def _call(self, method: str, *args: Any) -> Any:
        """A call on the next replica. A call in flight when its actor's node is lost fails with
        ActorUnavailableError while Ray restarts the actor (max_task_retries covers only a dead
        actor): it is sent again, to the next replica, until UNAVAILABLE_WAIT_S have passed."""
        import ray

        deadline, pause = time.monotonic() + UNAVAILABLE_WAIT_S, 1.0
        while True:
            handle = self._handles[next(self._next)]
            try:
                return ray.get(getattr(handle, method).remote(*args))
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 10.0)

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        return self._call("generate", conversations, sampling)

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        return self._call("logprobs", conversations, responses)

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        return self._call("option_probs", conversations, options)

    def __getattr__(self, name: str) -> Any:
        # Other attributes a stage reads (a tokenizer, a chat template) come from the actor once.
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._attributes:
            self._attributes[name] = self._call("attribute", name)
        if self._attributes[name] is None:
            raise AttributeError(name)
        return self._attributes[name]


class LockedEngine(Engine):
    """An in-process engine shared by stages running in several threads: one call at a time (a
    model object is not thread-safe; an engine actor serialises its calls the same way)."""

    def __init__(self, engine: Engine, lock: threading.Lock | None = None):
        self.engine = engine
        self.name = engine.name
        self._lock = lock or threading.Lock()

    def around(self, wrap: Callable[[Engine], Engine]) -> LockedEngine:
        """The same lock around `wrap(engine)`: a stage's metering inside the lock counts model time,
        not the time spent waiting for another stage's call."""
        return LockedEngine(wrap(self.engine), self._lock)

    def generate(self, conversations: list[Prompt], sampling: SamplingParams) -> list[Generation]:
        with self._lock:
            return self.engine.generate(conversations, sampling)

    def logprobs(self, conversations: list[Prompt], responses: list[str]) -> list[list[float]]:
        with self._lock:
            return self.engine.logprobs(conversations, responses)

    def option_probs(self, conversations: list[Prompt], options: list[str]) -> list[list[float]]:
        with self._lock:
            return self.engine.option_probs(conversations, options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.engine, name)


def replica_request(spec: ModelSpec) -> dict[str, float]:
    """What one engine actor of `spec` asks Ray for."""
    request = {"GPU": spec.gpus_per_replica(), "CPU": spec.num_cpus, **spec.resources}
    return {name: amount for name, amount in request.items() if amount}


def shortfall(request: Mapping[str, float], reserved: Mapping[str, float]) -> str | None:
    """What `request` lacks beside `reserved` (the run's engine actors, which hold their resources
    until the run ends) on a cluster this process started; None when it fits, or on a cluster named by
    RAY_ADDRESS, where an autoscaler may still add nodes, so there we wait as Ray does. Ray itself
    waits forever for an actor that cannot be placed (it only says so in its own logs)."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        return None
    total: dict[str, float] = {}
    for node in ray.nodes():
        if node["Alive"]:
            for name, amount in node["Resources"].items():
                total[name] = total.get(name, 0.0) + amount
    missing = [f"{name} {amount:g} (of {total.get(name, 0.0) - reserved.get(name, 0.0):g} left beside the "
               f"engines' {reserved.get(name, 0.0):g})" for name, amount in request.items()
               if amount > total.get(name, 0.0) - reserved.get(name, 0.0) + 1e-9]
    return ", ".join(missing) or None


def check_feasible(spec: ModelSpec, reserved: Mapping[str, float]) -> None:
    """All replicas of `spec` must fit beside the engines already started: fail now, naming the request."""
    request = {name: amount * spec.replicas for name, amount in replica_request(spec).items()}
    if (missing := shortfall(request, reserved)) is not None:
        raise FactoryError(f"model {spec.name!r} ({spec.backend}) asks for {missing} for its {spec.replicas} "
                           f"replica(s) and this Ray cluster cannot hold that (set num_gpus / num_cpus / resources "
                           f"in its models: entry, or start Ray on machines that have it and point RAY_ADDRESS "
                           f"at them)")


class SharedEngines:
    """The engines of one run, started on first use and released by `close`."""

    def __init__(self, executor: str, thread_safe: bool = False):
        """`thread_safe`: stages call the engines from several threads (streaming runs)."""
        self.executor = executor
        self.thread_safe = thread_safe
        self._engines: dict[str, Engine] = {}
        self._actors: list[Any] = []
        self.reserved: dict[str, float] = {}  # what the engine actors hold for the whole run

    def check_room(self, request: Mapping[str, float], what: str) -> None:
        """A stage's actors must fit beside the run's engine actors, or Ray would wait for them forever."""
        if self.executor != "ray":
            return
        request = {name: amount for name, amount in request.items() if amount}
        if (missing := shortfall(request, self.reserved)) is not None:
            raise FactoryError(f"{what}: a stage actor asks for {missing}; lower it, or the models' "
                               f"num_cpus / num_gpus (their engine actors hold them for the whole run)")

    def for_stage(self, models: Mapping[str, ModelSpec]) -> dict[str, Engine]:
        """Role -> engine for a stage's models, starting the ones not started yet."""
        return {role: self._engine(spec) for role, spec in models.items()}

    def _engine(self, spec: ModelSpec) -> Engine:
        key = engine_key(spec)
        with LOADING:  # streaming stages ask from several threads: each model loads once, loads one at a time
            return self._engines[key] if key in self._engines else self._start(key, spec)

    def _start(self, key: str, spec: ModelSpec) -> Engine:
        if self.executor == "local":
            engine = load_engine(spec)
            # An engine that schedules concurrent calls itself (vLLM's async engine) says so.
            needs_lock = self.thread_safe and not getattr(engine, "thread_safe", False)
            self._engines[key] = LockedEngine(engine) if needs_lock else engine
        else:
            self._engines[key] = self._start_actors(spec)
        return self._engines[key]

    def _start_actors(self, spec: ModelSpec) -> RemoteEngine:
        import ray

        from factory.placement import ensure_ray

        ensure_ray()
        check_feasible(spec, self.reserved)
        actor_class = ray.remote(EngineActor).options(
            num_cpus=spec.num_cpus, num_gpus=spec.gpus_per_replica(), resources=spec.resources or None,
            max_restarts=ENGINE_RESTARTS, max_task_retries=ENGINE_RESTARTS,
            # A vLLM engine schedules concurrent calls together: let every in-flight batch in (the stage
            # actors bound how many: in_flight_batches each); other engines take one call at a time.
            max_concurrency=VLLM_ACTOR_CALLS if spec.backend == "vllm" else 1,
        )
        handles = [actor_class.remote(spec) for _ in range(spec.replicas)]
        self._actors += handles
        for name, amount in replica_request(spec).items():
            self.reserved[name] = self.reserved.get(name, 0.0) + amount * spec.replicas
        try:
            names = ray.get([handle.ready.remote() for handle in handles])  # load errors surface here, once
        except ray.exceptions.RayError as exc:
            reason = str(getattr(exc, "cause", None) or exc).strip().splitlines()
            raise FactoryError(f"model {spec.name!r} ({spec.backend}) could not be started: "
                               f"{reason[-1] if reason else type(exc).__name__}") from None
        return RemoteEngine(names[0], handles)

    def close(self) -> None:
        if self.executor == "local":  # in-process engines: vLLM's holds an engine-core process, shut down here
            for engine in self._engines.values():
                close = getattr(engine, "close", None)
                if callable(close):
                    close()
        if self._actors:
            import ray

            for handle in self._actors:
                ray.kill(handle)
        self._engines.clear()
        self._actors.clear()

    def __enter__(self) -> SharedEngines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
