"""Browser sign-in and sign-out: an API key exchanged for the signed session cookie (session_cookie.py).

The key travels once, in a POST body (JSON or a form) or a bearer header, never in a URL; the browser then
holds an http-only, SameSite=Strict cookie naming the key, and a CSRF token bound to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError

from app.api.clock import NowDep
from app.api.deps import BearerDep, SessionDep
from app.api.responses import problems
from app.auth import guard, session_cookie
from app.auth.guard import Credentials
from app.auth.schemas import SessionCreate, SessionRead
from app.config import get_settings
from app.errors import CsrfFailed, Forbidden, InvalidInput, Unauthorized

router = APIRouter(tags=["session"])

FORM = "application/x-www-form-urlencoded"
DEFAULT_NEXT = "/annotate"
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": SessionCreate.model_json_schema()},
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {"key": {"type": "string"}, "next": {"type": "string"}},
                    "required": ["key"],
                }
            },
        },
    }
}


@dataclass(frozen=True)
class SubmittedKey:
    """The key a sign-in sent in its body, and whether it came from a form (which is answered by a redirect
    to its local `next` page)."""

    key: str | None
    form: bool
    next_page: str


def _local_page(value: str | None) -> str:
    """`next` only as a path on this site: never another origin (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return DEFAULT_NEXT
    return value


async def submitted_key(request: Request) -> SubmittedKey:
    """The body of a sign-in: `{"key": ...}` as JSON, `key=...` as a form, or nothing (then the bearer)."""
    body = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body:
        return SubmittedKey(None, False, DEFAULT_NEXT)
    if media == FORM:
        try:
            fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        except ValueError as exc:  # more fields than a sign-in form has
            raise InvalidInput("send key=... (and next=...) only", field="key") from exc
        form_key = fields.get("key", [""])[0]
        if not form_key:
            raise InvalidInput("paste your API key", field="key")
        return SubmittedKey(form_key, True, _local_page(fields.get("next", [None])[0]))
    try:
        parsed = SessionCreate.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput('send {"key": "<API key>"} as JSON, or key=... as a form', field="key") from exc
    return SubmittedKey(parsed.key, False, DEFAULT_NEXT)


def _same_site(request: Request) -> None:
    """Refuse a sign-in posted from another site (login CSRF: signing a victim into the attacker's key)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("sign in from this site's own page")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("sign in from this site's own page")


def _secure(request: Request) -> bool:
    configured = get_settings().session_cookie_secure
    return configured if configured is not None else request.url.scheme == "https"


def _set_cookies(response: Response, request: Request, value: str, csrf: str, max_age: int) -> None:
    secure = _secure(request)
    response.set_cookie(
        session_cookie.SESSION_COOKIE,
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        session_cookie.CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure, samesite="strict"
    )


@router.post(
    "/session",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionRead,
    responses={303: {"description": "A form sign-in: on to its `next` page"}, **problems(403)},
    openapi_extra=_BODY_DOC,
)
def sign_in(
    request: Request,
    submitted: Annotated[SubmittedKey, Depends(submitted_key)],
    bearer: BearerDep,
    session: SessionDep,
    now: NowDep,
) -> Response:
    """Exchange an API key (JSON `{"key"}`, a form, or the bearer header) for a session cookie."""
    _same_site(request)
    credentials = Credentials(
        key=submitted.key or (bearer.credentials if bearer is not None else None),
        bootstrap_key=request.app.state.admin_key,
        client=request.client.host if request.client else "unknown",
    )
    caller = guard.authenticate(session, credentials, now)
    if caller.key_id is None:
        raise InvalidInput(
            "the bootstrap admin key has no key row to sign in with; create a key "
            "(`real-align keys create` or POST /v1/keys) and sign in with it",
            field="key",
        )
    settings = get_settings()
    secret = settings.secret_key.get_secret_value()
    expires_at = now + timedelta(seconds=settings.session_ttl_seconds)
    value = session_cookie.issue(secret, caller.key_id, expires_at)
    csrf = session_cookie.csrf_token(secret, value)
    read = SessionRead(
        name=caller.name,
        role=caller.role,
        projects=sorted(caller.projects, key=str),
        reviewer=caller.reviewer,
        key_id=caller.key_id,
        expires_at=session_cookie.expires_at(value),
        csrf_token=csrf,
    )
    response: Response = (
        RedirectResponse(submitted.next_page, status_code=status.HTTP_303_SEE_OTHER)
        if submitted.form
        else JSONResponse(read.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
    )
    response.headers["Cache-Control"] = "no-store"
    _set_cookies(response, request, value, csrf, settings.session_ttl_seconds)
    return response


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, responses=problems(403))
def sign_out(request: Request, now: NowDep) -> Response:
    """Sign out: the session cookies are cleared (a live session must send its X-CSRF-Token)."""
    value = request.cookies.get(session_cookie.SESSION_COOKIE)
    if value:
        secret = get_settings().secret_key.get_secret_value()
        try:
            session_cookie.verify(secret, value, now)
        except Unauthorized:
            pass  # an expired or broken cookie is simply cleared
        else:
            if not session_cookie.csrf_valid(secret, value, request.headers.get(session_cookie.CSRF_HEADER)):
                raise CsrfFailed(f"send the {session_cookie.CSRF_HEADER} header of this session")
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    secure = _secure(request)
    for name in (session_cookie.SESSION_COOKIE, session_cookie.CSRF_COOKIE):
        response.delete_cookie(
            name,
            path="/",
            secure=secure,
            httponly=name == session_cookie.SESSION_COOKIE,
            samesite="strict",
        )
    return response
