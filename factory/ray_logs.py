"""Ray's own log lines go to a file, not the user's terminal (the run says where, in one line).

Ray's driver logs through two Python loggers: `ray` (cluster start, the token-authentication
notice) and `ray.data` (a line per finished execution, the progress-bar notice), each with a
handler writing to stderr; both are pointed at one file per driver process, under the factory's
cache folder (`FACTORY_CACHE`, default ~/.cache/factory/logs). The driver's C++ core worker writes
its warnings and errors (`E ... core_worker.cc:...` lines) to file descriptor 2 itself: a process
that is the user's terminal (`factory run`) moves descriptor 2 to the same file as well. Ray's
session folder keeps its own, fuller logs (/tmp/ray/session_latest/logs).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from factory.models import cache_dir

RAY_LOGGERS = ("ray", "ray.data")

_log_path: Path | None = None
_native_wanted = False  # set by the CLI: this process's descriptor 2 is the user's terminal
_native_moved = False


def ray_log_path() -> Path | None:
    """Where this process's Ray log lines go, once `route_ray_logs` ran."""
    return _log_path


def keep_native_stderr_in_log() -> None:
    """Ask that Ray's C++ lines go to the log file too, once Ray starts in this process. For a
    command line process only: it moves descriptor 2, which the whole process shares."""
    global _native_wanted
    _native_wanted = True


def route_ray_logs() -> Path:
    """Replace the terminal handlers of Ray's loggers with one file handler; returns the file.

    Call before `ray.init(configure_logging=True)`, which keeps the handlers it finds (with
    `configure_logging=False` it would clear them and Python's last-resort handler would print
    Ray's warnings on stderr again). Idempotent: later runs in this process reuse the file.
    """
    global _log_path
    import ray.data  # noqa: F401 - configures the `ray.data` logger on import: route it after that

    if _log_path is None:
        folder = cache_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        _log_path = folder / f"ray-{stamp}-{os.getpid()}.log"
    handler = logging.FileHandler(_log_path, encoding="utf-8")  # ray.init gives it Ray's line format
    handler.setLevel(logging.INFO)  # Ray Data's DEBUG lines stay in its session-folder file only
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            # Terminal handlers and our own earlier one go; Ray Data's session-folder file (a plain
            # Handler) stays.
            if isinstance(old, logging.StreamHandler):
                logger.removeHandler(old)
                old.close()
        logger.addHandler(handler)
        logger.propagate = False
    if _native_wanted:
        _move_native_stderr(_log_path)
    return _log_path


def _move_native_stderr(path: Path) -> None:
    """Point descriptor 2 at `path`, and Python's `sys.stderr` at a copy of the old descriptor 2,
    so the factory's own lines and Python tracebacks still reach the user."""
    global _native_moved
    if _native_moved:
        return
    old = sys.stderr
    old.flush()
    terminal: TextIO = open(os.dup(2), "w", buffering=1, encoding=old.encoding, errors=old.errors)  # noqa: SIM115
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = terminal
    # Handlers made before now (transformers' warnings, say) hold the old stream: they follow it.
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                       if isinstance(item, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(terminal)
    _native_moved = True
