"""What the routers share: paging and query times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends

from shared.errors import invalid
from shared.pagination import PageParams, page_params

Paging = Annotated[PageParams, Depends(page_params)]


def utc_query(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid(
            field, "give the time with its offset, e.g. 2026-12-05T00:00:00+08:00 (query parameter)"
        )
    return value.astimezone(UTC)
