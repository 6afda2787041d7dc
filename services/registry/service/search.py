"""Facility search: filters, `near` with distance order, cursor pagination, and who sees what."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sqlalchemy import Select, String, and_, cast, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.errors import FacilityNotFound
from services.registry.models import Facility
from services.registry.schemas import AgeClass, AssessmentGrade, FacilityKind, FacilityStatus, ServiceMode
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, encode_cursor

EARTH_RADIUS_M = 6_371_008.8
# What the public pages show: a suspended or closed facility stays, with its status and credit record.
PUBLIC_STATUSES = (FacilityStatus.approved, FacilityStatus.suspended, FacilityStatus.closed)


async def get_public_facility(*, session: AsyncSession, facility_id: str) -> Facility:
    """A facility the public pages show, else a 404 as for one that does not exist."""
    facility = await session.get(Facility, facility_id)
    if facility is None or facility.status not in PUBLIC_STATUSES:
        raise FacilityNotFound(tr("No approved facility {facility_id}.", facility_id=facility_id))
    return facility


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    radius_m: int


@dataclass(frozen=True)
class FacilityFilters:
    district_code: str | None = None
    town_code: str | None = None
    kind: FacilityKind | None = None
    inclusive: bool | None = None
    status: FacilityStatus | None = None
    free_places: AgeClass | None = None
    service_mode: ServiceMode | None = None
    near: Near | None = None
    grade: AssessmentGrade | None = None
    demonstration: bool | None = None


def public_filters(filters: FacilityFilters) -> FacilityFilters:
    """The public search: operating (approved) facilities, or the suspended or closed ones when asked
    for; asking for any other status never widens it."""
    if filters.status in PUBLIC_STATUSES:
        return filters
    return dataclasses.replace(filters, status=FacilityStatus.approved)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def visible_to(query: Select, caller: Identity | None) -> Select:
    """Restrict a facility query to what the caller may see (the list's object authorization).
    `None` is the public view, which spans the city and is limited to licensed facilities (approved,
    suspended, closed)."""
    if caller is None:
        return query.where(Facility.status.in_([s.value for s in PUBLIC_STATUSES]))
    if caller.sees_whole_city():
        return query
    if caller.kind == ClientKind.district and caller.district_code:
        return query.where(Facility.district_code == caller.district_code)
    if caller.kind == ClientKind.operator:
        own = [Facility.owner_client_id == caller.client_id]
        if caller.facility_ids:
            own.append(Facility.id.in_(caller.facility_ids))
        return query.where(or_(*own))
    return query.where(false())


def filtered(query: Select, filters: FacilityFilters) -> Select:
    conditions = []
    if filters.district_code:
        conditions.append(Facility.district_code == filters.district_code)
    if filters.town_code:
        conditions.append(Facility.town_code == filters.town_code)
    if filters.kind:
        conditions.append(Facility.kind == filters.kind.value)
    if filters.inclusive is not None:
        conditions.append(Facility.inclusive == filters.inclusive)
    if filters.status:
        conditions.append(Facility.status == filters.status.value)
    if filters.grade:
        conditions.append(Facility.grade == filters.grade.value)
    if filters.demonstration is not None:
        conditions.append(Facility.is_demonstration == filters.demonstration)
    if filters.service_mode:
        # Service modes are a short JSON list of fixed words; matching its text works the same on
        # SQLite and PostgreSQL.
        conditions.append(cast(Facility.service_modes, String).like(f'%"{filters.service_mode.value}"%'))
    if filters.free_places:
        a = filters.free_places.value
        conditions.append(getattr(Facility, f"capacity_{a}") > getattr(Facility, f"enrolled_{a}"))
    if filters.near:
        # A bounding box the (lat, lon) index can use; the exact circle is applied after.
        n = filters.near
        dlat = math.degrees(n.radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(math.cos(math.radians(n.lat)), 0.01)
        conditions += [
            Facility.lat.between(n.lat - dlat, n.lat + dlat),
            Facility.lon.between(n.lon - dlon, n.lon + dlon),
        ]
    return query.where(and_(*conditions)) if conditions else query


async def search(
    *, session: AsyncSession, caller: Identity | None, filters: FacilityFilters, page: PageParams
) -> tuple[list[tuple[Facility, float | None]], str | None]:
    """Facilities matching the filters, a page at a time: by id, or by distance when `near` is given.
    The requests are answered by the in-memory directory (services/registry/service/directory.py); this is
    the same search in SQL, the reference its tests hold it to. The public search lists operating
    (approved) facilities unless a status is asked for."""
    if caller is None:
        filters = public_filters(filters)
    query = filtered(visible_to(select(Facility), caller), filters)
    if filters.near is None:
        if page.after:
            query = query.where(Facility.id > str(page.after[0]))
        rows = list((await session.execute(query.order_by(Facility.id).limit(page.limit + 1))).scalars())
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        cursor = encode_cursor([rows[-1].id]) if more and rows else None
        return [(f, None) for f in rows], cursor

    # Rank the candidates in the box by their coordinates alone; load whole rows only for the page.
    n = filters.near
    box = filtered(visible_to(select(Facility.id, Facility.lat, Facility.lon), caller), filters)
    ranked = sorted(
        (round(distance_m(n.lat, n.lon, lat, lon), 1), facility_id)
        for facility_id, lat, lon in (await session.execute(box)).all()
    )
    ranked = [(d, i) for d, i in ranked if d <= n.radius_m]
    if page.after and len(page.after) == 2:
        last = (float(page.after[0]), str(page.after[1]))
        ranked = [pair for pair in ranked if pair > last]
    window = ranked[: page.limit]
    rows = {
        f.id: f
        for f in (
            await session.execute(select(Facility).where(Facility.id.in_([i for _, i in window])))
        ).scalars()
    }
    items = [(rows[i], d) for d, i in window if i in rows]
    cursor = encode_cursor(list(window[-1])) if len(ranked) > page.limit and window else None
    return items, cursor
