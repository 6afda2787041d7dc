"""Offline sessions and events: scheduling, bookings that never overbook, cancellation, attendance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.errors import (
    AlreadyBooked,
    BookingNotFound,
    FamilyNotFound,
    SessionClosed,
    SessionFull,
    SessionNotFound,
)
from services.guidance.events import BookingCancelled, SessionAttended, SessionBooked, SessionScheduled
from services.guidance.models import Booking, District, Family, GuidanceSession
from services.guidance.schemas import (
    KIND_TITLES,
    AttendanceCreate,
    AttendanceRead,
    BookingCreate,
    BookingRead,
    PlaceKind,
    SessionCreate,
    SessionKind,
    SessionLevel,
    SessionRead,
)
from services.guidance.service.common import (
    acts_for_city,
    check_area,
    is_parent,
    linked_family_id,
    writes_guidance,
)
from services.guidance.service.families import get_visible_family
from services.guidance.service.places import get_place
from services.guidance.service.tallies import count_attendance, utc_year
from shared.clock import as_utc, new_id, utcnow
from shared.errors import Conflict, FieldError, Forbidden, InvalidInput, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, encode_cursor, keyset

SCHEDULED, CANCELLED = "scheduled", "cancelled"
BOOKED = "booked"


@dataclass(frozen=True)
class SessionFilters:
    level: SessionLevel | None = None
    kind: SessionKind | None = None
    district_code: str | None = None
    town_code: str | None = None
    place_id: str | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None


def to_read(s: GuidanceSession) -> SessionRead:
    return SessionRead(
        id=s.id,
        level=s.level,
        kind=s.kind,
        title=s.title,
        description=s.description,
        starts_at=as_utc(s.starts_at),
        ends_at=as_utc(s.ends_at) if s.ends_at else None,
        place_id=s.place_id,
        district_code=s.district_code,
        town_code=s.town_code,
        venue=s.venue,
        capacity=s.capacity,
        booked=s.booked,
        places_left=max(0, s.capacity - s.booked),
        status=s.status,
        version=s.version,
    )


def booking_read(b: Booking) -> BookingRead:
    return BookingRead(
        id=b.id,
        session_id=b.session_id,
        family_id=b.family_id,
        status=b.status,
        booked_at=as_utc(b.booked_at),
        cancelled_at=as_utc(b.cancelled_at) if b.cancelled_at else None,
        attended=b.attended,
    )


def require_writer(caller: Identity) -> None:
    if not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope.")


async def schedule(*, session: AsyncSession, caller: Identity, data: SessionCreate) -> GuidanceSession:
    """City-level sessions are the city's bureaus'; district and station ones the district's."""
    require_writer(caller)
    place = await get_place(session=session, place_id=data.place_id) if data.place_id else None
    if data.place_id and place is None:
        raise invalid("place_id", "no such place")
    if data.level == SessionLevel.station and place is not None and place.kind != PlaceKind.guidance_station:
        raise invalid("place_id", "a station-level session is held at a guidance station")
    district_code = place.district_code if place else data.district_code
    if place is not None and data.district_code and data.district_code != place.district_code:
        raise invalid("district_code", f"the place is in district {place.district_code}")
    if district_code is not None and await session.get(District, district_code) is None:
        raise invalid("district_code", "is not a district of Shanghai")
    if data.level == SessionLevel.city:
        if not acts_for_city(caller):
            raise Forbidden("City-level sessions are scheduled by the city's bureaus.")
    else:
        assert district_code is not None
        check_area(caller, district_code)
    gs = GuidanceSession(
        id=new_id(),
        level=data.level.value,
        kind=data.kind.value,
        title=data.title or KIND_TITLES[data.kind.value],
        description=data.description,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        place_id=place.id if place else None,
        district_code=district_code,
        town_code=place.town_code if place else None,
        venue=data.venue or (place.name if place else ""),
        capacity=data.capacity,
        booked=0,
        status=SCHEDULED,
        organiser_client_id=caller.client_id,
        created_at=utcnow(),
    )
    session.add(gs)
    await session.flush()
    await emit(
        session,
        SessionScheduled(
            session_id=gs.id,
            level=gs.level,
            kind=gs.kind,
            title=gs.title,
            starts_at=gs.starts_at,
            ends_at=gs.ends_at,
            place_id=gs.place_id,
            district_code=gs.district_code,
            town_code=gs.town_code,
            capacity=gs.capacity,
        ),
    )
    return gs


async def get_session(*, session: AsyncSession, session_id: str) -> GuidanceSession:
    """Sessions are public events: anyone with a guidance scope or a parent's account reads them."""
    found = await session.get(GuidanceSession, session_id)
    if found is None:
        raise SessionNotFound(tr("No session {session_id}.", session_id=session_id))
    return found


async def _family_for(
    session: AsyncSession, caller: Identity, family_id: str | None, *, field: str = "family_id"
) -> Family:
    if is_parent(caller):
        linked = await linked_family_id(session, caller)
        if linked is None:
            raise Conflict(
                "Link your app account to your family first (register it, or redeem its link code).",
                type="/problems/not-linked",
            )
        if family_id is not None and family_id != linked:
            raise FamilyNotFound(tr("No family {family_id} that you may see.", family_id=family_id))
        family_id = linked
    else:
        require_writer(caller)
        if family_id is None:
            raise invalid(field, "name the family to book for")
    return await get_visible_family(session=session, caller=caller, family_id=family_id)


async def book(
    *, session: AsyncSession, caller: Identity, gs: GuidanceSession, data: BookingCreate
) -> tuple[Booking, GuidanceSession]:
    """One place for one family. The place is taken by a conditional UPDATE (`booked < capacity`),
    atomic on both databases, so concurrent bookings never pass the capacity."""
    family = await _family_for(session, caller, data.family_id)
    now = utcnow()
    if gs.status != SCHEDULED:
        raise SessionClosed("This session was cancelled.")
    if as_utc(gs.starts_at) <= now:
        raise SessionClosed("This session has already started.")
    existing = (
        await session.execute(
            select(Booking).where(Booking.session_id == gs.id, Booking.family_id == family.id)
        )
    ).scalar_one_or_none()
    if existing is not None and existing.status == BOOKED:
        raise AlreadyBooked("This family has already booked this session.", booking_id=existing.id)
    taken = (
        await session.execute(
            update(GuidanceSession)
            .where(
                GuidanceSession.id == gs.id,
                GuidanceSession.booked < GuidanceSession.capacity,
                GuidanceSession.status == SCHEDULED,
                GuidanceSession.starts_at > now,
            )
            .values(booked=GuidanceSession.booked + 1, version=GuidanceSession.version + 1)
            .returning(GuidanceSession.booked)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if taken is None:
        raise SessionFull(tr("All {capacity} places are taken.", capacity=gs.capacity), capacity=gs.capacity)
    if existing is not None:
        # A cancelled booking comes back; only one of two concurrent re-bookings finds it cancelled.
        revived = await session.execute(
            update(Booking)
            .where(Booking.id == existing.id, Booking.status == CANCELLED)
            .values(status=BOOKED, booked_at=now, cancelled_at=None, booked_by=caller.client_id)
            .execution_options(synchronize_session=False)
        )
        if revived.rowcount != 1:
            raise AlreadyBooked("This family has already booked this session.", booking_id=existing.id)
        await session.refresh(existing)
        booking = existing
    else:
        booking = Booking(
            id=new_id(),
            session_id=gs.id,
            family_id=family.id,
            status=BOOKED,
            booked_by=caller.client_id,
            booked_at=now,
            session_starts_at=gs.starts_at,
        )
        session.add(booking)
        await session.flush()
    await session.refresh(gs)
    await emit(
        session,
        SessionBooked(
            session_id=gs.id,
            booking_id=booking.id,
            family_id=family.id,
            booked=taken,
            capacity=gs.capacity,
            booked_at=now,
        ),
    )
    return booking, gs


async def cancel_booking(
    *, session: AsyncSession, caller: Identity, gs: GuidanceSession, booking_id: str
) -> Booking:
    """Cancellation frees the place, until the session starts."""
    booking = await session.get(Booking, booking_id)
    if booking is None or booking.session_id != gs.id:
        raise BookingNotFound(tr("No booking {booking_id} for this session.", booking_id=booking_id))
    try:
        await _family_for(session, caller, booking.family_id)
    except FamilyNotFound:
        raise BookingNotFound(
            tr(
                "No booking {booking_id} for this session.",
                booking_id=booking_id,
            )
        ) from None
    now = utcnow()
    if as_utc(gs.starts_at) <= now:
        raise SessionClosed("This session has already started; a booking can no longer be cancelled.")
    cancelled = await session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == BOOKED)
        .values(status=CANCELLED, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if cancelled.rowcount != 1:
        raise Conflict("This booking is already cancelled.", type="/problems/already-cancelled")
    booked = (
        await session.execute(
            update(GuidanceSession)
            .where(GuidanceSession.id == gs.id, GuidanceSession.booked > 0)
            .values(booked=GuidanceSession.booked - 1, version=GuidanceSession.version + 1)
            .returning(GuidanceSession.booked)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    await session.refresh(booking)
    await emit(
        session,
        BookingCancelled(
            session_id=gs.id,
            booking_id=booking.id,
            family_id=booking.family_id,
            booked=booked,
            capacity=gs.capacity,
            cancelled_at=now,
        ),
    )
    return booking


def may_organise(caller: Identity, gs: GuidanceSession) -> bool:
    if not writes_guidance(caller):
        return False
    if acts_for_city(caller) or gs.organiser_client_id == caller.client_id:
        return True
    return caller.kind == ClientKind.district and caller.district_code == gs.district_code


async def record_attendance(
    *, session: AsyncSession, caller: Identity, gs: GuidanceSession, data: AttendanceCreate
) -> AttendanceRead:
    """The organiser marks who came (or corrects a mark); only booked families can attend."""
    if not may_organise(caller, gs):
        raise Forbidden("Attendance is recorded by the session's organiser or its district.")
    if gs.status != SCHEDULED:
        raise SessionClosed("This session was cancelled.")
    booked = {
        family_id: booking_id
        for family_id, booking_id in (
            await session.execute(
                select(Booking.family_id, Booking.id).where(
                    Booking.session_id == gs.id,
                    Booking.family_id.in_(data.family_ids),
                    Booking.status == BOOKED,
                )
            )
        ).all()
    }
    missing = [i for i, family_id in enumerate(data.family_ids) if family_id not in booked]
    if missing:
        raise InvalidInput(
            f"{len(missing)} of the families have no booking for this session.",
            errors=[
                FieldError(field=f"family_ids.{i}", message="has no booking for this session")
                for i in missing
            ],
        )
    now = utcnow()
    named = Booking.session_id == gs.id, Booking.family_id.in_(data.family_ids), Booking.status == BOOKED
    # The marks that change, first and by themselves: on PostgreSQL a concurrent request waits for
    # these rows and then no longer finds them changing, so each change is tallied exactly once.
    changed = await session.execute(
        update(Booking)
        .where(*named, Booking.attended.is_not(data.attended))
        .values(attended=data.attended, attended_at=now if data.attended else None)
        .returning(Booking.family_id, utc_year(Booking.session_starts_at))
        .execution_options(synchronize_session=False)
    )
    await count_attendance(session=session, marked=[(f, y) for f, y in changed.all()], attended=data.attended)
    # Then every mark, as before (a repeated mark refreshes `attended_at`).
    await session.execute(
        update(Booking)
        .where(*named)
        .values(attended=data.attended, attended_at=now if data.attended else None)
        .execution_options(synchronize_session=False)
    )
    for family_id in data.family_ids:
        await emit(
            session,
            SessionAttended(
                session_id=gs.id,
                family_id=family_id,
                level=gs.level,
                kind=gs.kind,
                district_code=gs.district_code,
                starts_at=as_utc(gs.starts_at),
                attended=data.attended,
            ),
        )
    attended = (
        await session.execute(
            select(Booking.id).where(Booking.session_id == gs.id, Booking.attended.is_(True))
        )
    ).all()
    return AttendanceRead(session_id=gs.id, recorded=len(data.family_ids), attended=len(attended))


async def list_sessions(
    *, session: AsyncSession, filters: SessionFilters, page: PageParams
) -> tuple[list[GuidanceSession], str | None]:
    """Soonest first; the cursor is (starts_at, id) of the last session returned."""
    s = GuidanceSession
    query = select(s)
    if filters.level:
        query = query.where(s.level == filters.level.value)
    if filters.kind:
        query = query.where(s.kind == filters.kind.value)
    if filters.district_code:
        query = query.where(s.district_code == filters.district_code)
    if filters.town_code:
        query = query.where(s.town_code == filters.town_code)
    if filters.place_id:
        query = query.where(s.place_id == filters.place_id)
    if filters.starts_from:
        query = query.where(s.starts_at >= filters.starts_from)
    if filters.starts_before:
        query = query.where(s.starts_at < filters.starts_before)
    if page.after and len(page.after) == 2:
        try:
            moment = datetime.fromisoformat(str(page.after[0]))
        except ValueError:
            raise invalid("cursor", "is not a cursor this API returned") from None
        last_id = str(page.after[1])
        query = query.where((s.starts_at > moment) | ((s.starts_at == moment) & (s.id > last_id)))
    rows = list((await session.execute(query.order_by(s.starts_at, s.id).limit(page.limit + 1))).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = encode_cursor([as_utc(rows[-1].starts_at).isoformat(), rows[-1].id]) if more and rows else None
    return rows, cursor


async def bookings_of_session(
    *, session: AsyncSession, caller: Identity, gs: GuidanceSession, page: PageParams
) -> tuple[list[Booking], str | None]:
    """In the order they were booked."""
    if not may_organise(caller, gs) and not acts_for_city(caller):
        raise Forbidden("The bookings are the organiser's and the district's to see.")
    query = keyset(select(Booking).where(Booking.session_id == gs.id), [Booking.booked_at, Booking.id], page)
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda b: [b.booked_at, b.id])


async def bookings_of_family(
    *, session: AsyncSession, family: Family, page: PageParams
) -> tuple[list[tuple[Booking, GuidanceSession]], str | None]:
    """The latest session first."""
    query = keyset(
        select(Booking, GuidanceSession)
        .join(GuidanceSession, GuidanceSession.id == Booking.session_id)
        .where(Booking.family_id == family.id),
        [GuidanceSession.starts_at, Booking.id],
        page,
        descending=True,
    )
    rows = [(b, s) for b, s in (await session.execute(query)).all()]
    return cut_page(rows, limit=page.limit, position_of=lambda pair: [pair[1].starts_at, pair[0].id])
