"""Who sees which complaint, and how much of its complainant. The facility's district handles it
and alone may see the complainant's name and phone, with `monitoring:pii` and a purpose (each such
read audited in its transaction); the city's bureaus see complaints masked; the facility's operator
sees what it is about and the answer, never who complained; a parent sees its own."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.models import Complaint, Facility, PiiAccess
from services.monitoring.schemas import Complainant, ComplainantView, ComplaintProgress, ComplaintRead
from services.monitoring.service.common import may_see, visible_facilities_clause
from shared.clock import as_utc
from shared.identity import ClientKind, Identity
from shared.pii import PiiVault, mask
from shared.pii_audit import may_unmask, record_unmasked_read
from shared.workcalendar import WorkCalendar

# AES-GCM associated data: a ciphertext only decrypts in the field it was made for.
NAME = "complaint.name"
PHONE = "complaint.phone"
PII_SCOPE = "monitoring:pii"


@dataclass(frozen=True)
class Complaints(PiiVault):
    """The complaint desk's keys and calendar, built once per app."""

    settings: MonitoringSettings
    calendar: WorkCalendar

    @classmethod
    def from_settings(cls, settings: MonitoringSettings) -> Complaints:
        return cls(
            settings=settings,
            cipher=settings.cipher(),
            hasher=settings.hasher(),
            calendar=WorkCalendar(settings.working_calendar),
        )


def files_complaints(caller: Identity) -> bool:
    """A parent's own account (or the parents' app)."""
    return caller.kind in (ClientKind.parent, ClientKind.app)


def handles(caller: Identity, complaint: Complaint) -> bool:
    return caller.kind == ClientKind.district and caller.district_code == complaint.district_code


def may_see_complaint(caller: Identity, complaint: Complaint, facility: Facility) -> bool:
    if files_complaints(caller):
        return complaint.complainant_client_id == caller.client_id
    return may_see(caller, facility)


def visible_complaints_clause(caller: Identity) -> ColumnElement[bool]:
    """The same rule for lists (joined with Facility)."""
    if files_complaints(caller):
        return Complaint.complainant_client_id == caller.client_id
    if caller.sees_whole_city():
        return true()
    if caller.kind == ClientKind.district and caller.district_code:
        return Complaint.district_code == caller.district_code
    if caller.kind == ClientKind.operator:
        return visible_facilities_clause(caller)
    return false()


def reveals_complainant(caller: Identity, complaint: Complaint, purpose: str | None) -> bool:
    return handles(caller, complaint) and may_unmask(caller, purpose, scope=PII_SCOPE)


def _mask_name(name: str) -> str:
    return name[0] + "*" * max(1, len(name) - 1)


def progress(complaint: Complaint, facility: Facility) -> ComplaintProgress:
    return ComplaintProgress(
        reference=complaint.reference,
        facility_id=complaint.facility_id,
        facility_name=facility.name,
        category=complaint.category,
        status=complaint.status,
        lodged_at=as_utc(complaint.lodged_at),
        acknowledge_due_at=as_utc(complaint.acknowledge_due_at),
        answer_due_at=as_utc(complaint.answer_due_at),
        acknowledged_at=as_utc(complaint.acknowledged_at) if complaint.acknowledged_at else None,
        outcome=complaint.outcome,
        answer=complaint.answer,
        answered_at=as_utc(complaint.answered_at) if complaint.answered_at else None,
    )


def to_read(
    complaint: Complaint,
    facility: Facility,
    *,
    desk: Complaints,
    caller: Identity,
    unmasked: bool = False,
) -> ComplaintRead:
    """`unmasked` only after `audit_unmasked` (the caller handles it and said why)."""
    withheld = caller.kind == ClientKind.operator

    def opened(key_id: str | None, ciphertext: str | None, context: str) -> str | None:
        if not key_id or not ciphertext:
            return None
        return desk.open(key_id, ciphertext, context=context)

    complainant: Complainant | None = None
    view = (
        ComplainantView.withheld
        if withheld
        else ComplainantView.unmasked
        if unmasked
        else ComplainantView.masked
    )
    if not withheld:
        name = opened(complaint.name_key_id, complaint.name_encrypted, NAME)
        phone = opened(complaint.phone_key_id, complaint.phone_encrypted, PHONE)
        if not unmasked:
            name = _mask_name(name) if name else None
            phone = mask(phone) if phone else None
        complainant = Complainant(name=name, phone=phone)
    escalations = [at for at in (complaint.acknowledge_escalated_at, complaint.answer_escalated_at) if at]
    return ComplaintRead(
        **progress(complaint, facility).model_dump(),
        id=complaint.id,
        district_code=complaint.district_code,
        description=complaint.description,
        complainant_kind=None if withheld else complaint.complainant_kind,
        complainant=complainant,
        pii=view,
        escalated_at=as_utc(min(escalations, key=as_utc)) if escalations else None,
        version=complaint.version,
    )


def audit_unmasked(
    session: AsyncSession, *, caller: Identity, complaint: Complaint, purpose: str, request_id: str | None
) -> None:
    record_unmasked_read(
        session,
        PiiAccess,
        caller=caller,
        record_type="complaint",
        record_id=complaint.id,
        fields="complainant.name,complainant.phone",
        purpose=purpose,
        request_id=request_id,
    )
