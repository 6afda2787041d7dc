"""Cursor pagination: `?limit=&cursor=` in, `{"items": [...], "next_cursor": str|null}` out."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import invalid

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    after: list[Any] | None


def encode_cursor(position: list[Any]) -> str:
    """An opaque token holding the sort key of the last row returned."""
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "is not a cursor this API returned") from exc
    if not isinstance(value, list):
        raise invalid("cursor", "is not a cursor this API returned")
    return value


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the last page")] = None,
) -> PageParams:
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


def make_page(rows: list[T], *, limit: int, position_of: Any) -> Page[T]:
    """`rows` was fetched with `limit + 1`; the extra row only says whether there is a next page."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(position_of(rows[-1])) if has_more and rows else None
    return Page[T](items=rows, next_cursor=next_cursor)
