"""风险预警 (a facility's score, a district's ranking) and the figures for `/v1/indicators`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.monitoring.casework.deps import DistrictFilter, Paging, PathId, Reader, SettingsDep
from services.monitoring.casework.schemas import Figures, RiskListItem, RiskRead
from services.monitoring.casework.service import figures, risk
from services.monitoring.models import Facility
from services.monitoring.service.common import get_visible_facility, utcnow, visible_facilities_clause
from shared.errors import invalid
from shared.pagination import Page, encode_cursor
from shared.service import SessionDep

router = APIRouter(tags=["risk"])


@router.get("/facilities/{facility_id}/risk", response_model=RiskRead)
async def facility_risk(
    facility_id: PathId, session: SessionDep, caller: Reader, settings: SettingsDep
) -> RiskRead:
    """The facility's risk score (0–100), its level and the reasons that make it up."""
    facility = await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
    now = utcnow()
    [found] = await risk.compute(
        session=session, scope=Facility.id == facility.id, settings=settings, now=now
    )
    return RiskRead(
        facility_id=found.facility_id,
        score=found.score,
        level=found.level,
        reasons=found.reasons,
        computed_at=now,
    )


@router.get("/risk", response_model=Page[RiskListItem])
async def risk_ranking(
    session: SessionDep,
    caller: Reader,
    settings: SettingsDep,
    paging: Paging,
    district_code: DistrictFilter = None,
) -> Page[RiskListItem]:
    """Operating facilities you may see (approved or suspended), riskiest first."""
    scope = visible_facilities_clause(caller) & Facility.status.in_(risk.LISTED_STATUSES)
    if district_code is not None:
        scope = scope & (Facility.district_code == district_code)
    after = paging.after
    if after is not None:
        try:
            float(after[0]), str(after[1])
        except (ValueError, TypeError, IndexError):
            raise invalid("cursor", "is not a cursor this API returned") from None
    now = utcnow()
    risks = await risk.compute(session=session, scope=scope, settings=settings, now=now)
    page, position = risk.ranked_page(risks, limit=paging.limit, after=after)
    return Page[RiskListItem](
        items=[risk.to_list_item(r, now) for r in page],
        next_cursor=encode_cursor(position) if position else None,
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
