"""Secrets never leave the process in text: the one place that scrubs them.

Every configured secret (an API key read through a model's `api_key_env`, a Ray token, a rating
campaign's tokens) is known here by value or by the name of the environment variable holding it,
and `scrub` replaces each occurrence with `[redacted]`. Header shapes are scrubbed whatever their
value (`Authorization: Bearer ...`, `'api-key': '...'`, `x-api-key=...`, `user:pass@` in URLs),
because a server that echoes our request (real APIs do, in 4xx bodies) may show a key we were
never told about. Error text is scrubbed where it is formed (engines, jobs, the CLI's last line),
log records as they are made (`install`), so error rows, run records, cards and exports never
hold a key.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import Any

REDACTED = "[redacted]"
# Below this length a "secret" would scrub ordinary words; campaign tokens need 8 or more anyway.
MIN_SECRET_LENGTH = 8
# Environment variables that hold secrets whatever a config says; models add their `api_key_env`.
DEFAULT_SECRET_ENV = ("OPENAI_API_KEY", "RAY_AUTH_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                      "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

_lock = threading.Lock()
_values: set[str] = set()
_env_names: set[str] = set(DEFAULT_SECRET_ENV)

_QUOTE = r"""['"]?"""
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: Bearer abc / 'Authorization': 'Bearer abc' / "proxy-authorization"="Basic abc"
    (re.compile(rf"""((?:proxy-)?authorization{_QUOTE}\s*[:=]\s*{_QUOTE})[^'"\r\n,;}}]+""", re.I), rf"\1{REDACTED}"),
    # api-key: abc / "x-api-key": "abc" / api_key=abc (query strings)
    (re.compile(rf"""((?:x-)?api[-_]?key{_QUOTE}\s*[:=]\s*{_QUOTE})[^'"\s,;&}}]+""", re.I), rf"\1{REDACTED}"),
    # A bearer token anywhere else (after the rules above it is already "[redacted]").
    (re.compile(r"\b(Bearer|Basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]{4,}", re.I), rf"\1 {REDACTED}"),
    # https://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\1{REDACTED}@"),
]


def register(value: str | None) -> None:
    """Remember a secret value (a campaign token, a key read from a file) so `scrub` removes it."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        with _lock:
            _values.add(value.strip())


def watch_env(name: str | None) -> None:
    """Treat the value of environment variable `name` as a secret (read when scrubbing, so a key set
    after the config was loaded is still covered)."""
    if name:
        with _lock:
            _env_names.add(name)


def known_secrets() -> list[str]:
    """Every secret value known now, longest first (so a secret containing another goes whole)."""
    with _lock:
        found = set(_values) | {os.environ.get(name, "").strip() for name in _env_names}
    return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def scrub(text: Any) -> str:
    """`text` as a string with every known secret and every credential-shaped header value replaced."""
    text = text if isinstance(text, str) else str(text)
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_all(values: Iterable[str | None]) -> list[str | None]:
    """`scrub` over a column of text (None stays None)."""
    return [None if value is None else scrub(value) for value in values]


class _ScrubbingFilter(logging.Filter):
    """Scrubs the formatted message and any traceback text of a record before a handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_installed = False


def install() -> None:
    """Scrub every log record made in this process (all loggers, whatever handlers come later) and
    uncaught tracebacks. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()
    scrubber = _ScrubbingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        scrubber.filter(record)
        return record

    logging.setLogRecordFactory(factory)

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        sys.stderr.write(scrub("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = excepthook
