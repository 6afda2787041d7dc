"""The feed: the same events a subscription would receive, for systems that cannot take webhooks,
a page at a time or as a stream. The cursor is the position in the event log after the last row
looked at, so a reader never sees an event twice nor misses one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.models import EventRecord
from services.delivery.service.audience import (
    linked_reader,
    places_by_event,
    redacted,
    type_matcher,
    visible_to,
)
from services.delivery.service.subscriptions import require_reader
from shared.errors import invalid
from shared.identity import Identity
from shared.pagination import decode_cursor, encode_cursor

SCAN_ROWS = 2000  # rows looked at per page at most, so a rare type never makes one request long


@dataclass
class FeedSlice:
    items: list[tuple[str, dict[str, Any]]]  # (cursor after this event, the event as the reader sees it)
    cursor: str
    has_more: bool


def position(cursor: str | None) -> int:
    if not cursor:
        return 0
    value = decode_cursor(cursor)
    if len(value) != 1 or not isinstance(value[0], int) or value[0] < 0:
        raise invalid("cursor", "is not a cursor this API returned")
    return value[0]


def cursor_at(seq: int) -> str:
    return encode_cursor([seq])


async def read(
    *, session: AsyncSession, caller: Identity, after: int, types: list[str] | None, limit: int
) -> FeedSlice:
    require_reader(caller)
    caller = await linked_reader(session, caller)
    matcher = type_matcher(types) if types else None
    condition = visible_to(caller)
    items: list[tuple[str, dict[str, Any]]] = []
    last = after
    scanned = 0
    while True:
        batch = min(SCAN_ROWS - scanned, max(limit * 2, 100))
        if batch <= 0:
            return FeedSlice(items=items, cursor=cursor_at(last), has_more=True)
        rows = (
            await session.execute(
                select(EventRecord.seq, EventRecord.type, EventRecord.body)
                .where(EventRecord.seq > last, condition)
                .order_by(EventRecord.seq)
                .limit(batch)
            )
        ).all()
        scanned += batch
        wanted = [r for r in rows if matcher is None or matcher.match(r.type)]
        places = await places_by_event(session, [r.seq for r in wanted[: limit - len(items)]])
        for row in rows:
            if matcher is None or matcher.match(row.type):
                if len(items) == limit:
                    return FeedSlice(items=items, cursor=cursor_at(last), has_more=True)
                items.append((cursor_at(row.seq), redacted(caller, json.loads(row.body), places[row.seq])))
            last = row.seq
        if len(rows) < batch:
            return FeedSlice(items=items, cursor=cursor_at(last), has_more=False)
