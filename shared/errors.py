"""One exception family, rendered by one handler as RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SkipValidation, ValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.i18n import N_, localize, pydantic_message, tr

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("cradle.errors")


class FieldError(BaseModel):
    field: str
    # Kept as given: a `shared.i18n.Text` is translated when the problem is rendered.
    message: SkipValidation[str]


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []


class CradleError(Exception):
    status: int = 500
    title: str = "Internal error"
    type: str = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra


class BadRequest(CradleError):
    status, title, type = 400, "Bad request", "/problems/bad-request"


class InvalidInput(CradleError):
    status, title, type = 422, "Invalid input", "/problems/invalid-input"


class Unauthorized(CradleError):
    status, title, type = 401, "Unauthorized", "/problems/unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(CradleError):
    status, title, type = 403, "Forbidden", "/problems/forbidden"


class NotFound(CradleError):
    status, title, type = 404, "Not found", "/problems/not-found"


class Conflict(CradleError):
    status, title, type = 409, "Conflict", "/problems/conflict"


class StaleVersion(CradleError):
    """An `If-Match` naming a version the record has moved past."""

    status, title, type = 412, "Precondition failed", "/problems/stale-version"


class ServiceUnavailable(CradleError):
    status, title, type = 503, "Service unavailable", "/problems/unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kwargs)


def invalid(field: str, message: str) -> InvalidInput:
    """A 422 for one field, for rules a schema cannot express (e.g. an unknown town code)."""
    return InvalidInput(f"{field}: {message}", errors=[FieldError(field=field, message=message)])


def problem_response(
    *,
    status: int,
    title: str,
    type_: str = "about:blank",
    detail: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    # In the caller's language (shared/i18n.py); field names stay as they are.
    body: dict[str, Any] = {"type": type_, "title": localize(title), "status": status}
    body["detail"] = localize(detail)
    body["errors"] = [{"field": e.field, "message": localize(e.message)} for e in errors]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """Pydantic's error list as `{field, message}`, the location joined with dots (`capacity.infant`).
    The `body`/`query` prefix is kept off the field name but its kind is said in the message."""
    out: list[FieldError] = []
    for err in raw:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            where, loc = loc[0], loc[1:]
        else:
            where = None
        message = pydantic_message(err) if "type" in err else err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            # Pydantic puts the character position where a field name would be.
            position = ".".join(loc) or "0"
            loc, message = [], tr("{message} at character {position}", message=message, position=position)
        field = ".".join(loc) or (where or "body")
        if where in ("query", "path", "header"):
            message = tr(_PARAMETER_MESSAGES[where], message=message)
        out.append(FieldError(field=field, message=message))
    return out


_PARAMETER_MESSAGES = {
    "query": N_("{message} (query parameter)"),
    "path": N_("{message} (path parameter)"),
    "header": N_("{message} (header parameter)"),
}


def error_response(error: CradleError) -> JSONResponse:
    """The problem+json reply for an error: raised (the handler below) or returned, so that the
    transaction which recorded a refusal still commits."""
    return problem_response(
        status=error.status,
        title=error.title,
        type_=error.type,
        detail=error.detail,
        errors=error.errors,
        headers=error.headers,
        extra=error.extra,
    )


async def _cradle_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CradleError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem_response(
            status=400,
            title="Malformed JSON",
            type_="/problems/malformed-json",
            detail="The request body is not valid JSON.",
            errors=field_errors(raw),
        )
    errors = field_errors(raw)
    return problem_response(
        status=422,
        title="Invalid input",
        type_="/problems/invalid-input",
        detail=tr(
            "{count} field(s) are invalid: {fields}",
            count=len(errors),
            fields=", ".join(e.field for e in errors),
        ),
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(status=exc.status_code, title=title, detail=detail, headers=exc.headers)


async def _dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("dependency_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
    return problem_response(
        status=503,
        title="Service unavailable",
        type_="/problems/unavailable",
        detail="A service this request needs (its database) is unavailable; retry shortly.",
        headers={"Retry-After": "5"},
    )


async def _integrity_conflict(request: Request, exc: Exception) -> JSONResponse:
    # Unique constraints catch races that the service's own checks cannot see.
    log.warning("integrity_conflict", path=request.url.path, error=str(exc)[:300])
    return problem_response(
        status=409,
        title="Conflict",
        type_="/problems/conflict",
        detail="The request conflicts with the current state of the resource; reload and retry.",
    )


# PostgreSQL refuses text it cannot store (a NUL character, an invalid byte sequence): the
# caller's input, so a 422, not a server error.
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})
# The database went away under the request: its connection was lost (class 08), the server is
# shutting down, starting up or restarting (57P01-57P05), or it lacks the resources to serve it
# now (class 53: too many connections, out of memory, disk full). Nothing was done that the caller
# can rely on: a 503 to retry, like a refused connection, never a 500.
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if exc.connection_invalidated or sqlstate.startswith(UNAVAILABLE_SQLSTATE_PREFIXES):
        return await _dependency_unavailable(request, exc)
    if sqlstate in UNSTORABLE_TEXT_SQLSTATES:
        return problem_response(
            status=422,
            title="Invalid input",
            type_="/problems/invalid-input",
            detail="The request holds text that cannot be stored (for example a NUL character).",
            errors=[FieldError(field="body", message="contains a NUL or an invalid character")],
        )
    return await _unexpected(request, exc)


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value (class 22: out of range, too long, not storable). The request's
    # types should have refused it first; a 422 either way, and a warning to find the loose type.
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate in UNSTORABLE_TEXT_SQLSTATES:
        return await _database_error(request, exc)
    log.warning("value_refused_by_database", path=request.url.path, sqlstate=sqlstate, error=str(exc)[:200])
    return problem_response(
        status=422,
        title="Invalid input",
        type_="/problems/invalid-input",
        detail="The request holds a value the database cannot store (out of range, or not storable text).",
        errors=[FieldError(field="body", message="holds a value out of range or not storable")],
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(status=500, title="Internal error", type_="/problems/internal")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CradleError, _cradle_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _dependency_unavailable)
    app.add_exception_handler(PoolTimeout, _dependency_unavailable)
    app.add_exception_handler(ConnectionError, _dependency_unavailable)
    app.add_exception_handler(OSError, _dependency_unavailable)
    app.add_exception_handler(IntegrityError, _integrity_conflict)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
