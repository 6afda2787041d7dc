"""Events the monitoring service consumes (contracts in docs/EVENTS.md): the registry's facilities,
kept as a projection; the workforce's employments, kept as a projection (whom a finding may name);
and its bans, blocked hires, unacknowledged ban notices, employments flagged (a lapsed health
certificate) and suspended (a flagged background check), each an alert for the facility's district
and its operator.
Beside the events, two other streams are read here: the dead letters (`dead_letters.py`, each an
alert) and the devices' CCTV events (`ingest.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.models import EmploymentRecord, Facility
from services.monitoring.service.alerts import raise_alert
from shared.clock import SHANGHAI, as_utc, utcnow
from shared.contracts import payload_of
from shared.contracts.registry import FACILITY_FACT_EVENTS, FacilityFacts
from shared.contracts.workforce import (
    BanIssued,
    BanNotificationUnacknowledged,
    EmploymentEnded,
    EmploymentFlagged,
    EmploymentStarted,
    EmploymentSuspended,
    HireBlocked,
    StaffingAssessed,
)
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent


async def on_facility_changed(event: CloudEvent, session: AsyncSession) -> None:
    """Every facility event carries the current facts: keep the newest, by the facility's version
    and then the event's time, so a late older event changes nothing."""
    facts = payload_of(event, FacilityFacts)
    now = utcnow()
    facility = await session.get(Facility, facts.facility_id, with_for_update=True)
    if facility is None:
        facility = Facility(
            id=facts.facility_id,
            name=facts.name,
            kind=facts.kind,
            district_code=facts.district_code,
            town_code=facts.town_code,
            status=facts.status,
            version=facts.version,
            source_event_at=event.time,
            updated_at=now,
        )
        session.add(facility)
    elif (facts.version, event.time) <= (facility.version, as_utc(facility.source_event_at)):
        return
    facility.name = facts.name
    facility.kind = facts.kind
    facility.district_code = facts.district_code
    facility.town_code = facts.town_code
    facility.status = facts.status
    facility.owner_client_id = facts.owner_client_id
    facility.opening_hours = [period.model_dump() for period in facts.opening_hours]
    facility.enrolled = facts.enrolment.infant + facts.enrolment.toddler + facts.enrolment.preschool
    facility.version = facts.version
    facility.source_event_at = event.time
    facility.updated_at = now


async def _alert_for(
    session: AsyncSession,
    *,
    facility_id: str,
    type: str,
    severity: str,
    at: datetime,
    source_ref: str,
    details: dict[str, object],
) -> None:
    facility = await session.get(Facility, facility_id)
    if facility is None:
        # The registry's stream is consumed apart from the workforce's: its facility event may not be
        # here yet. Failing makes the consumer redeliver later, instead of dropping the alert.
        raise LookupError(f"facility {facility_id} not yet known from the registry's events")
    await raise_alert(
        session,
        facility=facility,
        type=type,
        severity=severity,
        source="workforce",
        at=as_utc(at),
        now=utcnow(),
        source_ref=source_ref,
        details=details,
    )


async def on_ban_issued(event: CloudEvent, session: AsyncSession) -> None:
    ban = payload_of(event, BanIssued)
    for place in ban.facilities:
        await _alert_for(
            session,
            facility_id=place.facility_id,
            type="ban_issued",
            severity="critical",
            at=ban.issued_at,
            source_ref=f"ban_issued:{ban.ban_id}:{place.facility_id}",
            details={
                "ban_id": ban.ban_id,
                "role": ban.role,
                "practitioner_id": ban.practitioner_id,
                "decision_ref": ban.decision_ref,
                "incident_id": ban.incident_id,
                "employment_id": place.employment_id,
            },
        )


async def on_hire_blocked(event: CloudEvent, session: AsyncSession) -> None:
    blocked = payload_of(event, HireBlocked)
    await _alert_for(
        session,
        facility_id=blocked.facility_id,
        type="hire_blocked",
        severity="high",
        at=blocked.blocked_at,
        source_ref=f"hire_blocked:{event.id}",
        details={"practitioner_id": blocked.practitioner_id, "reason": blocked.reason},
    )


async def on_ban_notification_unacknowledged(event: CloudEvent, session: AsyncSession) -> None:
    notice = payload_of(event, BanNotificationUnacknowledged)
    await _alert_for(
        session,
        facility_id=notice.facility_id,
        type="ban_notification_unacknowledged",
        severity="high",
        at=notice.notified_at,
        source_ref=f"ban_unacknowledged:{notice.ban_id}:{notice.facility_id}",
        details={"ban_id": notice.ban_id, "notified_at": notice.notified_at.isoformat()},
    )


async def on_employment_flagged(event: CloudEvent, session: AsyncSession) -> None:
    """A carer's health certificate (健康合格证明) lapsed: the facility must keep them off work."""
    flagged = payload_of(event, EmploymentFlagged)
    await _alert_for(
        session,
        facility_id=flagged.facility_id,
        type="employment_flagged",
        severity="high",
        at=datetime.combine(flagged.flagged_on, datetime.min.time(), tzinfo=SHANGHAI),
        source_ref=f"employment_flagged:{flagged.employment_id}:{flagged.flagged_on.isoformat()}",
        details={
            "employment_id": flagged.employment_id,
            "practitioner_id": flagged.practitioner_id,
            "reason": flagged.reason,
        },
    )


async def on_employment_suspended(event: CloudEvent, session: AsyncSession) -> None:
    """POLICE flagged the background check: the district decides by `decide_by` (T12)."""
    suspended = payload_of(event, EmploymentSuspended)
    await _alert_for(
        session,
        facility_id=suspended.facility_id,
        type="employment_suspended",
        severity="high",
        at=suspended.suspended_at,
        source_ref=f"employment_suspended:{suspended.employment_id}:{suspended.background_check_id}",
        details={
            "employment_id": suspended.employment_id,
            "practitioner_id": suspended.practitioner_id,
            "background_check_id": suspended.background_check_id,
            "decide_by": suspended.decide_by.isoformat(),
            "default_action": suspended.default_action,
        },
    )


async def on_staffing_assessed(event: CloudEvent, session: AsyncSession) -> None:
    """The workforce's verdict on a facility's ratios, for the risk score. One consumer reads the
    workforce's stream in order, so the latest assessment is the last one handled."""
    staffing = payload_of(event, StaffingAssessed)
    facility = await session.get(Facility, staffing.facility_id)
    if facility is None:
        raise LookupError(f"facility {staffing.facility_id} not yet known from the registry's events")
    facility.staffing_in_ratio = staffing.met
    facility.staffing_shortfall = staffing.shortfall


async def on_employment_changed(event: CloudEvent, session: AsyncSession) -> None:
    """Started or ended: one row per employment, whom a finding may name. An employment ends once,
    so an `ended` that came first is never undone by its late `started`."""
    facts = (
        payload_of(event, EmploymentEnded)
        if event.type == EmploymentEnded.event_type
        else payload_of(event, EmploymentStarted)
    )
    record = await session.get(EmploymentRecord, facts.employment_id, with_for_update=True)
    if record is None:
        record = EmploymentRecord(
            employment_id=facts.employment_id,
            practitioner_id=facts.practitioner_id,
            facility_id=facts.facility_id,
            updated_at=utcnow(),
        )
        session.add(record)
    if isinstance(facts, EmploymentEnded):
        record.end_date = facts.end_date
    else:
        record.start_date = facts.start_date
    record.updated_at = utcnow()


HANDLERS: dict[str, Handler] = {
    **{model.event_type: on_facility_changed for model in FACILITY_FACT_EVENTS},
    "cradle.workforce.ban.issued": on_ban_issued,
    "cradle.workforce.hire.blocked": on_hire_blocked,
    "cradle.workforce.ban_notification.unacknowledged": on_ban_notification_unacknowledged,
    "cradle.workforce.staffing.assessed": on_staffing_assessed,
    "cradle.workforce.employment.flagged": on_employment_flagged,
    "cradle.workforce.employment.suspended": on_employment_suspended,
    "cradle.workforce.employment.started": on_employment_changed,
    "cradle.workforce.employment.ended": on_employment_changed,
}
