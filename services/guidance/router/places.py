from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.guidance.deps import Caller, IdempotencyDep, Writer
from services.guidance.router.common import Paging
from services.guidance.schemas import PlaceCreate, PlaceKind, PlaceRead, StationCreate
from services.guidance.service import places
from services.guidance.service.places import PlaceFilters
from services.guidance.service.sessions import require_writer
from shared.api import IdPath, etag
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["places"])
Year = Annotated[int | None, Query(ge=2000, le=2100, description="opened (or designated) in this year")]
DistrictCode = Annotated[str | None, Query(pattern=r"^\d{6}$")]
TownCode = Annotated[str | None, Query(pattern=r"^\d{9}$")]


async def place_filters(
    kind: PlaceKind | None = None,
    district_code: DistrictCode = None,
    town_code: TownCode = None,
    opened_in: Year = None,
) -> PlaceFilters:
    return PlaceFilters(kind=kind, district_code=district_code, town_code=town_code, opened_in=opened_in)


async def station_filters(
    district_code: DistrictCode = None, town_code: TownCode = None, opened_in: Year = None
) -> PlaceFilters:
    return PlaceFilters(
        kind=PlaceKind.guidance_station, district_code=district_code, town_code=town_code, opened_in=opened_in
    )


@router.post("/stations", status_code=201, response_model=PlaceRead)
async def open_station(
    body: StationCreate, session: SessionDep, caller: Writer, idem: IdempotencyDep
) -> Response:
    """A family guidance station (家庭科学育儿指导站) in a 街镇 (`guidance:write`; a district in its own)."""
    require_writer(caller)
    if replay := await idem.replay():
        return replay
    place = await places.open_station(session=session, caller=caller, data=body)
    headers = {"Location": f"/v1/stations/{place.id}", **etag(place.version)}
    return await idem.respond(201, places.to_read(place), headers)


@router.get("/stations", response_model=Page[PlaceRead])
async def list_stations(
    session: SessionDep,
    _caller: Caller,
    paging: Paging,
    filters: Annotated[PlaceFilters, Depends(station_filters)],
) -> Page[PlaceRead]:
    rows, cursor = await places.list_places(session=session, filters=filters, page=paging)
    return Page[PlaceRead](items=[places.to_read(p) for p in rows], next_cursor=cursor)


@router.get("/stations/{station_id}", response_model=PlaceRead)
async def read_station(
    station_id: IdPath, session: SessionDep, _caller: Caller, response: Response
) -> PlaceRead:
    place = await places.get_place(session=session, place_id=station_id, kind=PlaceKind.guidance_station)
    response.headers.update(etag(place.version))
    return places.to_read(place)


@router.post("/places", status_code=201, response_model=PlaceRead)
async def open_place(
    body: PlaceCreate, session: SessionDep, caller: Writer, idem: IdempotencyDep
) -> Response:
    """Any place: station, early-development base, child-friendly site, observation or parent-child room."""
    require_writer(caller)
    if replay := await idem.replay():
        return replay
    place = await places.open_place(session=session, caller=caller, data=body)
    headers = {"Location": f"/v1/places/{place.id}", **etag(place.version)}
    return await idem.respond(201, places.to_read(place), headers)


@router.get("/places", response_model=Page[PlaceRead])
async def list_places(
    session: SessionDep,
    _caller: Caller,
    paging: Paging,
    filters: Annotated[PlaceFilters, Depends(place_filters)],
) -> Page[PlaceRead]:
    rows, cursor = await places.list_places(session=session, filters=filters, page=paging)
    return Page[PlaceRead](items=[places.to_read(p) for p in rows], next_cursor=cursor)


@router.get("/places/{place_id}", response_model=PlaceRead)
async def read_place(place_id: IdPath, session: SessionDep, _caller: Caller, response: Response) -> PlaceRead:
    place = await places.get_place(session=session, place_id=place_id)
    response.headers.update(etag(place.version))
    return places.to_read(place)
