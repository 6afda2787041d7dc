"""Places: guidance stations in the 街镇 (T2), early-development bases (T18), child-friendly
community sites (T3), play-observation and parent-child rooms in community health centres (T20)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.errors import PlaceNotFound
from services.guidance.events import PlaceOpened
from services.guidance.models import District, Place
from services.guidance.schemas import PlaceCreate, PlaceKind, PlaceRead, StationCreate
from services.guidance.service.common import check_area, town_or_422
from shared.clock import as_utc, new_id, utcnow
from shared.errors import invalid
from shared.events.outbox import emit
from shared.identity import Identity
from shared.pagination import PageParams, encode_cursor


@dataclass(frozen=True)
class PlaceFilters:
    kind: PlaceKind | None = None
    district_code: str | None = None
    town_code: str | None = None
    opened_in: int | None = None


def to_read(place: Place) -> PlaceRead:
    read = PlaceRead.model_validate(place, from_attributes=True)
    return read.model_copy(update={"created_at": as_utc(place.created_at)})


async def open_place(*, session: AsyncSession, caller: Identity, data: PlaceCreate) -> Place:
    town_code, district_code = data.town_code, data.district_code
    if town_code is not None:
        town = await town_or_422(session, town_code)
        if district_code is not None and district_code != town.district_code:
            raise invalid("district_code", f"town {town_code} is in district {town.district_code}")
        district_code = town.district_code
    elif district_code is None or await session.get(District, district_code) is None:
        raise invalid("district_code", "is not a district of Shanghai (see GET /v1/divisions)")
    assert district_code is not None
    check_area(caller, district_code)
    now = utcnow()
    place = Place(
        id=new_id(),
        kind=data.kind.value,
        name=data.name,
        district_code=district_code,
        town_code=town_code,
        address=data.address,
        opened_on=data.opened_on,
        created_by=caller.client_id,
        created_at=now,
        updated_at=now,
    )
    session.add(place)
    await session.flush()
    await emit(
        session,
        PlaceOpened(
            place_id=place.id,
            kind=place.kind,
            name=place.name,
            district_code=place.district_code,
            town_code=place.town_code,
            opened_on=place.opened_on,
        ),
    )
    return place


async def open_station(*, session: AsyncSession, caller: Identity, data: StationCreate) -> Place:
    return await open_place(
        session=session,
        caller=caller,
        data=PlaceCreate(kind=PlaceKind.guidance_station, **data.model_dump()),
    )


async def get_place(*, session: AsyncSession, place_id: str, kind: PlaceKind | None = None) -> Place:
    """Places are public facts: anyone with a guidance scope may read them."""
    place = await session.get(Place, place_id)
    if place is None or (kind is not None and place.kind != kind.value):
        raise PlaceNotFound(f"No {kind.value if kind else 'place'} {place_id}.")
    return place


async def list_places(
    *, session: AsyncSession, filters: PlaceFilters, page: PageParams
) -> tuple[list[Place], str | None]:
    query = select(Place)
    if filters.kind:
        query = query.where(Place.kind == filters.kind.value)
    if filters.district_code:
        query = query.where(Place.district_code == filters.district_code)
    if filters.town_code:
        query = query.where(Place.town_code == filters.town_code)
    if filters.opened_in:
        query = query.where(
            Place.opened_on >= date(filters.opened_in, 1, 1),
            Place.opened_on <= date(filters.opened_in, 12, 31),
        )
    if page.after:
        query = query.where(Place.id > str(page.after[0]))
    rows = list((await session.execute(query.order_by(Place.id).limit(page.limit + 1))).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return rows, encode_cursor([rows[-1].id]) if more and rows else None
