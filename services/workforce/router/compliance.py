"""Compliance: staffing ratios, training hours, certification, the annual re-checks, and the
employments of concern (no social insurance, a lapsed health certificate, suspended, provisional)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.workforce.deps import FacilityDep, WorkforceDep
from services.workforce.router.common import PageDep, Reader, Year
from services.workforce.schemas import (
    CertificationCompliance,
    EmploymentRead,
    RecheckSummary,
    StaffingRead,
    TrainingCompliance,
)
from services.workforce.service import certification, employment_changes, rechecks, staffing, training
from services.workforce.service.common import get_visible_facility
from shared.api import UUID_PATTERN
from shared.clock import Day, shanghai_today
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])


@router.get("/facilities/{facility_id}/staffing", response_model=StaffingRead)
async def facility_staffing(
    facility: FacilityDep, session: SessionDep, workforce: WorkforceDep, _caller: Reader
) -> StaffingRead:
    """Per age class: children, carers, the required ratio and whether it is met."""
    return await staffing.facility_staffing(session=session, workforce=workforce, facility=facility)


@router.get("/compliance/staffing", response_model=Page[StaffingRead])
async def out_of_ratio(
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    page: PageDep,
    district_code: Annotated[str | None, Query(pattern=r"^3101\d{2}$")] = None,
) -> Page[StaffingRead]:
    """Approved facilities out of ratio, citywide (or the caller's own)."""
    return await staffing.out_of_ratio(
        session=session, workforce=workforce, caller=caller, district_code=district_code, page=page
    )


@router.get("/compliance/training", response_model=TrainingCompliance)
async def training_compliance(
    year: Year,
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    page: PageDep,
    facility_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
) -> TrainingCompliance:
    """Who met ≥ 72 h skills and ≥ 40 h ethics in the year: one facility, or citywide."""
    facility = (
        await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
        if facility_id
        else None
    )
    return await training.compliance(
        session=session, workforce=workforce, caller=caller, year=year, facility=facility, page=page
    )


@router.get("/compliance/certification", response_model=CertificationCompliance)
async def certification_compliance(
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    on: Annotated[Day | None, Query(description="The day to look at (default: today, Shanghai)")] = None,
) -> CertificationCompliance:
    """持证上岗: of the people working in certified roles that day, how many held a valid certificate
    for their role — per district and in all (the facilities the caller may see)."""
    return await certification.compliance(
        session=session, workforce=workforce, caller=caller, on=on or shanghai_today()
    )


@router.get("/compliance/rechecks", response_model=RecheckSummary)
async def recheck_summary(year: Year, session: SessionDep, caller: Reader) -> RecheckSummary:
    """The annual re-check (Minor Protection Law Art. 62) for the year."""
    return await rechecks.summary(session=session, caller=caller, year=year)


DistrictQuery = Annotated[str | None, Query(pattern=r"^3101\d{2}$")]


@router.get("/compliance/employments", response_model=Page[EmploymentRead])
async def employments_of_concern(
    concern: Literal["social_insurance", "health_certificate", "suspended", "provisional"],
    session: SessionDep,
    caller: Reader,
    page: PageDep,
    district_code: DistrictQuery = None,
) -> Page[EmploymentRead]:
    """Active employments at the facilities the caller may see that lack social insurance (社保),
    whose holder's health certificate lapsed, that a flagged background check suspended, or that
    are provisional — by district, then id."""
    return await employment_changes.employments_of_concern(
        session=session, caller=caller, concern=concern, district_code=district_code, page=page
    )


@router.get("/compliance/social-insurance", response_model=Page[EmploymentRead])
async def lacking_social_insurance(
    session: SessionDep, caller: Reader, page: PageDep, district_code: DistrictQuery = None
) -> Page[EmploymentRead]:
    """Who works without social insurance (社保), in the caller's district or citywide."""
    return await employment_changes.employments_of_concern(
        session=session, caller=caller, concern="social_insurance", district_code=district_code, page=page
    )
