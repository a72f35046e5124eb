"""vLLM's async engine on an event loop of its own thread, callable from any thread.

The stage code is synchronous and calls an engine one batch at a time. `LLM.generate` on that batch
would leave vLLM a handful of sequences to schedule; here every call (from several stage threads,
or several in-flight batches of one actor) adds its requests to one running `AsyncLLM`, whose
continuous batching schedules them all together (what Ray Data LLM gets from its async engine).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class AsyncVLLM:
    """One `AsyncLLM` and the loop that drives it; `run` blocks the calling thread only."""

    def __init__(self, engine_args: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-async", daemon=True)
        self._thread.start()
        try:
            # Built on its loop, so the engine's output-handler task runs there.
            self.llm = self._wait(self._start(engine_args))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _start(engine_args: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(engine_args)

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def run(self, prompts: Sequence[Any], params: Sequence[Any]) -> list[Any]:
        """The final `RequestOutput` of each prompt (with its own sampling params), in order."""
        return self._wait(self._gather(prompts, params))

    async def _gather(self, prompts: Sequence[Any], params: Sequence[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self._one(p, s) for p, s in zip(prompts, params, strict=True))))

    async def _one(self, prompt: Any, params: Any) -> Any:
        final = None
        # Request ids only have to be unique among requests in flight.
        async for output in self.llm.generate(prompt, params, request_id=uuid.uuid4().hex):
            final = output
        return final

    def close(self) -> None:
        """Stop the engine-core process and the loop; the engine is unusable afterwards."""
        if self._loop.is_closed():
            return
        try:
            self._wait(self._shutdown())
        finally:
            self._stop_loop()

    async def _shutdown(self) -> None:
        self.llm.shutdown()
        # Its output-handler tasks end here, on their own loop, not as "destroyed but pending" at exit.
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        del self.llm  # collected now, while the interpreter can still run its __del__

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
