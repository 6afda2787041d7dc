"""Complaints (投诉): lodged about a facility by a parent, the public or a bureau, routed to the
facility's district, acknowledged within 1 and answered within 15 working days (Shanghai's calendar,
settings). Late ones escalate to the city (`escalate_late`, run by the jobs). The answer's outcome
is public through the registry when founded: `complaint.answered` is its credit entry."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import AlreadyDecided, ComplaintNotFound, FacilityNotFound
from services.monitoring.events import (
    ComplaintAcknowledged,
    ComplaintAnswered,
    ComplaintEscalated,
    ComplaintLodged,
)
from services.monitoring.models import Complaint, Facility
from services.monitoring.schemas import ComplainantKind, ComplaintAnswer, ComplaintCreate
from services.monitoring.service.access import require_supervisor
from services.monitoring.service.common import get_visible_facility
from services.monitoring.service.complaint_access import (
    NAME,
    PHONE,
    Complaints,
    files_complaints,
    may_see_complaint,
    visible_complaints_clause,
)
from shared.clock import as_utc, new_id, shanghai_today
from shared.errors import Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams

# No 0/O, 1/I/L: read aloud over a hotline, typed back from a note.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 8
CODE_LENGTH = 12  # 31^12 ≈ 2^59: out of reach of guessing through the gateway's rate limit
# Facilities a complaint may be about: those that operate, or did until a suspension.
OPERATING = ("approved", "suspended")
OPEN = ("lodged", "acknowledged", "escalated")


@dataclass(frozen=True, slots=True)
class Lodged:
    complaint: Complaint
    code: str | None  # given once; only its keyed hash is kept


@dataclass(frozen=True, slots=True)
class ComplaintFilters:
    facility_id: str | None = None
    district_code: str | None = None
    status: str | None = None


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalized_reference(reference: str) -> str:
    """`ts2026 7k3m9q2x`, `TS2026-7K3M9Q2X`: the same reference."""
    plain = "".join(c for c in reference.upper() if c.isalnum())
    return f"{plain[:6]}-{plain[6:]}"


def _code_hash(desk: Complaints, reference: str, code: str) -> str:
    plain = "".join(c for c in code.upper() if c.isalnum())
    return desk.hasher.digest(f"complaint-code:{reference}:{plain}")


def complainant_kind_of(caller: Identity) -> ComplainantKind:
    if caller.kind == ClientKind.public:
        return ComplainantKind.public
    if files_complaints(caller):
        return ComplainantKind.parent
    if caller.kind == ClientKind.bureau and caller.has_scope("monitoring:write"):
        return ComplainantKind.bureau
    raise Forbidden(tr("Complaints are lodged by parents, the public and the city's bureaus."))


async def _facility_complained_about(
    *, session: AsyncSession, caller: Identity, facility_id: str
) -> Facility:
    """Parents and the public complain about any operating facility; a bureau about any it sees."""
    if caller.kind == ClientKind.bureau:
        return await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
    facility = await session.get(Facility, facility_id)
    if facility is None or facility.status not in OPERATING:
        raise FacilityNotFound(tr("No approved facility {facility_id}.", facility_id=facility_id))
    return facility


async def lodge(
    *, session: AsyncSession, caller: Identity, data: ComplaintCreate, desk: Complaints, now: datetime
) -> Lodged:
    kind = complainant_kind_of(caller)
    facility = await _facility_complained_about(session=session, caller=caller, facility_id=data.facility_id)
    reference = f"TS{shanghai_today(now).year}-{_random(REFERENCE_LENGTH)}"
    # Those without an account follow the complaint with a code; a parent through its account.
    code = None if kind == ComplainantKind.parent else _random(CODE_LENGTH)
    name = desk.seal(data.complainant_name, context=NAME) if data.complainant_name else None
    phone = desk.seal(data.complainant_phone, context=PHONE) if data.complainant_phone else None
    settings = desk.settings
    complaint = Complaint(
        id=new_id(),
        reference=reference,
        code_hash=_code_hash(desk, reference, code) if code else None,
        facility_id=facility.id,
        district_code=facility.district_code,
        category=data.category.value,
        description=data.description,
        complainant_kind=kind.value,
        complainant_client_id=caller.client_id if kind == ComplainantKind.parent else None,
        name_key_id=name.key_id if name else None,
        name_encrypted=name.ciphertext if name else None,
        phone_key_id=phone.key_id if phone else None,
        phone_encrypted=phone.ciphertext if phone else None,
        lodged_by=caller.client_id,
        status="lodged",
        lodged_at=now,
        acknowledge_due_at=desk.calendar.deadline(now, settings.complaint_acknowledge_working_days),
        answer_due_at=desk.calendar.deadline(now, settings.complaint_answer_working_days),
        updated_at=now,
    )
    session.add(complaint)
    await session.flush()
    await emit(
        session,
        ComplaintLodged(
            complaint_id=complaint.id,
            facility_id=facility.id,
            district_code=facility.district_code,
            category=complaint.category,
            lodged_at=now,
            acknowledge_due_at=complaint.acknowledge_due_at,
            answer_due_at=complaint.answer_due_at,
        ),
    )
    return Lodged(complaint=complaint, code=f"{code[:4]}-{code[4:8]}-{code[8:]}" if code else None)


async def look_up(
    *, session: AsyncSession, reference: str, code: str, desk: Complaints
) -> tuple[Complaint, Facility]:
    """The complaint a reference and its code name; a wrong code and an unknown reference are the
    same 404, and the hashes are compared in constant time."""
    reference = normalized_reference(reference)
    row = (
        await session.execute(
            select(Complaint, Facility)
            .join(Facility, Facility.id == Complaint.facility_id)
            .where(Complaint.reference == reference)
        )
    ).first()
    expected = row.Complaint.code_hash if row is not None else None
    given = _code_hash(desk, reference, code)
    if row is None or expected is None or not hmac.compare_digest(expected, given):
        raise ComplaintNotFound(tr("No complaint with that reference and code."))
    return row.Complaint, row.Facility


async def get_visible_complaint(
    *, session: AsyncSession, caller: Identity, complaint_id: str, for_update: bool = False
) -> tuple[Complaint, Facility]:
    query = (
        select(Complaint, Facility)
        .join(Facility, Facility.id == Complaint.facility_id)
        .where(Complaint.id == complaint_id)
    )
    if for_update:
        query = query.with_for_update(of=Complaint)
    row = (await session.execute(query)).first()
    if row is None or not may_see_complaint(caller, row.Complaint, row.Facility):
        raise ComplaintNotFound(
            tr("No complaint {complaint_id} that you may see.", complaint_id=complaint_id)
        )
    return row.Complaint, row.Facility


async def list_complaints(
    *, session: AsyncSession, caller: Identity, filters: ComplaintFilters, page: PageParams
) -> list[tuple[Complaint, Facility]]:
    """Newest first; `page.after` is `[lodged_at, id]` of the last row seen."""
    query = (
        select(Complaint, Facility)
        .join(Facility, Facility.id == Complaint.facility_id)
        .where(visible_complaints_clause(caller))
        .order_by(Complaint.lodged_at.desc(), Complaint.id.desc())
        .limit(page.limit + 1)
    )
    for column, value in (
        (Complaint.facility_id, filters.facility_id),
        (Complaint.district_code, filters.district_code),
        (Complaint.status, filters.status),
    ):
        if value is not None:
            query = query.where(column == value)
    if page.after:
        try:
            lodged_at, last_id = datetime.fromisoformat(str(page.after[0])), str(page.after[1])
        except (ValueError, IndexError):
            raise invalid("cursor", "is not a cursor this API returned") from None
        query = query.where(
            or_(
                Complaint.lodged_at < lodged_at,
                and_(Complaint.lodged_at == lodged_at, Complaint.id < last_id),
            )
        )
    return [(row.Complaint, row.Facility) for row in await session.execute(query)]


def _check_open(complaint: Complaint) -> None:
    if complaint.status == "answered":
        raise AlreadyDecided(tr("The complaint was answered already."))


async def acknowledge(
    *, session: AsyncSession, caller: Identity, complaint: Complaint, now: datetime
) -> Complaint:
    """The district (or EDU) has it in hand; an escalated complaint stays escalated."""
    require_supervisor(caller, complaint.district_code, "acknowledges a complaint")
    _check_open(complaint)
    if complaint.acknowledged_at is not None:
        raise AlreadyDecided(tr("The complaint was acknowledged already."))
    complaint.acknowledged_at, complaint.acknowledged_by = now, caller.client_id
    if complaint.status == "lodged":
        complaint.status = "acknowledged"
    complaint.version += 1
    complaint.updated_at = now
    await emit(
        session,
        ComplaintAcknowledged(
            complaint_id=complaint.id,
            facility_id=complaint.facility_id,
            district_code=complaint.district_code,
            category=complaint.category,
            acknowledged_at=now,
        ),
    )
    return complaint


async def answer(
    *, session: AsyncSession, caller: Identity, complaint: Complaint, data: ComplaintAnswer, now: datetime
) -> Complaint:
    """Once; an answer acknowledges a complaint not acknowledged yet."""
    require_supervisor(caller, complaint.district_code, "answers a complaint")
    _check_open(complaint)
    if complaint.acknowledged_at is None:
        complaint.acknowledged_at, complaint.acknowledged_by = now, caller.client_id
    complaint.status = "answered"
    complaint.outcome, complaint.answer = data.outcome.value, data.answer
    complaint.answered_at, complaint.answered_by = now, caller.client_id
    complaint.version += 1
    complaint.updated_at = now
    await emit(
        session,
        ComplaintAnswered(
            complaint_id=complaint.id,
            facility_id=complaint.facility_id,
            district_code=complaint.district_code,
            category=complaint.category,
            outcome=data.outcome.value,
            answered_at=now,
        ),
    )
    return complaint


LATE_CHUNK = 200


async def escalate_late(*, session: AsyncSession, now: datetime) -> int:
    """One chunk of complaints past a deadline not yet escalated for it: each is marked, moves to
    `escalated` and publishes `complaint.escalated`, once per deadline (the mark is written in the
    same transaction; rows are claimed with SKIP LOCKED on PostgreSQL)."""
    unacknowledged = and_(
        Complaint.status == "lodged",
        Complaint.acknowledge_due_at < now,
        Complaint.acknowledge_escalated_at.is_(None),
    )
    unanswered = and_(
        Complaint.status.in_(OPEN),
        Complaint.answer_due_at < now,
        Complaint.answer_escalated_at.is_(None),
    )
    rows = (
        (
            await session.execute(
                select(Complaint)
                .where(or_(unacknowledged, unanswered))
                .order_by(Complaint.lodged_at, Complaint.id)
                .limit(LATE_CHUNK)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    for complaint in rows:
        late: list[tuple[str, datetime]] = []
        if complaint.acknowledged_at is None and complaint.acknowledge_escalated_at is None:
            if as_utc(complaint.acknowledge_due_at) < now:
                complaint.acknowledge_escalated_at = now
                late.append(("acknowledge", as_utc(complaint.acknowledge_due_at)))
        if complaint.answer_escalated_at is None and as_utc(complaint.answer_due_at) < now:
            complaint.answer_escalated_at = now
            late.append(("answer", as_utc(complaint.answer_due_at)))
        complaint.status = "escalated"
        complaint.version += 1
        complaint.updated_at = now
        for deadline, due_at in late:
            await emit(
                session,
                ComplaintEscalated(
                    complaint_id=complaint.id,
                    facility_id=complaint.facility_id,
                    district_code=complaint.district_code,
                    category=complaint.category,
                    deadline=deadline,
                    due_at=due_at,
                    escalated_at=now,
                ),
            )
    return len(rows)
