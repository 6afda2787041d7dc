from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from services.registry.config import RegistrySettings
from services.registry.models import Facility
from services.registry.service import facilities
from services.registry.service.directory import FacilityDirectory
from shared.identity import AuthenticatedDep
from shared.service import SessionDep


async def registry_settings(request: Request) -> RegistrySettings:
    return request.app.state.settings


SettingsDep = Annotated[RegistrySettings, Depends(registry_settings)]


async def facility_directory(request: Request) -> FacilityDirectory:
    return request.app.state.directory


DirectoryDep = Annotated[FacilityDirectory, Depends(facility_directory)]
FacilityId = Annotated[str, Path(max_length=64)]


async def visible_facility(
    session: SessionDep, caller: AuthenticatedDep, facility_id: FacilityId
) -> Facility:
    """Load-and-authorize: the facility if the caller may see it, else 404."""
    return await facilities.get_visible_facility(session=session, caller=caller, facility_id=facility_id)


async def facility_to_change(
    session: SessionDep, caller: AuthenticatedDep, facility_id: FacilityId
) -> Facility:
    """The same, locked for the rest of the transaction on PostgreSQL, so that concurrent changes to
    one facility queue instead of racing (versions, reviews, licences)."""
    return await facilities.get_visible_facility(
        session=session, caller=caller, facility_id=facility_id, for_update=True
    )


FacilityDep = Annotated[Facility, Depends(visible_facility)]
FacilityToChangeDep = Annotated[Facility, Depends(facility_to_change)]
