"""Cursor pagination: `?limit=&cursor=` in, `{"items": [...], "next_cursor": str|null}` out."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from shared.errors import invalid

T = TypeVar("T")
R = TypeVar("R")

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


def _typed(column: Any, value: Any) -> Any:
    """A cursor holds JSON text; the database compares against the column's own type."""
    try:
        python_type = column.type.python_type
    except (AttributeError, NotImplementedError):
        return value
    try:
        if python_type is datetime and isinstance(value, str):
            return datetime.fromisoformat(value)
        if python_type is date and isinstance(value, str):
            return date.fromisoformat(value)
        if python_type is int and not isinstance(value, bool):
            return int(value)
        if python_type is str:
            return str(value)
    except (TypeError, ValueError) as exc:
        raise invalid("cursor", "is not a cursor this API returned") from exc
    return value


def keyset(
    query: Select[Any], key: Sequence[Any], page: PageParams, *, descending: bool = False
) -> Select[Any]:
    """`query` ordered by `key` (unique together: end it with the id), starting after the cursor's
    position, `limit + 1` rows (the extra one says whether there is a next page; see `cut_page`)."""
    columns = list(key)
    if page.after is not None:
        if len(page.after) != len(columns):
            raise invalid("cursor", "is not a cursor this API returned")
        position = tuple(_typed(column, value) for column, value in zip(columns, page.after, strict=True))
        row = tuple_(*columns)
        query = query.where(row < position if descending else row > position)
    order = [column.desc() if descending else column.asc() for column in columns]
    return query.order_by(*order).limit(page.limit + 1)


def cut_page(
    rows: Sequence[R], *, limit: int, position_of: Callable[[R], list[Any]]
) -> tuple[list[R], str | None]:
    """The page's rows and the cursor after the last one (None on the last page), from rows fetched
    with `keyset`."""
    kept = list(rows[:limit])
    next_cursor = encode_cursor(position_of(kept[-1])) if len(rows) > limit and kept else None
    return kept, next_cursor
