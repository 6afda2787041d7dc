"""What the routers share: paging, the If-Match header, query times, refusals that still commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header
from fastapi.responses import JSONResponse

from shared.errors import CradleError, invalid, problem_response
from shared.pagination import PageParams, page_params

Paging = Annotated[PageParams, Depends(page_params)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=200)]


def utc_query(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid(
            field, "give the time with its offset, e.g. 2026-12-05T00:00:00+08:00 (query parameter)"
        )
    return value.astimezone(UTC)


def problem(error: CradleError) -> JSONResponse:
    """Render a refusal without raising, so the transaction that recorded it still commits."""
    return problem_response(
        status=error.status,
        title=error.title,
        type_=error.type,
        detail=error.detail,
        errors=error.errors,
        headers=error.headers,
        extra=error.extra,
    )
