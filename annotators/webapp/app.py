"""The rating web app (FastAPI, server-rendered pages) over one campaign and one store.

Every page and API call needs a token: `Authorization: Bearer <token>`, or the cookie the login
form sets. A rater reaches only the items assigned to them; the owner's token opens the overview.
HTML pages answer auth failures with the login page (401 no token, 403 a wrong one), the JSON API
(`/api/...`) with `{"detail": ...}`. Validation failures are 422 and write nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

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
from factory.store import Store

COOKIE = "factory_annotate_token"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.globals.update(markdown=markdown, score_field=score_field)


class AccessError(Exception):
    """A refused request; `login` pages offer the login form (auth failures) instead of a message."""

    def __init__(self, status: int, message: str, login: bool = False):
        self.status, self.message, self.login = status, message, login


@dataclasses.dataclass(frozen=True)
class Who:
    kind: Literal["rater", "owner"]
    id: str


class RatingApp:
    """State shared by the routes: campaign, items, assignments and the answer book."""

    def __init__(self, campaign: Campaign, store: Store):
        self.campaign, self.store = campaign, store
        self.tokens = Tokens(campaign)
        self.items = load_items(campaign, store)
        self.assignments = assign(self.items, [r.id for r in campaign.raters], campaign.raters_per_item, campaign.seed)
        self.book = AnswerBook(campaign, store)
        self.position = {rater: {item.id: n for n, item in enumerate(own)} for rater, own in self.assignments.items()}
        self.known = {item.id for item in self.items}

    def who(self, request: Request, want: Literal["rater", "owner"] | None = None) -> Who:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        if not token:
            raise AccessError(401, "Log in with your token.", login=True)
        found = self.tokens.identify(token)
        if found is None:
            raise AccessError(403, "Unknown token.", login=True)
        who = Who(*found)
        if want == "owner" and who.kind != "owner":
            raise AccessError(403, "The overview needs the campaign owner's token.")
        if want == "rater" and who.kind != "rater":
            raise AccessError(403, "The owner token does not rate; log in with a rater token.")
        return who

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
            "attributes": attribute_help(), "scale": preference_scale(),
        }, status_code=status)


def create_app(campaign: Campaign, store: Store) -> FastAPI:
    """The app for one campaign; reads the items and the stored answers once, here."""
    state = RatingApp(campaign, store)
    app = FastAPI(title=f"Rating campaign {campaign.name}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.rating = state

    @app.exception_handler(AccessError)
    def _access(request: Request, exc: AccessError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
        name = "login.html" if exc.login else "message.html"
        return TEMPLATES.TemplateResponse(request, name, {"campaign": campaign, "message": exc.message},
                                          status_code=exc.status, headers=headers)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.update({"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
        return response

    # ---- pages -----------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        try:
            who = state.who(request)
        except AccessError:
            return TEMPLATES.TemplateResponse(request, "login.html", {"campaign": campaign, "message": None})
        return RedirectResponse("/overview" if who.kind == "owner" else "/next", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "login.html", {"campaign": campaign, "message": None})

    @app.post("/login")
    async def login(request: Request) -> Response:
        token = str((await request.form()).get("token") or "").strip()
        found = state.tokens.identify(token) if token else None
        if found is None:
            raise AccessError(403 if token else 401, "Unknown token." if token else "Log in with your token.", login=True)
        response = RedirectResponse("/overview" if found[0] == "owner" else "/next", status_code=303)
        # SameSite=Strict keeps other sites from posting answers with the rater's cookie.
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    @app.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/next")
    def next_page(request: Request, after: str | None = None, saved: str | None = None) -> Response:
        who = state.who(request, "rater")
        item = state.next_item(who.id, after)
        if item is None:
            done, total = state.progress(who.id)
            return TEMPLATES.TemplateResponse(request, "message.html", {
                "campaign": campaign, "who": who, "message": f"All done: {done} of {total} items answered. Thank you!",
                "items": state.assignments[who.id]})
        query = f"?saved={saved}" if saved else ""
        return RedirectResponse(f"/items/{item.id}{query}", status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str, saved: str | None = None) -> Response:
        who = state.who(request, "rater")
        item, index = state.item_of(who, item_id)
        return state.page(request, who, item, index, state.book.values(who.id, item), {}, saved=saved)

    @app.post("/items/{item_id}", response_class=HTMLResponse)
    async def submit_form(request: Request, item_id: str) -> Response:
        who = state.who(request, "rater")
        item, index = state.item_of(who, item_id)
        data = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
        try:
            submission = parse_submission(campaign, data)
        except SubmissionError as exc:
            return state.page(request, who, item, index, data, dict(exc.problems[::-1]), status=422)
        await run_in_threadpool(state.book.submit, who.id, item, submission)
        return RedirectResponse(f"/next?after={item.id}&saved={item.id}", status_code=303)

    @app.get("/overview", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        state.who(request, "owner")
        overview = OverviewBuilder(state.book, store, state.items, state.assignments).build()
        return TEMPLATES.TemplateResponse(request, "overview.html", {"campaign": campaign, "o": overview})

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
        try:
            body = await request.json()
        except ValueError:
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
