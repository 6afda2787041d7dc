"""Scheduled casework: incidents whose finding is overdue and rectifications past their deadline.
Each raises one alert and one event, once: the row is marked in the same transaction, the alert
carries a unique `source_ref`, and on PostgreSQL rows are claimed with SKIP LOCKED so replicas
never take the same one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitoring.casework.service.risk import local_today
from services.monitoring.config import MonitoringSettings
from services.monitoring.events import DeadlineMissed, RectificationOverdue
from services.monitoring.models import Facility, Incident, IncidentTransition, Inspection
from services.monitoring.service.alerts import raise_alert
from services.monitoring.service.common import as_utc, new_id
from shared.db import session_scope
from shared.events.outbox import emit

CHUNK = 200


async def flag_overdue_findings(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> int:
    flagged = 0
    while True:
        async with session_scope(maker) as session:
            rows = (
                await session.execute(
                    select(Incident, Facility)
                    .join(Facility, Facility.id == Incident.facility_id)
                    .where(
                        Incident.status == "reported",
                        Incident.finding_due_at < now,
                        Incident.finding_overdue_at.is_(None),
                    )
                    .order_by(Incident.finding_due_at, Incident.id)
                    .limit(CHUNK)
                    .with_for_update(of=Incident, skip_locked=True)
                )
            ).all()
            for incident, facility in rows:
                due_at = as_utc(incident.finding_due_at)
                incident.finding_overdue_at = now
                incident.updated_at = now
                session.add(
                    IncidentTransition(
                        id=new_id(),
                        incident_id=incident.id,
                        from_status=incident.status,
                        to_status=incident.status,
                        actor="deadline",
                        note=f"no finding by {due_at.isoformat()}",
                        at=now,
                    )
                )
                await raise_alert(
                    session,
                    facility=facility,
                    type="finding_overdue",
                    severity="high",
                    source="deadline",
                    at=now,
                    now=now,
                    source_ref=f"finding_overdue:{incident.id}",
                    details={
                        "incident_id": incident.id,
                        "category": incident.category,
                        "due_at": due_at.isoformat(),
                    },
                )
                await emit(
                    session,
                    DeadlineMissed(
                        incident_id=incident.id,
                        facility_id=incident.facility_id,
                        district_code=incident.district_code,
                        deadline="finding",
                        due_at=due_at,
                        detected_at=now,
                    ),
                )
        flagged += len(rows)
        if len(rows) < CHUNK:
            return flagged


async def flag_overdue_rectifications(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> int:
    today = local_today(now, settings)
    flagged = 0
    while True:
        async with session_scope(maker) as session:
            rows = (
                await session.execute(
                    select(Inspection, Facility)
                    .join(Facility, Facility.id == Inspection.facility_id)
                    .where(
                        Inspection.status == "completed",
                        Inspection.rectify_by < today,
                        Inspection.rectified_on.is_(None),
                        Inspection.rectification_overdue_at.is_(None),
                    )
                    .order_by(Inspection.rectify_by, Inspection.id)
                    .limit(CHUNK)
                    .with_for_update(of=Inspection, skip_locked=True)
                )
            ).all()
            for inspection, facility in rows:
                assert inspection.rectify_by is not None  # the query asks for it
                inspection.rectification_overdue_at = now
                inspection.updated_at = now
                await raise_alert(
                    session,
                    facility=facility,
                    type="rectification_overdue",
                    severity="high",
                    source="rectification",
                    at=now,
                    now=now,
                    source_ref=f"rectification_overdue:{inspection.id}",
                    details={"inspection_id": inspection.id, "rectify_by": inspection.rectify_by.isoformat()},
                )
                await emit(
                    session,
                    RectificationOverdue(
                        inspection_id=inspection.id,
                        facility_id=inspection.facility_id,
                        district_code=inspection.district_code,
                        rectify_by=inspection.rectify_by,
                    ),
                )
        flagged += len(rows)
        if len(rows) < CHUNK:
            return flagged


async def run_due(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> dict[str, int]:
    """Returns what it did, by name (counts)."""
    return {
        "findings_overdue": await flag_overdue_findings(maker=maker, settings=settings, now=now),
        "rectifications_overdue": await flag_overdue_rectifications(maker=maker, settings=settings, now=now),
    }
