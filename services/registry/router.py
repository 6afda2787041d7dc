"""registry's HTTP layer: parse, authorize, call the service, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from services.registry import service
from services.registry.deps import FacilityDep
from services.registry.schemas import DistrictRead, FacilityCreate, FacilityRead
from shared.identity import Identity, scope_guard
from shared.service import SessionDep

router = APIRouter(prefix="/v1")


@router.get("/divisions", response_model=list[DistrictRead], tags=["divisions"])
async def list_divisions(session: SessionDep) -> list[DistrictRead]:
    """Shanghai's 16 districts with their 街镇 (public)."""
    return await service.list_divisions(session=session)


@router.post("/facilities", status_code=201, response_model=FacilityRead, tags=["facilities"])
async def submit_facility(
    body: FacilityCreate,
    session: SessionDep,
    caller: Annotated[Identity, scope_guard("registry:write")],
    response: Response,
) -> FacilityRead:
    """Apply for a facility (申办): it starts as `submitted`."""
    facility = await service.submit_facility(session=session, caller=caller, data=body)
    response.headers["Location"] = f"/v1/facilities/{facility.id}"
    response.headers["ETag"] = f'"{facility.version}"'
    return facility


@router.get("/facilities/{facility_id}", response_model=FacilityRead, tags=["facilities"])
async def read_facility(
    facility: FacilityDep, caller: Annotated[Identity, scope_guard("registry:read")], response: Response
) -> FacilityRead:
    response.headers["ETag"] = f'"{facility.version}"'
    return service.to_read(facility)
