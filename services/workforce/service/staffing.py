"""Staff-to-child ratios per age class (1:3 / 1:5 / 1:7 by default), from the registry's enrolment
(via the projection) and active, cleared employments in caring roles: a provisional hire works under
supervision, and neither it nor a suspended or health-flagged one counts."""

from __future__ import annotations

import math

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.events import AgeClassStaffingFacts, StaffingAssessed
from services.workforce.models import Employment, FacilityProjection
from services.workforce.schemas import AgeClass, AgeClassStaffing, StaffingRead
from services.workforce.service.common import ACTIVE, WORKFORCE_SESSION_KEY, Workforce, visible_facilities
from shared.clock import utcnow
from shared.events.outbox import emit
from shared.identity import Identity
from shared.pagination import Page, PageParams, make_page


async def active_carers(
    session: AsyncSession, caring_roles: list[str], facility_ids: list[str]
) -> dict[tuple[str, str | None], int]:
    """Active employments in caring roles per (facility, age class) that may work unsupervised:
    cleared (not provisional nor suspended, T12) and holding a health certificate (not flagged)."""
    if not facility_ids:
        return {}
    rows = await session.execute(
        select(
            Employment.facility_id,
            Employment.age_class,
            func.count(func.distinct(Employment.practitioner_id)),
        )
        .where(
            and_(
                Employment.facility_id.in_(facility_ids),
                Employment.status == ACTIVE,
                Employment.role.in_(caring_roles),
                Employment.standing == "cleared",
                Employment.health_flagged_on.is_(None),
            )
        )
        .group_by(Employment.facility_id, Employment.age_class)
    )
    return {(facility_id, age_class): count for facility_id, age_class, count in rows.all()}


def staffing_of(
    workforce: Workforce, facility: FacilityProjection, carers: dict[tuple[str, str | None], int]
) -> StaffingRead:
    classes = []
    for age_class in AgeClass:
        children = int(getattr(facility, f"enrolment_{age_class.value}"))
        ratio = workforce.settings.ratios[age_class.value]
        have = carers.get((facility.facility_id, age_class.value), 0)
        required = math.ceil(children / ratio)
        classes.append(
            AgeClassStaffing(
                age_class=age_class,
                children=children,
                carers=have,
                ratio=f"1:{ratio}",
                carers_required=required,
                met=have >= required,
            )
        )
    return StaffingRead(
        facility_id=facility.facility_id,
        name=facility.name,
        district_code=facility.district_code,
        classes=classes,
        unassigned_carers=carers.get((facility.facility_id, None), 0),
        met=all(c.met for c in classes),
    )


async def facility_staffing(
    *, session: AsyncSession, workforce: Workforce, facility: FacilityProjection
) -> StaffingRead:
    carers = await active_carers(session, workforce.settings.caring_roles, [facility.facility_id])
    return staffing_of(workforce, facility, carers)


async def announce(session: AsyncSession, facility_ids: set[str] | list[str]) -> None:
    """Publish the staffing of facilities whose employments or enrolment just changed, in the same
    transaction, so the monitoring service's risk score knows who is out of ratio."""
    workforce: Workforce = session.info[WORKFORCE_SESSION_KEY]
    facilities = (
        (
            await session.execute(
                select(FacilityProjection).where(FacilityProjection.facility_id.in_(sorted(facility_ids)))
            )
        )
        .scalars()
        .all()
    )
    if not facilities:
        return
    carers = await active_carers(
        session, workforce.settings.caring_roles, [f.facility_id for f in facilities]
    )
    for facility in facilities:
        staffing = staffing_of(workforce, facility, carers)
        await emit(
            session,
            StaffingAssessed(
                facility_id=facility.facility_id,
                district_code=facility.district_code,
                met=staffing.met,
                shortfall=sum(max(0, c.carers_required - c.carers) for c in staffing.classes),
                classes=[
                    AgeClassStaffingFacts(
                        age_class=c.age_class.value,
                        children=c.children,
                        carers=c.carers,
                        carers_required=c.carers_required,
                    )
                    for c in staffing.classes
                ],
                assessed_at=utcnow(),
            ),
        )


async def out_of_ratio(
    *,
    session: AsyncSession,
    workforce: Workforce,
    caller: Identity,
    district_code: str | None,
    page: PageParams,
) -> Page[StaffingRead]:
    """Approved facilities the caller may see whose staffing misses a ratio, in id order."""
    query = (
        select(FacilityProjection)
        .where(FacilityProjection.status == "approved", visible_facilities(caller))
        .order_by(FacilityProjection.facility_id)
    )
    if district_code:
        query = query.where(FacilityProjection.district_code == district_code)
    if page.after:
        query = query.where(FacilityProjection.facility_id > str(page.after[0]))
    found: list[StaffingRead] = []
    # Scan in chunks until a page (plus one) of failing facilities is found.
    chunk = 500
    offset_query = query
    while len(found) <= page.limit:
        facilities = (await session.execute(offset_query.limit(chunk))).scalars().all()
        if not facilities:
            break
        carers = await active_carers(
            session, workforce.settings.caring_roles, [f.facility_id for f in facilities]
        )
        found.extend(s for s in (staffing_of(workforce, f, carers) for f in facilities) if not s.met)
        offset_query = query.where(FacilityProjection.facility_id > facilities[-1].facility_id)
        if len(facilities) < chunk:
            break
    return make_page(found[: page.limit + 1], limit=page.limit, position_of=lambda s: [s.facility_id])
