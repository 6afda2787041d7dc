"""workforce's HTTP layer: parse, authorize, call the service, return."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.workforce.deps import (
    UUID_PATTERN,
    EmploymentDep,
    FacilityDep,
    IdPath,
    IdQuery,
    PractitionerDep,
    WorkforceDep,
)
from services.workforce.schemas import (
    BackgroundCheckAnswer,
    BackgroundCheckCreate,
    BackgroundCheckRead,
    BackgroundCheckResolve,
    BanCheckRequest,
    BanCheckResult,
    BanCreate,
    BanNotificationRead,
    BanRead,
    BanRescind,
    CertificateCreate,
    CertificateRead,
    CertificationCompliance,
    EmploymentCreate,
    EmploymentEnd,
    EmploymentRead,
    GradeCreate,
    GradeRead,
    PractitionerCreate,
    PractitionerRead,
    RecheckSummary,
    StaffingRead,
    TrainingCompliance,
    TrainingCreate,
    TrainingRead,
    TrainingTotals,
)
from services.workforce.service import (
    background_checks,
    ban_checks,
    bans,
    certification,
    hiring,
    practitioners,
    rechecks,
    staffing,
    training,
)
from services.workforce.service.common import get_visible_facility, shanghai_today
from shared.clock import Day
from shared.errors import PROBLEM_JSON, CradleError, problem_response
from shared.idempotency import IdempotencyDep
from shared.identity import AuthenticatedDep, Identity, PurposeDep, RequestIdDep, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])

Reader = Annotated[Identity, scope_guard("workforce:read")]
Writer = Annotated[Identity, scope_guard("workforce:write")]


async def ban_authority(caller: Annotated[Identity, scope_guard("workforce:ban")]) -> Identity:
    """The scope and an EDU or POLICE bureau client: 403 before any ban is looked up."""
    bans.require_ban_authority(caller)
    return caller


Banner = Annotated[Identity, Depends(ban_authority)]
Year = Annotated[int, Query(ge=2000, le=2100, description="calendar year")]
PageDep = Annotated[PageParams, Depends(page_params)]


# Replies to POSTs are remembered under their Idempotency-Key (`idem.respond`). POSTs that carry an
# ID number (practitioners, bans, ban checks) take no key: their request hash would be a plain hash
# of the number, and they are idempotent by themselves (a repeat is a 409 naming the first record).


def _problem(error: CradleError) -> JSONResponse:
    """Render a refusal without raising, so the transaction that recorded it still commits."""
    return problem_response(
        status=error.status,
        title=error.title,
        type_=error.type,
        detail=error.detail,
        errors=error.errors,
        headers=error.headers,
        extra=error.extra,
    )


# --- practitioners ---------------------------------------------------------------------------


@router.post(
    "/practitioners",
    status_code=201,
    response_model=PractitionerRead,
    responses={200: {"model": PractitionerRead, "description": "the person was already on record"}},
)
async def register_practitioner(
    body: PractitionerCreate,
    session: SessionDep,
    caller: Writer,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
    response: Response,
) -> PractitionerRead:
    """Register a practitioner by ID number: 201 with a new record; 200 with the person's existing
    record, now visible to the caller (so it may hire them), its other employers still hidden."""
    registration = await practitioners.register(
        session=session, workforce=workforce, caller=caller, data=body
    )
    practitioner = registration.practitioner
    if not registration.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/practitioners/{practitioner.id}"
    response.headers["ETag"] = f'"{practitioner.version}"'
    return practitioners.to_read(
        practitioner,
        session=session,
        workforce=workforce,
        caller=caller,
        purpose=purpose,
        request_id=request_id,
    )


@router.get("/practitioners/{practitioner_id}", response_model=PractitionerRead)
async def read_practitioner(
    practitioner: PractitionerDep,
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
    response: Response,
) -> PractitionerRead:
    """Masked unless the caller holds `workforce:pii` and sends `X-Purpose`; unmasked reads are audited."""
    response.headers["ETag"] = f'"{practitioner.version}"'
    return practitioners.to_read(
        practitioner,
        session=session,
        workforce=workforce,
        caller=caller,
        purpose=purpose,
        request_id=request_id,
    )


@router.post("/practitioners/{practitioner_id}/grades", status_code=201, response_model=GradeRead)
async def set_grade(
    practitioner: PractitionerDep,
    body: GradeCreate,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    """岗位分级: a new level, kept in the practitioner's history."""
    if replay := await idem.replay():
        return replay
    grade = await practitioners.set_grade(
        session=session, caller=caller, practitioner=practitioner, data=body
    )
    return await idem.respond(201, grade)


@router.get("/practitioners/{practitioner_id}/grades", response_model=list[GradeRead])
async def grade_history(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader
) -> list[GradeRead]:
    return await practitioners.grade_history(session=session, practitioner=practitioner)


@router.post("/practitioners/{practitioner_id}/certificates", status_code=201, response_model=CertificateRead)
async def add_certificate(
    practitioner: PractitionerDep,
    body: CertificateCreate,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    if replay := await idem.replay():
        return replay
    certificate = await practitioners.add_certificate(
        session=session, caller=caller, practitioner=practitioner, data=body
    )
    return await idem.respond(201, certificate)


@router.get("/practitioners/{practitioner_id}/certificates", response_model=list[CertificateRead])
async def list_certificates(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader
) -> list[CertificateRead]:
    return await practitioners.list_certificates(session=session, practitioner=practitioner)


@router.post("/practitioners/{practitioner_id}/trainings", status_code=201, response_model=TrainingRead)
async def record_training(
    practitioner: PractitionerDep,
    body: TrainingCreate,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    if replay := await idem.replay():
        return replay
    recorded = await training.record_training(
        session=session, caller=caller, practitioner=practitioner, data=body
    )
    return await idem.respond(201, recorded)


class PractitionerTraining(BaseModel):
    totals: TrainingTotals
    items: list[TrainingRead]


@router.get("/practitioners/{practitioner_id}/trainings", response_model=PractitionerTraining)
async def practitioner_training(
    practitioner: PractitionerDep, year: Year, session: SessionDep, workforce: WorkforceDep, _caller: Reader
) -> PractitionerTraining:
    totals, items = await training.practitioner_totals(
        session=session, workforce=workforce, practitioner=practitioner, year=year
    )
    return PractitionerTraining(totals=totals, items=items)


@router.post(
    "/practitioners/{practitioner_id}/background-checks", status_code=201, response_model=BackgroundCheckRead
)
async def request_background_check(
    practitioner: PractitionerDep,
    body: BackgroundCheckCreate,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    """资格审查: a request the police answer through the API."""
    if replay := await idem.replay():
        return replay
    check = await background_checks.request_background_check(
        session=session, caller=caller, practitioner=practitioner, data=body
    )
    return await idem.respond(201, background_checks.check_read(check))


@router.get("/practitioners/{practitioner_id}/background-checks", response_model=list[BackgroundCheckRead])
async def list_background_checks(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader
) -> list[BackgroundCheckRead]:
    return await background_checks.list_checks(session=session, practitioner=practitioner)


@router.post(
    "/practitioners/{practitioner_id}/background-checks/{check_id}/answer", response_model=BackgroundCheckRead
)
async def answer_background_check(
    practitioner: PractitionerDep,
    check_id: IdPath,
    body: BackgroundCheckAnswer,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    """POLICE: clear or flagged. A flagged person cannot be hired until the flag is resolved."""
    if replay := await idem.replay():
        return replay
    check = await background_checks.get_check(session=session, practitioner=practitioner, check_id=check_id)
    check = await background_checks.answer_background_check(
        session=session, caller=caller, check=check, data=body
    )
    return await idem.respond(200, background_checks.check_read(check))


@router.post(
    "/practitioners/{practitioner_id}/background-checks/{check_id}/resolve",
    response_model=BackgroundCheckRead,
)
async def resolve_background_check(
    practitioner: PractitionerDep,
    check_id: IdPath,
    body: BackgroundCheckResolve,
    session: SessionDep,
    caller: Writer,
    idem: IdempotencyDep,
) -> Response:
    if replay := await idem.replay():
        return replay
    check = await background_checks.get_check(session=session, practitioner=practitioner, check_id=check_id)
    check = await background_checks.resolve_background_check(
        session=session, caller=caller, check=check, data=body
    )
    return await idem.respond(200, background_checks.check_read(check))


# --- employment ------------------------------------------------------------------------------


@router.post(
    "/employments",
    status_code=201,
    response_model=EmploymentRead,
    responses={409: {"description": "banned, flagged, not approved or already employed"}},
)
async def hire(
    body: EmploymentCreate, session: SessionDep, caller: Writer, workforce: WorkforceDep, idem: IdempotencyDep
) -> Response:
    """Hire: the facility approved, the person not banned nor flagged, a valid certificate for the
    role, all checked in one transaction. A refusal for a ban is recorded and published."""
    if replay := await idem.replay():
        return replay
    outcome = await hiring.hire(session=session, workforce=workforce, caller=caller, data=body)
    if isinstance(outcome, hiring.HireRefused):
        refusal = _problem(outcome.problem)
        await idem.remember(
            status_code=refusal.status_code,
            body=json.loads(refusal.body),
            headers={"content-type": PROBLEM_JSON},
        )
        return refusal
    employment = await hiring.read_employment(session=session, employment=outcome)
    return await idem.respond(201, employment, {"Location": f"/v1/employments/{outcome.id}"})


@router.get("/employments", response_model=Page[EmploymentRead])
async def list_employments(
    session: SessionDep,
    caller: Reader,
    page: PageDep,
    facility_id: IdQuery,
    status: Literal["active", "ended"] | None = "active",
    social_insurance_paid: bool | None = None,
) -> Page[EmploymentRead]:
    """A facility's staff; `social_insurance_paid=false` shows who lacks 社保."""
    facility = await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
    return await hiring.list_employments(
        session=session,
        facility=facility,
        status=status,
        social_insurance_paid=social_insurance_paid,
        page=page,
    )


@router.get("/employments/{employment_id}", response_model=EmploymentRead)
async def read_employment(employment: EmploymentDep, session: SessionDep, _caller: Reader) -> EmploymentRead:
    return await hiring.read_employment(session=session, employment=employment)


@router.post("/employments/{employment_id}/end", response_model=EmploymentRead)
async def end_employment(
    employment: EmploymentDep, body: EmploymentEnd, session: SessionDep, caller: Writer, idem: IdempotencyDep
) -> Response:
    if replay := await idem.replay():
        return replay
    ended = await hiring.end_employment(session=session, caller=caller, employment=employment, data=body)
    return await idem.respond(200, await hiring.read_employment(session=session, employment=ended))


# --- bans ------------------------------------------------------------------------------------


@router.post("/bans", status_code=201, response_model=BanRead)
async def issue_ban(
    body: BanCreate,
    session: SessionDep,
    caller: Banner,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
    response: Response,
) -> BanRead:
    """终身禁入: ends every active employment of the person at once and notifies each employer."""
    ban = await bans.issue_ban_from_request(session=session, workforce=workforce, caller=caller, data=body)
    response.headers["Location"] = f"/v1/bans/{ban.id}"
    return await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=purpose, request_id=request_id
    )


@router.get("/bans/{ban_id}", response_model=BanRead)
async def read_ban(
    ban_id: IdPath,
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> BanRead:
    ban = await bans.get_visible_ban(session=session, caller=caller, ban_id=ban_id)
    return await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=purpose, request_id=request_id
    )


@router.post("/bans/{ban_id}/rescind", response_model=BanRead)
async def rescind_ban(
    ban_id: IdPath,
    body: BanRescind,
    session: SessionDep,
    caller: Banner,
    workforce: WorkforceDep,
    request_id: RequestIdDep,
    idem: IdempotencyDep,
) -> Response:
    """A ban is never deleted; a rescission with reason and authority is recorded beside it."""
    if replay := await idem.replay():
        return replay
    ban = await bans.get_visible_ban(session=session, caller=caller, ban_id=ban_id)
    ban = await bans.rescind_ban(session=session, caller=caller, ban=ban, data=body)
    # purpose=None: the reply is masked, so the stored replay holds no ID number either.
    read = await bans.ban_read(
        session=session, workforce=workforce, caller=caller, ban=ban, purpose=None, request_id=request_id
    )
    return await idem.respond(200, read)


@router.post("/bans/{ban_id}/notifications/{facility_id}/acknowledge", response_model=BanNotificationRead)
async def acknowledge_ban_notification(
    ban_id: IdPath, facility_id: IdPath, session: SessionDep, caller: Writer, workforce: WorkforceDep
) -> BanNotificationRead:
    """The employer confirms it was told (acknowledging twice changes nothing); unacknowledged past
    the deadline, its district is told."""
    return await bans.acknowledge(
        session=session, workforce=workforce, caller=caller, ban_id=ban_id, facility_id=facility_id
    )


@router.post("/ban-checks", response_model=BanCheckResult)
async def ban_check(
    body: BanCheckRequest,
    request: Request,
    caller: AuthenticatedDep,
    workforce: WorkforceDep,
    purpose: PurposeDep,
    request_id: RequestIdDep,
) -> BanCheckResult:
    """Is this person banned? Every check is audited, refused ones too; never fails open."""
    return await ban_checks.check_ban(
        engine=request.app.state.engine,
        audit=request.app.state.check_audit,
        workforce=workforce,
        caller=caller,
        id_number=body.id_number,
        purpose=purpose,
        request_id=request_id,
    )


# --- compliance and staffing -----------------------------------------------------------------


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


@router.get("/compliance/ban-notifications", response_model=list[BanNotificationRead])
async def ban_notifications(
    session: SessionDep,
    caller: Reader,
    workforce: WorkforceDep,
    pending: bool = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[BanNotificationRead]:
    """Ban notifications of the facilities the caller may see; by default those not yet acknowledged."""
    return await bans.list_notifications(
        session=session, workforce=workforce, caller=caller, pending_only=pending, limit=limit
    )


@router.get("/compliance/background-checks", response_model=Page[BackgroundCheckRead])
async def background_check_queue(
    session: SessionDep,
    caller: Reader,
    page: PageDep,
    status: Literal["pending", "clear", "flagged", "resolved"] = "pending",
) -> Page[BackgroundCheckRead]:
    """The police's queue of background checks."""
    return await background_checks.police_queue(session=session, caller=caller, status=status, page=page)
