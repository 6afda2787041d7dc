"""What every part of the monitoring service needs: the clock, ids, and object-level access to
facilities (an operator sees its own, a district its district; anything else is 404)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import FacilityNotFound
from services.monitoring.models import Facility

# Still importable from here for cradle/seed (the clock itself is shared/clock.py).
from shared.clock import as_utc as as_utc
from shared.i18n import tr
from shared.identity import ClientKind, Identity


def may_see(caller: Identity, facility: Facility) -> bool:
    return caller.may_see_facility(
        facility_id=facility.id,
        district_code=facility.district_code,
        owner_client_id=facility.owner_client_id,
    )


def visible_facilities_clause(caller: Identity) -> ColumnElement[bool]:
    """The same rule as `may_see`, as a filter on `Facility` for list queries."""
    if caller.sees_whole_city():
        return true()
    if caller.kind == ClientKind.district and caller.district_code:
        return Facility.district_code == caller.district_code
    if caller.kind == ClientKind.operator:
        return or_(Facility.id.in_(caller.facility_ids or [""]), Facility.owner_client_id == caller.client_id)
    return false()


async def get_visible_facility(
    *, session: AsyncSession, caller: Identity, facility_id: str, for_update: bool = False
) -> Facility:
    query = select(Facility).where(Facility.id == facility_id)
    if for_update:
        query = query.with_for_update()
    facility = (await session.execute(query)).scalar_one_or_none()
    if facility is None or not may_see(caller, facility):
        raise FacilityNotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    return facility
