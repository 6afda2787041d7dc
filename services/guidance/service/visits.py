"""Home visits (上门指导): who visited which family, when, and about what."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.errors import FamilyNotFound, VisitNotFound
from services.guidance.events import VisitRecorded
from services.guidance.models import Family, HomeVisit
from services.guidance.schemas import HomeVisitCreate, HomeVisitRead
from services.guidance.service.common import check_area, writes_guidance
from services.guidance.service.families import get_visible_family
from shared.clock import as_utc, new_id, utcnow
from shared.errors import Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import PageParams, encode_cursor


async def get_visible_visit(*, session: AsyncSession, caller: Identity, visit_id: str) -> HomeVisit:
    visit = await session.get(HomeVisit, visit_id)
    if visit is None:
        raise VisitNotFound(tr("No home visit {visit_id} that you may see.", visit_id=visit_id))
    try:
        await get_visible_family(session=session, caller=caller, family_id=visit.family_id)
    except FamilyNotFound:
        raise VisitNotFound(tr("No home visit {visit_id} that you may see.", visit_id=visit_id)) from None
    return visit


def to_read(visit: HomeVisit) -> HomeVisitRead:
    read = HomeVisitRead.model_validate(visit, from_attributes=True)
    return read.model_copy(update={"recorded_at": as_utc(visit.recorded_at)})


async def record_visit(*, session: AsyncSession, caller: Identity, data: HomeVisitCreate) -> HomeVisit:
    if not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope.")
    family = await get_visible_family(session=session, caller=caller, family_id=data.family_id)
    check_area(caller, family.district_code)
    visit = HomeVisit(
        id=new_id(),
        family_id=family.id,
        district_code=family.district_code,
        visited_on=data.visited_on,
        visitor=data.visitor,
        topics=[t.value for t in data.topics],
        notes=data.notes,
        recorded_by=caller.client_id,
        recorded_at=utcnow(),
    )
    session.add(visit)
    await session.flush()
    await emit(
        session,
        VisitRecorded(
            visit_id=visit.id,
            family_id=family.id,
            district_code=family.district_code,
            visited_on=visit.visited_on,
            topics=visit.topics,
            newborn_family=family.newborn,
            in_need_family=family.in_need,
        ),
    )
    return visit


async def visits_of(
    *, session: AsyncSession, family: Family, page: PageParams
) -> tuple[list[HomeVisit], str | None]:
    """Newest first; the cursor is (visited_on, id) of the last visit returned."""
    query = select(HomeVisit).where(HomeVisit.family_id == family.id)
    if page.after and len(page.after) == 2:
        try:
            day, last_id = date.fromisoformat(str(page.after[0])), str(page.after[1])
        except ValueError:
            raise invalid("cursor", "is not a cursor this API returned") from None
        query = query.where(
            (HomeVisit.visited_on < day) | ((HomeVisit.visited_on == day) & (HomeVisit.id < last_id))
        )
    query = query.order_by(HomeVisit.visited_on.desc(), HomeVisit.id.desc()).limit(page.limit + 1)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = encode_cursor([rows[-1].visited_on.isoformat(), rows[-1].id]) if more and rows else None
    return rows, cursor
