"""The review web UI and JSON API (FastAPI, server-rendered Jinja2 pages).

Every page and API call needs a session (except /login and the health probes, which show no
content); roles are checked on the server for every route; every POST must carry the
session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`). Store calls are
synchronous: FastAPI runs these handlers in its thread pool.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from crossguard.core.errors import CrossguardError, InvalidInput
from crossguard.core.media import MediaSettings
from crossguard.core.taxonomy import Category
from crossguard.review import evidence, priority
from crossguard.review.auth import Accounts, Session, csrf_ok
from crossguard.review.errors import Conflict, Forbidden, LeaseLost, TaskNotFound
from crossguard.review.media import PREVIEW_TYPE, concealed_preview, read_shown_media
from crossguard.review.stats import LeadStats
from crossguard.review.store import ROLES, ReviewStore, User

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LOGIN_CSRF_COOKIE = "crossguard_review_login"
MESSAGES = {
    "verdict": "Verdict recorded.",
    "final": "Verdict recorded: the task is decided and its final decision is published.",
    "to_lead": "Verdict recorded: reviewers disagree, so a lead will break the tie.",
    "skipped": "Task skipped; it will not be offered to you again.",
    "escalated": "Task sent to the leads.",
    "released": "Task returned to the queue.",
    "empty": "Nothing in your queue right now.",
    "appeal": "Appeal opened: the content is back in the queue with its decision.",
    "user": "User created.",
    "saved": "Preference saved.",
}
STATUS = {TaskNotFound: 404, LeaseLost: 409, Conflict: 409, Forbidden: 403, InvalidInput: 400}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: browsers then send a real Origin on our own form posts.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class AuthRequired(Exception):
    """No valid session: pages redirect to /login, API calls get 401."""


class CsrfRejected(Exception):
    pass


@dataclass(frozen=True)
class WebContext:
    store: ReviewStore
    accounts: Accounts
    cookie_name: str
    cookie_secure: bool
    on_final: Callable[[], None]  # wakes the outbox publisher
    stats: LeadStats
    public_url: str = ""
    media: MediaSettings = field(default_factory=MediaSettings)


def _ctx(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def current(request: Request) -> Session:
    ctx = _ctx(request)
    session = ctx.accounts.session(request.cookies.get(ctx.cookie_name, ""))
    if session is None:
        raise AuthRequired()
    request.state.session = session
    return session


def _origin_ok(request: Request) -> bool:
    """A browser's Origin header, when sent, must name this service (defence in depth)."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    allowed = {request.headers.get("host", ""), urlparse(_ctx(request).public_url).netloc}
    return urlparse(origin).netloc in allowed - {""}


async def checked(request: Request, session: Annotated[Session, Depends(current)]) -> Session:
    """A session whose request carries its CSRF token (every POST)."""
    if not _origin_ok(request):
        raise CsrfRejected()
    given = request.headers.get("x-csrf-token")
    if given is None:
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if not csrf_ok(session.csrf_token, given):
        raise CsrfRejected()
    return session


def lead_only(session: Annotated[Session, Depends(current)]) -> Session:
    if session.user.role not in ("lead", "admin"):
        raise Forbidden("your role does not allow this page")
    return session


def admin_only(session: Annotated[Session, Depends(current)]) -> Session:
    if session.user.role != "admin":
        raise Forbidden("your role does not allow this page")
    return session


Current = Annotated[Session, Depends(current)]
Checked = Annotated[Session, Depends(checked)]
Lead = Annotated[Session, Depends(lead_only)]
Admin = Annotated[Session, Depends(admin_only)]


def _status_for(exc: CrossguardError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def create_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["categories"] = [c.value for c in Category if c != Category.PROFANITY]
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api/")

    @app.exception_handler(AuthRequired)
    async def _auth_required(request: Request, _exc: AuthRequired) -> Response:
        if wants_html(request) and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"error": "authentication required"}, status_code=401)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _exc: CsrfRejected) -> Response:
        log.warning("csrf token rejected", extra={"path": request.url.path})
        return JSONResponse({"error": "CSRF token missing or invalid"}, status_code=403)

    @app.exception_handler(CrossguardError)
    async def _domain(request: Request, exc: CrossguardError) -> Response:
        status = _status_for(exc)
        if wants_html(request):
            session = getattr(request.state, "session", None)
            return templates.TemplateResponse(
                request,
                "error.html",
                {"session": session, "status": status, "message": str(exc)},
                status_code=status,
            )
        return JSONResponse({"error": str(exc)}, status_code=status)

    def page(request: Request, name: str, session: Session | None, **values: Any) -> Response:
        msg = request.query_params.get("msg", "")
        return templates.TemplateResponse(
            request,
            name,
            {"session": session, "message": MESSAGES.get(msg, ""), **values},
        )

    # -- health --------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            with ctx.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    # -- login ---------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", None, login_csrf=token, error="")
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            secure=ctx.cookie_secure,
            samesite="strict",
            max_age=1800,
        )
        return response

    @app.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        csrf_token: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        if not _origin_ok(request) or not csrf_ok(
            request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token
        ):
            raise CsrfRejected()
        user = ctx.accounts.authenticate(username.strip(), password)
        if user is None:
            response = page(
                request,
                "login.html",
                None,
                login_csrf=csrf_token,
                error="Unknown user or wrong password.",
            )
            response.status_code = 401
            return response
        token, _csrf = ctx.accounts.open_session(user)
        response = RedirectResponse("/queue", status_code=303)
        response.set_cookie(
            ctx.cookie_name,
            token,
            httponly=True,
            secure=ctx.cookie_secure,
            samesite="strict",
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout")
    def logout(request: Request, session: Checked) -> Response:
        ctx.accounts.close_session(request.cookies.get(ctx.cookie_name, ""), session.user)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(ctx.cookie_name, path="/")
        return response

    # -- queue and tasks -----------------------------------------------------------------

    @app.get("/")
    def root(_session: Current) -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(request: Request, session: Current) -> Response:
        now = ctx.store.clock()
        rows = [_queue_row(r, now, session.user) for r in ctx.store.queue(session.user)]
        return page(request, "queue.html", session, rows=rows, now=now)

    @app.post("/claim")
    def claim(session: Checked) -> Response:
        task_id = ctx.store.claim(session.user)
        if task_id is None:
            return RedirectResponse("/queue?msg=empty", status_code=303)
        return RedirectResponse(f"/tasks/{task_id}", status_code=303)

    @app.get("/tasks/{task_id}", response_class=HTMLResponse)
    def task_page(request: Request, task_id: str, session: Current) -> Response:
        view = ctx.store.view(session.user, task_id)
        if session.user.reveal_media:
            ctx.store.audit(session.user.username, "reveal", task_id, "preference")
        now = ctx.store.clock()
        return page(
            request,
            "task.html",
            session,
            task=view.row,
            shown=evidence.present(view.item, view.decision),
            verdicts=view.verdicts,
            revealed=ctx.store.revealed(session.user, task_id),
            remaining=_remaining(view.row.due_at, now),
            holds=view.row.lease_owner == session.user.id
            and view.row.lease_until is not None
            and view.row.lease_until >= now,
        )

    @app.post("/tasks/{task_id}/reveal")
    def reveal(task_id: str, session: Checked) -> dict[str, str]:
        ctx.store.view(session.user, task_id, audit=False)  # visibility check
        ctx.store.audit(session.user.username, "reveal", task_id)
        return {"status": "revealed"}

    @app.get("/tasks/{task_id}/media/{part_id}")
    def media(task_id: str, part_id: str, session: Current) -> Response:
        view = ctx.store.view(session.user, task_id, audit=False)
        if view.item is None:
            raise TaskNotFound("content expired")
        for part in view.item.parts:
            if part.part_id == part_id and part.HasField("media"):
                break
        else:
            raise TaskNotFound(f"no media part {part_id[:64]}")
        revealed = ctx.store.revealed(session.user, task_id)
        # Every fetch is audited (ids only, never content), before any byte leaves.
        variant = "original" if revealed else "preview"
        ctx.store.audit(session.user.username, "media", task_id, f"part={part_id[:64]} {variant}")
        mime = part.media.mime_type
        if not revealed and not mime.startswith("image/"):
            raise Forbidden("reveal the task's media before playing it")
        data = read_shown_media(part.media, ctx.media)
        if not revealed:
            settings = ctx.store.settings
            data = concealed_preview(data, settings.preview_max_side, settings.preview_max_pixels)
            mime = PREVIEW_TYPE
        return Response(data, media_type=mime, headers={"Content-Disposition": "inline"})

    @app.post("/tasks/{task_id}/verdict")
    def verdict(
        task_id: str,
        session: Checked,
        action: Annotated[str, Form(max_length=16)],
        categories: Annotated[list[str] | None, Form()] = None,
        note: Annotated[str, Form()] = "",
    ) -> Response:
        result = ctx.store.submit_verdict(session.user, task_id, action, categories or [], note)
        if result.final:
            ctx.on_final()
        msg = "final" if result.final else "to_lead" if result.to_lead else "verdict"
        return RedirectResponse(f"/queue?msg={msg}", status_code=303)

    @app.post("/tasks/{task_id}/skip")
    def skip(task_id: str, session: Checked) -> Response:
        ctx.store.skip(session.user, task_id)
        return RedirectResponse("/queue?msg=skipped", status_code=303)

    @app.post("/tasks/{task_id}/escalate")
    def escalate(task_id: str, session: Checked, note: Annotated[str, Form()] = "") -> Response:
        ctx.store.escalate(session.user, task_id, note)
        return RedirectResponse("/queue?msg=escalated", status_code=303)

    @app.post("/tasks/{task_id}/release")
    def release(task_id: str, session: Checked) -> Response:
        ctx.store.release(session.user, task_id)
        return RedirectResponse("/queue?msg=released", status_code=303)

    @app.post("/preferences")
    def preferences(session: Checked, reveal_media: Annotated[str, Form()] = "") -> Response:
        ctx.accounts.set_reveal_preference(session.user, reveal_media == "on")
        return RedirectResponse("/queue?msg=saved", status_code=303)

    # -- lead ----------------------------------------------------------------------------

    @app.get("/lead", response_class=HTMLResponse)
    def lead_page(request: Request, session: Lead) -> Response:
        return page(
            request,
            "lead.html",
            session,
            health=ctx.stats.health(),
            duration=lambda age: _duration(int(age.total_seconds())) if age else "—",
            throughput=ctx.stats.throughput(),
            agreement=ctx.stats.agreement(),
            decided=ctx.stats.recent_decided(),
        )

    @app.post("/appeals")
    def appeal(
        session: Checked,
        content_id: Annotated[str, Form(max_length=256)],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        ctx.store.appeal(session.user, content_id, reason)
        return RedirectResponse("/lead?msg=appeal", status_code=303)

    # -- admin ---------------------------------------------------------------------------

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, session: Admin) -> Response:
        return page(
            request,
            "admin.html",
            session,
            users=ctx.accounts.list_users(),
            roles=ROLES,
            audit=ctx.stats.audit_entries(),
        )

    @app.post("/admin/users")
    def create_user(
        session: Checked,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
        role_: Annotated[str, Form(alias="role", max_length=16)],
    ) -> Response:
        if session.user.role != "admin":
            raise Forbidden("only admins create users")
        ctx.accounts.create_user(username, password, role_, actor=session.user.username)
        return RedirectResponse("/admin?msg=user", status_code=303)

    # -- JSON API ------------------------------------------------------------------------

    @app.get("/api/me")
    def api_me(session: Current) -> dict[str, Any]:
        return {
            "username": session.user.username,
            "role": session.user.role,
            "csrf_token": session.csrf_token,
        }

    @app.get("/api/queue")
    def api_queue(session: Current) -> list[dict[str, Any]]:
        now = ctx.store.clock()
        return [_queue_row(r, now, session.user) for r in ctx.store.queue(session.user)]

    @app.post("/api/claim")
    def api_claim(session: Checked) -> dict[str, Any]:
        return {"task_id": ctx.store.claim(session.user)}

    @app.post("/api/tasks/{task_id}/verdict")
    async def api_verdict(task_id: str, request: Request, session: Checked) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise InvalidInput("the request body is not valid JSON") from None
        action, categories, note = _verdict_body(body)
        result = await run_in_threadpool(
            ctx.store.submit_verdict, session.user, task_id, action, categories, note
        )
        if result.final:
            ctx.on_final()
        return {"final": result.final, "action": result.action, "to_lead": result.to_lead}

    @app.get("/api/admin/users")
    def api_users(session: Admin) -> list[dict[str, str]]:
        return [{"username": u.username, "role": u.role} for u in ctx.accounts.list_users()]

    return app


def _verdict_body(body: Any) -> tuple[str, list[str], str]:
    """The JSON API's verdict body, {"action": str, "categories": [str], "note": str}: wrong
    shapes are InvalidInput (400), never coerced (a string is not a list of characters). The
    store checks the values (known action and category names, note length)."""
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    action = body.get("action", "")
    note = body.get("note", "")
    categories = body.get("categories", [])
    if not isinstance(action, str):
        raise InvalidInput('"action" must be a string')
    if not isinstance(note, str):
        raise InvalidInput('"note" must be a string')
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise InvalidInput('"categories" must be a list of category names')
    return action, categories, note


def _remaining(due: datetime, now: datetime) -> dict[str, Any]:
    seconds = int((due - now).total_seconds())
    return {
        "seconds": seconds,
        "overdue": seconds < 0,
        "label": _duration(abs(seconds)) + (" overdue" if seconds < 0 else " left"),
        "due_iso": due.isoformat(),
    }


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours >= 24:
        return f"{hours // 24}d {hours % 24}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds % 60:02d}s"


def _queue_row(row: Any, now: datetime, user: User) -> dict[str, Any]:
    return {
        "task_id": row.task_id,
        "content_id": row.content_id,
        "tier": row.tier,
        "severity": row.severity,
        "categories": [c for c in row.categories.split(",") if c],
        "priority": round(priority.shown_priority(row.created_at, row.rank_key, now), 2),
        "remaining": _remaining(row.due_at, now),
        "required_verdicts": row.required_verdicts,
        "appeal": bool(row.appeal_of),
        "mine": row.lease_owner == user.id,
    }
