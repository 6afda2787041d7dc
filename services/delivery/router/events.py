"""`/v1/events`: the feed, a page at a time or as Server-Sent Events, of the same events (cut to
what the caller may see) that a subscription of the caller's would receive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import TypeAdapter, ValidationError

from services.delivery.deps import FeedReader
from services.delivery.schemas import EventTypeGlob, FeedPage
from services.delivery.service import feed
from shared.errors import FieldError, InvalidInput
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.service import SessionDep

router = APIRouter(prefix="/v1/events", tags=["events"])
_GLOBS = TypeAdapter(list[EventTypeGlob])
TypesQuery = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="Event types or globs (`cradle.workforce.ban.*`), repeated or comma-separated",
    ),
]
CursorQuery = Annotated[str | None, Query(max_length=512, description="`next_cursor` (or an event's `id:`)")]


def _types(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    split = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        return _GLOBS.validate_python(split) or None
    except ValidationError as exc:
        errors = [FieldError(field="types", message=str(e["msg"])) for e in exc.errors()]
        raise InvalidInput("types: " + errors[0].message, errors=errors) from None


class Signal:
    """Wakes every open stream when an event is recorded in this process (other replicas' events are
    found by polling)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@router.get("", response_model=FeedPage)
async def read_feed(
    session: SessionDep,
    caller: FeedReader,
    cursor: CursorQuery = None,
    types: TypesQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> FeedPage:
    """The events you may see, oldest first, after `cursor` (from the start without one). Keep
    `next_cursor` and ask again with it: it is given even when nothing new has come."""
    page = await feed.read(
        session=session, caller=caller, after=feed.position(cursor), types=_types(types), limit=limit
    )
    return FeedPage(items=[event for _, event in page.items], next_cursor=page.cursor, has_more=page.has_more)


@dataclass(frozen=True)
class StreamStart:
    position: int
    types: list[str] | None


async def stream_start(
    cursor: CursorQuery = None,
    types: TypesQuery = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=512)] = None,
) -> StreamStart:
    """Checked before the stream opens, so a bad cursor is a 422, not a broken stream."""
    return StreamStart(position=feed.position(last_event_id or cursor), types=_types(types))


@router.get("/stream", response_class=EventSourceResponse)
async def stream_feed(
    request: Request, caller: FeedReader, start: Annotated[StreamStart, Depends(stream_start)]
) -> AsyncIterator[ServerSentEvent]:
    """The same events as Server-Sent Events: `id:` is the cursor after the event, so a client that
    reconnects with `Last-Event-ID` (browsers' EventSource do) resumes exactly there. A comment line
    every `DELIVERY_STREAM_HEARTBEAT_SECONDS` keeps proxies from closing a quiet stream; the stream
    ends after `DELIVERY_STREAM_MAX_SECONDS` (the client reconnects and resumes)."""
    settings = request.app.state.settings
    signal: Signal = request.app.state.feed_signal
    maker = request.app.state.sessionmaker
    position, wanted = start.position, start.types
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + settings.stream_max_seconds
    beat_at = loop.time() + settings.stream_heartbeat_seconds
    yield ServerSentEvent(comment="connected", retry=int(settings.stream_retry_ms))
    while loop.time() < ends_at:
        # A session per look, never one held open for the stream's life.
        async with maker() as session:
            page = await feed.read(session=session, caller=caller, after=position, types=wanted, limit=100)
        position = feed.position(page.cursor)
        for event_cursor, event in page.items:
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            yield ServerSentEvent(id=event_cursor, event=str(event.get("type")), raw_data=body)
        if page.has_more:
            continue
        if loop.time() >= beat_at:
            yield ServerSentEvent(comment="heartbeat")
            beat_at = loop.time() + settings.stream_heartbeat_seconds
        await signal.wait(min(settings.stream_poll_seconds, max(beat_at - loop.time(), 0.01)))
