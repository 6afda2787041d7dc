from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from services.registry import service
from services.registry.models import Facility
from shared.identity import AuthenticatedDep
from shared.service import SessionDep


async def visible_facility(
    session: SessionDep,
    caller: AuthenticatedDep,
    facility_id: Annotated[str, Path(max_length=64)],
) -> Facility:
    return await service.get_visible_facility(session=session, caller=caller, facility_id=facility_id)


FacilityDep = Annotated[Facility, Depends(visible_facility)]
