from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from services.guidance.schemas import BirthsRead, BirthsRecord, Figures
from services.guidance.service import births, figures
from services.guidance.service.common import READ_SCOPE, WRITE_SCOPE, is_parent
from shared.clock import shanghai_today
from shared.errors import Forbidden
from shared.identity import AuthenticatedDep, Identity, scope_guard
from shared.service import SessionDep

router = APIRouter(prefix="/v1/guidance", tags=["figures"])


@router.get("/figures", response_model=Figures)
async def read_figures(
    request: Request,
    session: SessionDep,
    caller: AuthenticatedDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> Figures:
    """The plan's figures for a year (default: this year): numerators and denominators, city-wide
    and per district (`district_code` keeps one district's row). For `/v1/indicators`."""
    if is_parent(caller) or not any(
        caller.has_scope(s) for s in (READ_SCOPE, WRITE_SCOPE, "indicators:read")
    ):
        raise Forbidden("This needs the `guidance:read` or `indicators:read` scope.")
    target = request.app.state.settings.offline_sessions_target
    return await figures.figures(
        session=session, year=year or shanghai_today().year, target=target, district_code=district_code
    )


Writer = Annotated[Identity, scope_guard(WRITE_SCOPE)]
DistrictCodePath = Annotated[str, Path(pattern=r"^\d{6}$")]
YearPath = Annotated[int, Path(ge=2000, le=2100)]


@router.get("/births", response_model=list[BirthsRead])
async def list_births(
    session: SessionDep,
    caller: AuthenticatedDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> list[BirthsRead]:
    """Births per district and year, the denominator of the handbook's coverage (T19): 2020 from the
    census's age-0 population, later years as HEALTH records them. Newest year first."""
    if is_parent(caller) or not any(caller.has_scope(s) for s in (READ_SCOPE, WRITE_SCOPE)):
        raise Forbidden("This needs the `guidance:read` scope.")
    rows = await births.births_list(session=session, year=year, district_code=district_code)
    return [births.to_read(r) for r in rows]


@router.put("/births/{district_code}/{year}", response_model=BirthsRead)
async def record_births(
    body: BirthsRecord, session: SessionDep, caller: Writer, district_code: DistrictCodePath, year: YearPath
) -> BirthsRead:
    """HEALTH records a district's births for a year (a second record for the year corrects it)."""
    row = await births.record_births(
        session=session, caller=caller, district_code=district_code, year=year, data=body
    )
    return births.to_read(row)
