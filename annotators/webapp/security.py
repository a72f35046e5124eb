"""What makes the rating app safe on a shared network: server-side sessions, CSRF tokens, an Origin
check, login throttling and a request-size cap. The routes in app.py use these; none of them
knows about campaigns or the store.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
import time
from collections import deque
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "factory_annotate_session"
LOGIN_CSRF_COOKIE = "factory_annotate_login_csrf"
CSRF_FIELD = "csrf_token"
MAX_BODY_BYTES = 512 * 1024  # an answer is at most ~20k characters of text, ~250 KB url-encoded
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_token(nbytes: int = 32) -> str:
    """A strong random token (URL-safe text, 8 * nbytes bits): session ids, CSRF tokens, rater tokens."""
    return secrets.token_urlsafe(nbytes)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; a missing one never matches."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


@dataclasses.dataclass
class Session:
    """A logged-in browser: the cookie holds only `id`, never the rater's token."""

    id: str
    kind: Literal["rater", "owner"]
    account: str
    csrf: str
    expires: float


class Sessions:
    """In-memory server-side sessions: a restart logs everyone out (the tokens still work)."""

    def __init__(self, lifetime_s: float = 12 * 3600):
        self.lifetime_s = lifetime_s
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, kind: Literal["rater", "owner"], account: str) -> Session:
        session = Session(new_token(), kind, account, new_token(), time.monotonic() + self.lifetime_s)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}  # drop the expired
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires <= time.monotonic():
                del self._by_id[session_id]
                return None
        return session

    def revoke(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)


class LoginThrottle:
    """Wrong tokens (at the login form or in an `Authorization` header) lock the client out for
    `lockout_s` after `per_client` failures within `window_s`; `overall` failures from all clients
    together within the window lock every client out, so guessing from many addresses is slow too.
    Logins carry no account name, so the whole campaign is the one account."""

    def __init__(self, per_client: int = 5, overall: int = 50, window_s: float = 300.0, lockout_s: float = 300.0):
        self.per_client, self.overall, self.window_s, self.lockout_s = per_client, overall, window_s, lockout_s
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try a token again (0: now)."""
        now = time.monotonic()
        with self._lock:
            until = max(self._locked_until.get(client, 0.0), self._locked_until.get("*", 0.0))
        return max(0, int(until - now + 0.999))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key, limit, times in ((client, self.per_client, self._failures.setdefault(client, deque())),
                                      ("*", self.overall, self._all)):
                times.append(now)
                while times and times[0] <= now - self.window_s:
                    times.popleft()
                if len(times) >= limit:
                    self._locked_until[key] = now + self.lockout_s
                    times.clear()

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def own_origin(scope_scheme: str, host: str | None) -> str:
    return f"{scope_scheme}://{(host or '').lower()}"


def cross_origin(method: str, headers: Any, scheme: str) -> str | None:
    """Why an unsafe request comes from another site (None: it does not). The Origin header, or the
    Referer where a browser sends no Origin, must be this server's own scheme://host:port; another
    port on the same host is another origin, though SameSite calls it the same site."""
    if method not in UNSAFE_METHODS:
        return None
    expected = own_origin(scheme, headers.get("host"))
    origin = headers.get("origin")
    if origin is not None:
        return None if origin.lower() == expected else f"cross-origin request from {origin!r} refused"
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if own_origin(parts.scheme, parts.netloc) != expected:
            return "cross-origin request refused (Referer is another site)"
    return None


class BodyTooLarge(Exception):
    """Raised inside `receive` when a body passes the cap; turned into a 413 by BodyLimit."""


def is_body_too_large(exc: BaseException) -> bool:
    """BodyTooLarge, also when a task group (Starlette's BaseHTTPMiddleware) wrapped it in a group."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_body_too_large(inner) for inner in exc.exceptions)
    return isinstance(exc, BodyTooLarge)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before it is held in memory,
    whether it declares its length or streams chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received, started = 0, False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except Exception as exc:
            if not is_body_too_large(exc):
                raise
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail": "request body too large (at most %d bytes)"}' % self.max_bytes
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
