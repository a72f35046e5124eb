"""The rating web app (FastAPI, server-rendered pages) over one campaign and one store.

Every page and API call needs a token: `Authorization: Bearer <token>`, or the session cookie the
login form sets (a random session id; the session lives in this process and logout ends it). A
rater reaches only the items assigned to them; the owner's token opens the overview. HTML pages
answer auth failures with the login page (401 no token or an ended session, 403 a wrong token,
429 while locked out), the JSON API (`/api/...`) with `{"detail": ...}`. Forms posted with the
cookie carry a CSRF token, unsafe requests from another origin are refused, the API takes only
`application/json`, bodies are capped (413); validation failures are 422 and write nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from annotators.webapp.answers import (
    AnswerBook,
    SubmissionError,
    parse_submission,
    score_field,
)
from annotators.webapp.assignments import assign
from annotators.webapp.campaign import Campaign, Tokens
from annotators.webapp.items import Item, load_items
from annotators.webapp.overview import OverviewBuilder
from annotators.webapp.render import attribute_help, markdown, preference_scale
from annotators.webapp.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    MAX_BODY_BYTES,
    SESSION_COOKIE,
    BodyLimit,
    LoginThrottle,
    Session,
    Sessions,
    cross_origin,
    is_body_too_large,
    new_token,
    same,
)
from factory.store import Store

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals.update(markdown=markdown, score_field=score_field, csrf_field=CSRF_FIELD)


class AccessError(Exception):
    """A refused request; `login` pages offer the login form (auth failures) instead of a message."""

    def __init__(self, status: int, message: str, login: bool = False, headers: dict[str, str] | None = None):
        self.status, self.message, self.login, self.headers = status, message, login, headers


@dataclasses.dataclass(frozen=True)
class Who:
    kind: Literal["rater", "owner"]
    id: str
    session: Session | None = None  # None: the request carried the token itself (Authorization header)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class RatingApp:
    """State shared by the routes: campaign, items, assignments, the answer book, sessions, throttle."""

    def __init__(self, campaign: Campaign, store: Store, throttle: LoginThrottle | None = None):
        self.campaign, self.store = campaign, store
        self.tokens = Tokens(campaign)
        self.sessions = Sessions()
        self.throttle = throttle or LoginThrottle()
        self.items = load_items(campaign, store)
        self.assignments = assign(self.items, [r.id for r in campaign.raters], campaign.raters_per_item, campaign.seed)
        self.book = AnswerBook(campaign, store)
        self.position = {rater: {item.id: n for n, item in enumerate(own)} for rater, own in self.assignments.items()}
        self.known = {item.id for item in self.items}

    def by_token(self, request: Request, token: str) -> Who:
        """The account a token opens; wrong tokens count against the client (and all clients)."""
        client = client_of(request)
        wait = self.throttle.retry_after(client)
        if wait:  # refused before the token is looked at: a lockout must not tell a right token from a wrong one
            raise AccessError(429, f"Too many wrong tokens; try again in {wait} s.", login=True,
                              headers={"Retry-After": str(wait)})
        if not token:
            raise AccessError(401, "Log in with your token.", login=True)
        found = self.tokens.identify(token)
        if found is None:
            self.throttle.failed(client)
            raise AccessError(403, "Unknown token.", login=True)
        self.throttle.succeeded(client)
        return Who(*found)

    def who(self, request: Request, want: Literal["rater", "owner"] | None = None) -> Who:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            who = self.by_token(request, header[7:].strip())
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            session = self.sessions.get(cookie)
            if session is None:
                raise AccessError(401, "Your session has ended; log in again." if cookie else "Log in with your token.",
                                  login=True)
            who = Who(session.kind, session.account, session)
        if want == "owner" and who.kind != "owner":
            raise AccessError(403, "The overview needs the campaign owner's token.")
        if want == "rater" and who.kind != "rater":
            raise AccessError(403, "The owner token does not rate; log in with a rater token.")
        return who

    def check_csrf(self, who: Who, form: dict[str, str]) -> None:
        """A form posted with the session cookie must carry the session's CSRF token; a request with
        the token in its Authorization header cannot be forged by another site, so it needs none."""
        if who.session is not None and not same(form.get(CSRF_FIELD), who.session.csrf):
            raise AccessError(403, "This form has expired or came from another site; reload the page and try again.")

    def secure(self, request: Request) -> bool:
        return self.campaign.secure_cookie or request.url.scheme == "https"

    def item_of(self, who: Who, item_id: str) -> tuple[Item, int]:
        if item_id not in self.known:
            raise AccessError(404, f"No item {item_id!r} in campaign {self.campaign.name}.")
        index = self.position[who.id].get(item_id)
        if index is None:
            raise AccessError(403, f"Item {item_id!r} is not assigned to {who.id}.")
        return self.assignments[who.id][index], index

    def progress(self, rater: str) -> tuple[int, int]:
        own = self.assignments[rater]
        return sum(self.book.done(rater, item) for item in own), len(own)

    def next_item(self, rater: str, after: str | None) -> Item | None:
        """The first unanswered item after `after` in the rater's order (wrapping), never `after` itself."""
        own = self.assignments[rater]
        start = self.position[rater].get(after, -1) + 1 if after else 0
        for offset in range(len(own)):
            item = own[(start + offset) % len(own)]
            if item.id != after and not self.book.done(rater, item):
                return item
        return None

    def page(self, request: Request, who: Who, item: Item, index: int, values: dict[str, str],
             errors: dict[str, str], status: int = 200, saved: str | None = None) -> HTMLResponse:
        done, total = self.progress(who.id)
        return TEMPLATES.TemplateResponse(request, "rate.html", {
            "campaign": self.campaign, "who": who, "item": item, "position": index + 1, "done": done, "total": total,
            "answered": self.book.done(who.id, item), "values": values, "errors": errors, "saved": saved,
            "attributes": attribute_help(), "scale": preference_scale(), "csrf": who.csrf,
        }, status_code=status)

    def login_page(self, request: Request, message: str | None, status: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
        """The login form with a CSRF token that must come back with the post (double-submit cookie)."""
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        response = TEMPLATES.TemplateResponse(request, "login.html", {
            "campaign": self.campaign, "message": message, "csrf": token}, status_code=status, headers=headers)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=self.secure(request))
        return response


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields; an unreadable form is a 422, never a 500."""
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - malformed multipart or url-encoding, however the parser says it
        if is_body_too_large(exc):
            raise
        raise AccessError(422, "The form could not be read.") from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def create_app(campaign: Campaign, store: Store, throttle: LoginThrottle | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app for one campaign; reads the items and the stored answers once, here."""
    state = RatingApp(campaign, store, throttle)
    app = FastAPI(title=f"Rating campaign {campaign.name}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.rating = state

    @app.exception_handler(AccessError)
    def _access(request: Request, exc: AccessError) -> Response:
        headers = {**({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}), **(exc.headers or {})} or None
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
        if exc.login:
            return state.login_page(request, exc.message, exc.status, headers)
        return TEMPLATES.TemplateResponse(request, "message.html", {"campaign": campaign, "message": exc.message},
                                          status_code=exc.status, headers=headers)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        problem = cross_origin(request.method, request.headers, request.url.scheme)
        if problem:
            response: Response = (JSONResponse({"detail": problem}, 403) if request.url.path.startswith("/api/") else
                                  TEMPLATES.TemplateResponse(request, "message.html",
                                                             {"campaign": campaign, "message": problem}, 403))
        else:
            response = await call_next(request)
        response.headers.update({"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                                 # same-origin, not no-referrer: under no-referrer Chromium sends
                                 # `Origin: null` on the app's own form posts, which the guard refuses.
                                 "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
        return response

    # Outermost: a body over the cap is refused before any route (or the guard) reads it.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    # ---- pages -----------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        try:
            who = state.who(request)
        except AccessError as exc:
            if exc.status == 429:
                raise
            return state.login_page(request, None)
        return RedirectResponse("/overview" if who.kind == "owner" else "/next", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return state.login_page(request, None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE)):
            raise AccessError(403, "The login form expired; please log in again.", login=True)
        who = state.by_token(request, form.get("token", "").strip())
        session = state.sessions.create(who.kind, who.id)
        response = RedirectResponse("/overview" if who.kind == "owner" else "/next", status_code=303)
        # The cookie holds a random session id, never the token; SameSite=Strict and the CSRF tokens
        # keep other sites (other ports of this host included) from posting with it.
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="strict", secure=state.secure(request),
                            max_age=int(state.sessions.lifetime_s))
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            if not same((await read_form(request)).get(CSRF_FIELD), session.csrf):
                raise AccessError(403, "This form has expired or came from another site; reload the page and try again.")
            state.sessions.revoke(session.id)  # the cookie is worthless from now on, wherever it was copied
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/next")
    def next_page(request: Request, after: str | None = None, saved: str | None = None) -> Response:
        who = state.who(request, "rater")
        item = state.next_item(who.id, after)
        if item is None:
            done, total = state.progress(who.id)
            return TEMPLATES.TemplateResponse(request, "message.html", {
                "campaign": campaign, "who": who, "csrf": who.csrf,
                "message": f"All done: {done} of {total} items answered. Thank you!",
                "items": state.assignments[who.id]})
        query = f"?{urlencode({'saved': saved})}" if saved else ""
        return RedirectResponse(f"/items/{quote(item.id, safe='')}{query}", status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str, saved: str | None = None) -> Response:
        who = state.who(request, "rater")
        item, index = state.item_of(who, item_id)
        return state.page(request, who, item, index, state.book.values(who.id, item), {}, saved=saved)

    @app.post("/items/{item_id}", response_class=HTMLResponse)
    async def submit_form(request: Request, item_id: str) -> Response:
        who = state.who(request, "rater")
        item, index = state.item_of(who, item_id)
        data = await read_form(request)
        state.check_csrf(who, data)
        data.pop(CSRF_FIELD, None)
        try:
            submission = parse_submission(campaign, data)
        except SubmissionError as exc:
            return state.page(request, who, item, index, data, dict(exc.problems[::-1]), status=422)
        await run_in_threadpool(state.book.submit, who.id, item, submission)
        query = urlencode({"after": item.id, "saved": item.id})
        return RedirectResponse(f"/next?{query}", status_code=303)

    @app.get("/overview", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        who = state.who(request, "owner")
        overview = OverviewBuilder(state.book, store, state.items, state.assignments).build()
        return TEMPLATES.TemplateResponse(request, "overview.html", {"campaign": campaign, "o": overview,
                                                                     "csrf": who.csrf})

    # ---- JSON API --------------------------------------------------------------------------------

    @app.get("/api/assignments")
    def api_assignments(request: Request) -> dict[str, Any]:
        who = state.who(request, "rater")
        done, total = state.progress(who.id)
        return {"rater": who.id, "done": done, "total": total,
                "items": [{"id": i.id, "done": state.book.done(who.id, i)} for i in state.assignments[who.id]]}

    @app.get("/api/items/{item_id}")
    def api_item(request: Request, item_id: str) -> dict[str, Any]:
        who = state.who(request, "rater")
        item, _ = state.item_of(who, item_id)
        return {"id": item.id, "prompt": item.prompt, "responses": list(item.responses), "task": campaign.task,
                "answer": state.book.values(who.id, item), "done": state.book.done(who.id, item)}

    @app.post("/api/items/{item_id}")
    async def api_submit(request: Request, item_id: str) -> Response:
        who = state.who(request, "rater")
        item, _ = state.item_of(who, item_id)
        if media_type(request) != "application/json":  # a cross-site form can send text/plain, never JSON
            return JSONResponse({"detail": "send the answer as Content-Type: application/json"}, 415)
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            return JSONResponse({"detail": [{"field": None, "message": "the body must be a JSON object"}]}, 422)
        if not isinstance(body, dict):
            return JSONResponse({"detail": [{"field": None, "message": "the body must be a JSON object"}]}, 422)
        try:
            submission = parse_submission(campaign, body)
        except SubmissionError as exc:
            return JSONResponse({"detail": [{"field": f, "message": m} for f, m in exc.problems]}, 422)
        ids = await run_in_threadpool(state.book.submit, who.id, item, submission)
        done, total = state.progress(who.id)
        return JSONResponse({"ok": True, "rows": ids, "done": done, "total": total})

    @app.get("/api/overview")
    def api_overview(request: Request) -> dict[str, Any]:
        state.who(request, "owner")
        return dataclasses.asdict(OverviewBuilder(state.book, store, state.items, state.assignments).build())

    return app
