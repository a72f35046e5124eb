"""Failing fast against a dead or hung server (the openai backend): a circuit breaker, a liveness
probe and the waiting loop that lets a call give up before its HTTP timeout.

Why not just a shorter HTTP timeout: a non-streaming request sends nothing until the whole
generation is done, so a slow but healthy server and a hung one look the same to the socket. A
request that has had no reply for a while asks the server a cheap question (GET /models); a live
server answers it at once however busy its GPUs are, a hung one does not.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CircuitOpenError(RuntimeError):
    """The breaker is open: the server failed too often in a row to be worth waiting for."""


class HungServerError(RuntimeError):
    """A request had no reply and the server did not answer a liveness probe either."""


class DeadlineError(RuntimeError):
    """The call's total deadline (across retries) passed."""


class Breaker:
    """Opens after `threshold` consecutive connection failures or timeouts (any HTTP reply resets
    the count). While open, calls fail at once; after `cooldown_s` one call goes through as a trial
    and its success closes the breaker again (engines live for a whole run, servers come back)."""

    def __init__(self, threshold: int, cooldown_s: float):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.lock = threading.Lock()
        self.failures = 0
        self.reason: str | None = None
        self.opened_at = float("-inf")

    def check(self) -> None:
        """Raise CircuitOpenError while open; lets one trial call through per cool-down."""
        with self.lock:
            if self.reason is None:
                return
            now = time.monotonic()
            if now - self.opened_at >= self.cooldown_s:
                self.opened_at = now  # this caller is the trial; the others keep failing fast
                return
            raise CircuitOpenError(self.reason)

    def opened_since(self, moment: float) -> str | None:
        """The reason, if the breaker opened (or re-opened) after `moment`: a waiting call then stops."""
        with self.lock:
            return self.reason if self.reason is not None and self.opened_at > moment else None

    def success(self) -> None:
        with self.lock:
            self.failures, self.reason = 0, None

    def failure(self, problem: str) -> None:
        with self.lock:
            self.failures += 1
            if self.reason is None and self.failures < self.threshold:
                return
            if self.reason is None:
                self.reason = (f"circuit open after {self.failures} consecutive connection failures or timeouts "
                               f"(last: {problem}); the remaining rows fail fast: re-run with --retry-errors "
                               "once the server answers")
            self.opened_at = time.monotonic()  # opened, or a trial failed: wait another cool-down


class Liveness:
    """One probe at a time, its answer shared by every waiting call for `cache_s` seconds."""

    def __init__(self, probe: Callable[[], str | None], cache_s: float):
        self.probe = probe
        self.cache_s = cache_s
        self.lock = threading.Lock()
        self.checked_at = float("-inf")
        self.problem: str | None = None

    def hung(self) -> str | None:
        """None when the server answered a probe lately, else what the probe found."""
        with self.lock:
            if time.monotonic() - self.checked_at >= self.cache_s:
                self.problem = self.probe()
                self.checked_at = time.monotonic()
            return self.problem


def wait_for(send: Callable[[], T], *, started: float, deadline: float, probe_after_s: float,
             liveness: Liveness, breaker: Breaker, poll_s: float = 0.25) -> T:
    """Run `send` on a daemon thread and wait for it, giving up early when the deadline passes, the
    breaker opens, or the request has waited `probe_after_s` and the server does not answer a probe.
    An abandoned thread ends on its own HTTP timeout; its result is dropped."""
    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            box.put((True, send()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller as it is
            box.put((False, exc))

    threading.Thread(target=run, name="openai-request", daemon=True).start()
    next_probe = started + probe_after_s
    while True:
        try:
            ok, value = box.get(timeout=poll_s)
        except queue.Empty:
            now = time.monotonic()
            reason = breaker.opened_since(started)
            if reason:
                raise CircuitOpenError(reason) from None
            if now >= deadline:
                raise DeadlineError("the call's deadline passed") from None
            if now >= next_probe:
                problem = liveness.hung()
                if problem:
                    raise HungServerError(f"no reply in {now - started:.0f}s and {problem}") from None
                next_probe = time.monotonic() + probe_after_s
            continue
        if ok:
            return value  # type: ignore[return-value]
        raise value  # type: ignore[misc]
