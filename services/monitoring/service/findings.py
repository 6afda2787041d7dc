"""Findings on an incident (DOMAIN.md, "Who may ban"). A district's finding of abuse names people
and proposes: it is stored `proposed`, bans nobody and publishes only `finding.proposed`. EDU (the
lead bureau) confirms it, and only then does `incident.confirmed` carry the names to the workforce;
or EDU rejects it, and the incident is open for a new finding. EDU's own findings, and findings
that name nobody, are final at once. A finding names only people employed at the incident's
facility at or after the incident (monitoring's projection of the workforce's employments)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import AlreadyDecided
from services.monitoring.events import FindingProposed, FindingRejected, IncidentConfirmed, IncidentUnfounded
from services.monitoring.models import (
    Alert,
    EmploymentRecord,
    Facility,
    Finding,
    Incident,
    IncidentTransition,
)
from services.monitoring.schemas import (
    FindingConfirm,
    FindingCreate,
    FindingOutcome,
    FindingReject,
    IncidentCategory,
)
from services.monitoring.service import alerts
from services.monitoring.service.access import LEAD_BUREAU, require_supervisor
from services.monitoring.service.incidents import ACTIVE_ALERT
from shared.clock import SHANGHAI, as_utc, new_id
from shared.errors import Conflict, FieldError, InvalidInput
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity, require_bureau

PROPOSED, CONFIRMED, REJECTED, FINAL = "proposed", "confirmed", "rejected", "final"


class NothingProposed(Conflict):
    title = "No finding awaits confirmation"
    type = "/problems/nothing-proposed"


def _consistency_errors(data: FindingCreate) -> list[FieldError]:
    abuse = data.outcome == FindingOutcome.confirmed and data.category == IncidentCategory.abuse
    errors = []
    if abuse and not data.abuser_practitioner_ids:
        errors.append(
            FieldError(field="abuser_practitioner_ids", message="a confirmed abuse names at least one abuser")
        )
    if not abuse:
        why = "only a confirmed abuse names people (they are banned for life)"
        if data.abuser_practitioner_ids:
            errors.append(FieldError(field="abuser_practitioner_ids", message=why))
        if data.responsible_manager_ids:
            errors.append(FieldError(field="responsible_manager_ids", message=why))
    return errors


async def _not_employed_there(
    session: AsyncSession, *, incident: Incident, abusers: list[str], managers: list[str]
) -> list[FieldError]:
    """One error per named person the facility did not employ at or after the incident's day."""
    named = sorted(set(abusers) | set(managers))
    if not named:
        return []
    # Employments are dated in Shanghai (the workforce's calendar), so the incident's day is too.
    day = as_utc(incident.occurred_at).astimezone(SHANGHAI).date()
    employed = set(
        (
            await session.execute(
                select(EmploymentRecord.practitioner_id).where(
                    EmploymentRecord.facility_id == incident.facility_id,
                    EmploymentRecord.practitioner_id.in_(named),
                    or_(EmploymentRecord.end_date.is_(None), EmploymentRecord.end_date >= day),
                )
            )
        ).scalars()
    )
    errors = []
    for field, ids in (("abuser_practitioner_ids", abusers), ("responsible_manager_ids", managers)):
        for index, practitioner_id in enumerate(ids):
            if practitioner_id not in employed:
                errors.append(
                    FieldError(
                        field=f"{field}.{index}",
                        message=f"{practitioner_id} was not employed at facility {incident.facility_id} "
                        f"on or after the incident ({day.isoformat()})",
                    )
                )
    return errors


async def _check_named(
    session: AsyncSession, *, incident: Incident, abusers: list[str], managers: list[str]
) -> None:
    if errors := await _not_employed_there(session, incident=incident, abusers=abusers, managers=managers):
        strangers = sorted({e.message.split(" ", 1)[0] for e in errors})
        raise InvalidInput(
            "A finding names only people employed at the incident's facility at or after the incident; "
            f"not so: {', '.join(strangers)}.",
            errors=errors,
        )


def _transition(
    session: AsyncSession, *, incident: Incident, to: str, actor: str, note: str, now: datetime
) -> None:
    session.add(
        IncidentTransition(
            id=new_id(),
            incident_id=incident.id,
            from_status=incident.status,
            to_status=to,
            actor=actor,
            note=note,
            at=now,
        )
    )
    incident.status = to
    incident.version += 1
    incident.updated_at = now


async def record_finding(
    *,
    session: AsyncSession,
    caller: Identity,
    incident: Incident,
    facility: Facility,
    data: FindingCreate,
    now: datetime,
) -> Incident:
    require_supervisor(caller, facility.district_code, "records findings")
    if incident.status == PROPOSED:
        raise AlreadyDecided(
            tr(
                "A finding on incident {incident_id} awaits EDU's confirmation or rejection.",
                incident_id=incident.id,
            )
        )
    if incident.status != "reported":
        raise AlreadyDecided(
            f"Incident {incident.id} was already found {incident.status} ({incident.decision_ref}); "
            "a finding is final once."
        )
    if errors := _consistency_errors(data):
        raise InvalidInput("The finding is inconsistent.", errors=errors)
    abusers, managers = data.abuser_practitioner_ids, data.responsible_manager_ids
    await _check_named(session, incident=incident, abusers=abusers, managers=managers)
    names_people = bool(abusers or managers)
    finding = Finding(
        id=new_id(),
        incident_id=incident.id,
        status=PROPOSED if names_people and not caller.is_bureau(LEAD_BUREAU) else FINAL,
        outcome=data.outcome.value,
        category=data.category.value,
        abuser_practitioner_ids=sorted(set(abusers)),
        responsible_manager_ids=sorted(set(managers)),
        decision_ref=data.decision_ref,
        note=data.note,
        recorded_by=caller.client_id,
        recorded_at=now,
    )
    session.add(finding)
    await _answer_overdue_alert(session, incident=incident, caller=caller, now=now)
    if finding.status == PROPOSED:
        _transition(
            session,
            incident=incident,
            to=PROPOSED,
            actor=caller.client_id,
            note=f"finding {finding.id} proposed ({data.decision_ref}); awaits EDU",
            now=now,
        )
        await session.flush()
        await emit(
            session,
            FindingProposed(
                finding_id=finding.id,
                incident_id=incident.id,
                facility_id=incident.facility_id,
                district_code=incident.district_code,
                category=finding.category,
                decision_ref=finding.decision_ref,
                proposed_at=now,
            ),
        )
        return incident
    return await _decide(
        session,
        incident=incident,
        finding=finding,
        actor=caller.client_id,
        note=data.note or data.decision_ref,
        decision_ref=finding.decision_ref,
        now=now,
    )


async def _proposed(session: AsyncSession, incident: Incident) -> Finding:
    finding = (
        await session.execute(
            select(Finding)
            .where(Finding.incident_id == incident.id, Finding.status == PROPOSED)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if incident.status != PROPOSED or finding is None:
        raise NothingProposed(
            tr(
                "Incident {incident_id} is {status}: no finding awaits confirmation.",
                incident_id=incident.id,
                status=incident.status,
            )
        )
    return finding


async def confirm_finding(
    *, session: AsyncSession, caller: Identity, incident: Incident, data: FindingConfirm, now: datetime
) -> Incident:
    require_bureau(caller, LEAD_BUREAU, action="Confirming a district's finding")
    finding = await _proposed(session, incident)
    # Checked again: the projection only grows, but the check is what the confirmation stands on.
    await _check_named(
        session,
        incident=incident,
        abusers=finding.abuser_practitioner_ids,
        managers=finding.responsible_manager_ids,
    )
    finding.status = CONFIRMED
    finding.reviewed_by = caller.client_id
    finding.reviewed_at = now
    finding.review_ref = data.decision_ref
    finding.review_note = data.note or None
    return await _decide(
        session,
        incident=incident,
        finding=finding,
        actor=caller.client_id,
        note=f"finding {finding.id} confirmed by EDU" + (f": {data.note}" if data.note else ""),
        decision_ref=data.decision_ref or finding.decision_ref,
        now=now,
    )


async def reject_finding(
    *, session: AsyncSession, caller: Identity, incident: Incident, data: FindingReject, now: datetime
) -> Incident:
    require_bureau(caller, LEAD_BUREAU, action="Rejecting a district's finding")
    finding = await _proposed(session, incident)
    finding.status = REJECTED
    finding.reviewed_by = caller.client_id
    finding.reviewed_at = now
    finding.review_note = data.reason
    _transition(
        session,
        incident=incident,
        to="reported",
        actor=caller.client_id,
        note=f"finding {finding.id} rejected by EDU: {data.reason}"[:2000],
        now=now,
    )
    await session.flush()
    await emit(
        session,
        FindingRejected(
            finding_id=finding.id,
            incident_id=incident.id,
            facility_id=incident.facility_id,
            district_code=incident.district_code,
            reason=data.reason,
            rejected_at=now,
        ),
    )
    return incident


async def _decide(
    session: AsyncSession,
    *,
    incident: Incident,
    finding: Finding,
    actor: str,
    note: str,
    decision_ref: str,
    now: datetime,
) -> Incident:
    """The finding is final: the incident takes its outcome, and the event the others act on leaves."""
    _transition(session, incident=incident, to=finding.outcome, actor=actor, note=note, now=now)
    incident.outcome = finding.outcome
    incident.category = finding.category
    incident.decision_ref = decision_ref
    incident.decided_by = actor
    incident.decided_at = now
    incident.abuser_practitioner_ids = list(finding.abuser_practitioner_ids)
    incident.responsible_manager_ids = list(finding.responsible_manager_ids)
    await session.flush()
    if finding.outcome == FindingOutcome.confirmed.value:
        await emit(
            session,
            IncidentConfirmed(
                incident_id=incident.id,
                facility_id=incident.facility_id,
                district_code=incident.district_code,
                category=incident.category,
                decision_ref=decision_ref,
                decided_at=now,
                occurred_at=as_utc(incident.occurred_at),
                abuser_practitioner_ids=incident.abuser_practitioner_ids,
                responsible_manager_ids=incident.responsible_manager_ids,
            ),
        )
    else:
        await emit(
            session,
            IncidentUnfounded(
                incident_id=incident.id,
                facility_id=incident.facility_id,
                district_code=incident.district_code,
                category=incident.category,
                decision_ref=decision_ref,
                decided_at=now,
            ),
        )
    return incident


async def _answer_overdue_alert(
    session: AsyncSession, *, incident: Incident, caller: Identity, now: datetime
) -> None:
    """The district's finding (proposed or final) answers the overdue-finding alert, if one was raised."""
    overdue = (
        await session.execute(
            select(Alert).where(
                Alert.source_ref == f"finding_overdue:{incident.id}", Alert.status.in_(ACTIVE_ALERT)
            )
        )
    ).scalar_one_or_none()
    if overdue is not None:
        await alerts.transition(
            session,
            alert=overdue,
            to_status="resolved",
            actor=caller.client_id,
            note="finding recorded",
            now=now,
        )
