"""Incidents (突发事件): reported by a facility, an inspector, a district, a parent or from an alert;
found `confirmed` or `unfounded` once. Two clocks run: the facility's report deadline (from the
occurrence) and the district's finding deadline (from the report). Every state change is a
transition row. Findings are in findings.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.config import MonitoringSettings
from services.monitoring.errors import FacilityNotFound
from services.monitoring.events import DeadlineMissed, IncidentReported
from services.monitoring.models import Alert, Facility, Incident, IncidentTransition
from services.monitoring.schemas import (
    URGENT_CATEGORIES,
    Escalation,
    IncidentCreate,
    ReporterKind,
)
from services.monitoring.service import alerts
from services.monitoring.service.access import is_parent
from services.monitoring.service.common import get_visible_facility
from shared.clock import as_utc, new_id
from shared.errors import invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity

# What each kind of caller may report as (the first is the default).
REPORTER_KINDS: dict[ClientKind, tuple[ReporterKind, ...]] = {
    ClientKind.operator: (ReporterKind.facility,),
    ClientKind.district: (ReporterKind.district, ReporterKind.inspector),
    ClientKind.bureau: (ReporterKind.bureau, ReporterKind.inspector),
    ClientKind.app: (ReporterKind.parent,),
    ClientKind.parent: (ReporterKind.parent,),
}
ACTIVE_ALERT = ("open", "acknowledged")


def report_deadline(settings: MonitoringSettings, category: str, occurred_at: datetime) -> datetime:
    hours = (
        settings.report_deadline_hours_urgent
        if category in URGENT_CATEGORIES
        else settings.report_deadline_hours_other
    )
    return occurred_at + timedelta(hours=hours)


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def check_occurred_at(value: datetime, *, now: datetime, settings: MonitoringSettings) -> None:
    if value > now + timedelta(seconds=settings.max_clock_skew_seconds):
        raise invalid("occurred_at", "is in the future")
    if value < EARLIEST:
        raise invalid("occurred_at", "is before 2000")


def reporter_kind_for(caller: Identity, asked: ReporterKind | None) -> ReporterKind:
    allowed = REPORTER_KINDS.get(caller.kind, ())
    if not allowed:
        raise invalid("reported_by_kind", f"a {caller.kind.value} client cannot report incidents")
    if asked is None:
        return allowed[0]
    if asked not in allowed:
        names = ", ".join(k.value for k in allowed)
        raise invalid("reported_by_kind", f"as a {caller.kind.value} client you report as: {names}")
    return asked


async def _facility_for_report(*, session: AsyncSession, caller: Identity, facility_id: str) -> Facility:
    """Parents (and the parents' app) may report about any approved facility; everyone else about
    the facilities they may see."""
    if is_parent(caller) or caller.kind == ClientKind.app:
        facility = await session.get(Facility, facility_id)
        if facility is None or facility.status != "approved":
            raise FacilityNotFound(tr("No approved facility {facility_id}.", facility_id=facility_id))
        return facility
    return await get_visible_facility(session=session, caller=caller, facility_id=facility_id)


async def _open(
    session: AsyncSession,
    *,
    facility: Facility,
    category: str,
    severity: str,
    description: str,
    practitioner_ids: list[str],
    occurred_at: datetime,
    reporter: ReporterKind,
    caller: Identity,
    settings: MonitoringSettings,
    now: datetime,
    alert_id: str | None = None,
) -> Incident:
    report_due_at = report_deadline(settings, category, occurred_at)
    # Only the facility is bound by the report deadline; others tell us what they saw, when they saw it.
    late = reporter == ReporterKind.facility and now > report_due_at
    incident = Incident(
        id=new_id(),
        facility_id=facility.id,
        district_code=facility.district_code,
        category=category,
        severity=severity,
        status="reported",
        description=description,
        practitioner_ids=sorted(set(practitioner_ids)),
        reported_by_kind=reporter.value,
        reporter_client_id=caller.client_id,
        alert_id=alert_id,
        occurred_at=occurred_at,
        reported_at=now,
        report_due_at=report_due_at,
        reported_late=late,
        finding_due_at=now + timedelta(hours=settings.finding_deadline_hours),
        updated_at=now,
    )
    session.add(incident)
    session.add(
        IncidentTransition(
            id=new_id(),
            incident_id=incident.id,
            to_status="reported",
            actor=caller.client_id,
            note=f"reported by {reporter.value}" + (" (late)" if late else ""),
            at=now,
        )
    )
    await session.flush()
    await emit(
        session,
        IncidentReported(
            incident_id=incident.id,
            facility_id=facility.id,
            district_code=facility.district_code,
            category=category,
            severity=severity,
            occurred_at=occurred_at,
            reported_at=now,
            reported_late=late,
            alert_id=alert_id,
        ),
    )
    if late:
        await alerts.raise_alert(
            session,
            facility=facility,
            type="incident_reported_late",
            severity="high",
            source="deadline",
            at=now,
            now=now,
            source_ref=f"report_late:{incident.id}",
            details={
                "incident_id": incident.id,
                "category": category,
                "occurred_at": occurred_at.isoformat(),
                "due_at": report_due_at.isoformat(),
            },
        )
        await emit(
            session,
            DeadlineMissed(
                incident_id=incident.id,
                facility_id=facility.id,
                district_code=facility.district_code,
                deadline="report",
                due_at=report_due_at,
                detected_at=now,
            ),
        )
    return incident


async def report(
    *,
    session: AsyncSession,
    caller: Identity,
    data: IncidentCreate,
    settings: MonitoringSettings,
    now: datetime,
) -> Incident:
    reporter = reporter_kind_for(caller, data.reported_by_kind)
    check_occurred_at(data.occurred_at, now=now, settings=settings)
    facility = await _facility_for_report(session=session, caller=caller, facility_id=data.facility_id)
    return await _open(
        session,
        facility=facility,
        category=data.category.value,
        severity=data.severity.value,
        description=data.description,
        practitioner_ids=data.practitioner_ids,
        occurred_at=data.occurred_at,
        reporter=reporter,
        caller=caller,
        settings=settings,
        now=now,
    )


async def escalate(
    *,
    session: AsyncSession,
    caller: Identity,
    alert: Alert,
    facility: Facility,
    data: Escalation,
    settings: MonitoringSettings,
    now: datetime,
) -> Incident:
    """The alert becomes an incident (reported by `alert`) and moves to `escalated`, pointing at it."""
    if alert.status not in ACTIVE_ALERT:
        raise alerts.TransitionNotAllowed(
            f"The alert is already {alert.status}"
            + (f" (incident {alert.incident_id})." if alert.incident_id else ".")
        )
    occurred_at = data.occurred_at or as_utc(alert.first_at)
    check_occurred_at(occurred_at, now=now, settings=settings)
    incident = await _open(
        session,
        facility=facility,
        category=data.category.value,
        severity=data.severity.value,
        description=data.description,
        practitioner_ids=data.practitioner_ids,
        occurred_at=occurred_at,
        reporter=ReporterKind.alert,
        caller=caller,
        settings=settings,
        now=now,
        alert_id=alert.id,
    )
    await alerts.transition(
        session,
        alert=alert,
        to_status="escalated",
        actor=caller.client_id,
        note=f"incident {incident.id}",
        now=now,
        incident_id=incident.id,
    )
    return incident
