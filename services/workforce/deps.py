from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.workforce.models import Employment, FacilityProjection, Practitioner
from services.workforce.service.common import Workforce, get_visible_facility, get_visible_practitioner
from services.workforce.service.hiring import get_visible_employment
from shared.api import IdPath
from shared.identity import AuthenticatedDep
from shared.service import SessionDep

# Ids are UUIDs (docs/API.md); anything else is refused before it reaches a query.


async def workforce(request: Request) -> Workforce:
    return request.app.state.workforce


WorkforceDep = Annotated[Workforce, Depends(workforce)]


async def visible_practitioner(
    session: SessionDep, caller: AuthenticatedDep, practitioner_id: IdPath
) -> Practitioner:
    return await get_visible_practitioner(session=session, caller=caller, practitioner_id=practitioner_id)


PractitionerDep = Annotated[Practitioner, Depends(visible_practitioner)]


async def visible_facility(
    session: SessionDep, caller: AuthenticatedDep, facility_id: IdPath
) -> FacilityProjection:
    return await get_visible_facility(session=session, caller=caller, facility_id=facility_id)


FacilityDep = Annotated[FacilityProjection, Depends(visible_facility)]


async def visible_employment(
    session: SessionDep, caller: AuthenticatedDep, employment_id: IdPath
) -> Employment:
    return await get_visible_employment(session=session, caller=caller, employment_id=employment_id)


EmploymentDep = Annotated[Employment, Depends(visible_employment)]
