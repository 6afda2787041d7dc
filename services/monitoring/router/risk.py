"""风险预警 (a facility's score, a district's ranking) and the figures for `/v1/indicators`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.monitoring.deps import DistrictFilter, Paging, PathId, Reader, SettingsDep
from services.monitoring.schemas import Figures, RiskListItem, RiskRead
from services.monitoring.service import figures, risk
from services.monitoring.service.common import get_visible_facility
from shared.clock import utcnow
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["risk"])


@router.get("/facilities/{facility_id}/risk", response_model=RiskRead)
async def facility_risk(
    facility_id: PathId, session: SessionDep, caller: Reader, settings: SettingsDep
) -> RiskRead:
    """The facility's risk score (0–100), its level and the reasons that make it up."""
    facility = await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
    return await risk.facility_risk(session=session, facility=facility, settings=settings, now=utcnow())


@router.get("/risk", response_model=Page[RiskListItem])
async def risk_ranking(
    session: SessionDep,
    caller: Reader,
    settings: SettingsDep,
    paging: Paging,
    district_code: DistrictFilter = None,
) -> Page[RiskListItem]:
    """Operating facilities you may see (approved or suspended), riskiest first."""
    return await risk.ranking(
        session=session,
        caller=caller,
        settings=settings,
        paging=paging,
        district_code=district_code,
        now=utcnow(),
    )


@router.get("/monitoring/figures", response_model=Figures, tags=["indicators"])
async def monitoring_figures(
    session: SessionDep,
    caller: Reader,
    settings: SettingsDep,
    year: Annotated[int, Query(ge=2000, le=2100)],
) -> Figures:
    """Per district and for the city: approved facilities, those inspected on site in `year`,
    incidents by category and status, alerts by severity."""
    return await figures.compute(session=session, caller=caller, year=year, settings=settings, now=utcnow())
