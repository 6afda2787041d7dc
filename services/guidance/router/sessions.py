from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.guidance.deps import Caller, GuidanceSessionDep, IdempotencyDep, Writer, idempotent
from services.guidance.router.common import Paging, utc_query
from services.guidance.schemas import (
    AttendanceCreate,
    AttendanceRead,
    BookingCreate,
    BookingRead,
    SessionCreate,
    SessionKind,
    SessionLevel,
    SessionRead,
)
from services.guidance.service import sessions
from services.guidance.service.sessions import SessionFilters
from shared.api import IdPath, etag
from shared.clock import Timestamp
from shared.idempotency import Reply
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["sessions"])


async def session_filters(
    level: SessionLevel | None = None,
    kind: SessionKind | None = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    town_code: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    place_id: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F-]{36}$")] = None,
    starts_from: Annotated[Timestamp | None, Query(alias="from", description="RFC 3339, with offset")] = None,
    starts_before: Annotated[Timestamp | None, Query(alias="to", description="RFC 3339, with offset")] = None,
) -> SessionFilters:
    return SessionFilters(
        level=level,
        kind=kind,
        district_code=district_code,
        town_code=town_code,
        place_id=place_id,
        starts_from=utc_query(starts_from, "from"),
        starts_before=utc_query(starts_before, "to"),
    )


@router.post("/sessions", status_code=201, response_model=SessionRead)
async def schedule_session(
    body: SessionCreate, session: SessionDep, caller: Writer, idem: IdempotencyDep
) -> Response:
    """A session or event: city level (the city's bureaus), district or station level (the district)."""
    sessions.require_writer(caller)
    if replay := await idem.replay():
        return replay
    gs = await sessions.schedule(session=session, caller=caller, data=body)
    headers = {"Location": f"/v1/sessions/{gs.id}", **etag(gs.version)}
    return await idem.respond(201, sessions.to_read(gs), headers)


@router.get("/sessions", response_model=Page[SessionRead])
async def list_sessions(
    session: SessionDep,
    _caller: Caller,
    paging: Paging,
    filters: Annotated[SessionFilters, Depends(session_filters)],
) -> Page[SessionRead]:
    """Sessions soonest first; `from`/`to` bound their start (e.g. `from=now` for what is still to come)."""
    rows, cursor = await sessions.list_sessions(session=session, filters=filters, page=paging)
    return Page[SessionRead](items=[sessions.to_read(s) for s in rows], next_cursor=cursor)


@router.get("/sessions/{session_id}", response_model=SessionRead)
async def read_session(gs: GuidanceSessionDep, response: Response) -> SessionRead:
    response.headers.update(etag(gs.version))
    return sessions.to_read(gs)


@router.post("/sessions/{session_id}/bookings", status_code=201, response_model=BookingRead)
@idempotent(201)
async def book_session(
    body: BookingCreate, gs: GuidanceSessionDep, session: SessionDep, caller: Caller
) -> Reply:
    """A place for a family: parents book for their own; a full, past or cancelled session, or a
    second booking by the same family, is a 409."""
    booking, updated = await sessions.book(session=session, caller=caller, gs=gs, data=body)
    headers = {"Location": f"/v1/sessions/{gs.id}/bookings/{booking.id}"}
    return Reply(sessions.booking_read(booking), headers)


@router.get("/sessions/{session_id}/bookings", response_model=Page[BookingRead])
async def session_bookings(
    gs: GuidanceSessionDep, session: SessionDep, caller: Caller, paging: Paging
) -> Page[BookingRead]:
    """The bookings in the order they were made, for the organiser, the session's district and the
    city's bureaus."""
    rows, cursor = await sessions.bookings_of_session(session=session, caller=caller, gs=gs, page=paging)
    return Page[BookingRead](items=[sessions.booking_read(b) for b in rows], next_cursor=cursor)


@router.post("/sessions/{session_id}/bookings/{booking_id}/cancel", response_model=BookingRead)
@idempotent(200)
async def cancel_booking(
    booking_id: IdPath, gs: GuidanceSessionDep, session: SessionDep, caller: Caller
) -> BookingRead:
    """Cancel a booking before the session starts: the place is free again."""
    booking = await sessions.cancel_booking(session=session, caller=caller, gs=gs, booking_id=booking_id)
    return sessions.booking_read(booking)


@router.post("/sessions/{session_id}/attendance", response_model=AttendanceRead)
@idempotent(200)
async def record_attendance(
    body: AttendanceCreate, gs: GuidanceSessionDep, session: SessionDep, caller: Caller
) -> AttendanceRead:
    """The organiser marks which booked families came (`attended: false` corrects a mark)."""
    result = await sessions.record_attendance(session=session, caller=caller, gs=gs, data=body)
    return result
