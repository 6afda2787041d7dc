"""Practitioners: registration, reads, grades (岗位分级), certificates and training hours."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from services.workforce.deps import PractitionerDep, WorkforceDep
from services.workforce.router.common import PageDep, Reader, Writer, Year
from services.workforce.schemas import (
    CertificateCreate,
    CertificateRead,
    GradeCreate,
    GradeRead,
    PractitionerCreate,
    PractitionerRead,
    TrainingCreate,
    TrainingRead,
    TrainingTotals,
)
from services.workforce.service import practitioners, training
from shared.idempotency import idempotent
from shared.identity import PurposeDep, RequestIdDep
from shared.pagination import Page
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["workforce"])


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
@idempotent(201)
async def set_grade(
    practitioner: PractitionerDep,
    body: GradeCreate,
    session: SessionDep,
    caller: Writer,
) -> GradeRead:
    """岗位分级: a new level, kept in the practitioner's history."""
    return await practitioners.set_grade(session=session, caller=caller, practitioner=practitioner, data=body)


@router.get("/practitioners/{practitioner_id}/grades", response_model=Page[GradeRead])
async def grade_history(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader, page: PageDep
) -> Page[GradeRead]:
    """The practitioner's levels, oldest first."""
    return await practitioners.grade_history(session=session, practitioner=practitioner, page=page)


@router.post("/practitioners/{practitioner_id}/certificates", status_code=201, response_model=CertificateRead)
@idempotent(201)
async def add_certificate(
    practitioner: PractitionerDep,
    body: CertificateCreate,
    session: SessionDep,
    caller: Writer,
    workforce: WorkforceDep,
) -> CertificateRead:
    """A certificate for a role (持证上岗) or a health certificate (健康合格证明, `type: health`, valid a
    year: `expires_on` may be left out). A valid health certificate lifts the flag of its holder's
    employments and settles a hire made pending one."""
    return await practitioners.add_certificate(
        session=session, workforce=workforce, caller=caller, practitioner=practitioner, data=body
    )


@router.get("/practitioners/{practitioner_id}/certificates", response_model=Page[CertificateRead])
async def list_certificates(
    practitioner: PractitionerDep, session: SessionDep, _caller: Reader, page: PageDep
) -> Page[CertificateRead]:
    """The practitioner's certificates, the latest expiry first."""
    return await practitioners.list_certificates(session=session, practitioner=practitioner, page=page)


@router.post("/practitioners/{practitioner_id}/trainings", status_code=201, response_model=TrainingRead)
@idempotent(201)
async def record_training(
    practitioner: PractitionerDep,
    body: TrainingCreate,
    session: SessionDep,
    caller: Writer,
) -> TrainingRead:
    return await training.record_training(
        session=session, caller=caller, practitioner=practitioner, data=body
    )


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
