"""Scheduled work: offline cameras, the retention of routine events, the casework's deadlines and
complaints past theirs.
Each is a plain function of `now`, so tests run them at any moment; the app runs them every
`jobs_interval_seconds`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import and_, delete, exists, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.monitoring.config import MonitoringSettings
from services.monitoring.events import DeadlineMissed, RectificationOverdue
from services.monitoring.models import (
    Alert,
    Camera,
    CctvEvent,
    Facility,
    Incident,
    IncidentTransition,
    Inspection,
)
from services.monitoring.service import complaints
from services.monitoring.service.alerts import ACTIVE_STATUSES, raise_alert
from services.monitoring.service.risk import local_today
from shared.bounded import raise_if_cancelling
from shared.clock import as_utc, new_id, utcnow
from shared.db import session_scope
from shared.events.outbox import emit
from shared.jobs import round_alone

log = structlog.get_logger("cradle.monitoring.jobs")

OFFLINE = "camera_offline"
PURGE_CHUNK = 5000
DEADLINE_CHUNK = 200


def opened_at(opening_hours: list[dict[str, object]], local: datetime) -> datetime | None:
    """When the facility opened in the current opening period, or None if it is closed now."""
    today = local.isoweekday()
    now_hm = local.strftime("%H:%M")
    for period in opening_hours:
        days = period.get("days") or []
        opens, closes = str(period.get("opens", "")), str(period.get("closes", ""))
        if today in days and opens <= now_hm < closes:
            hour, minute = (int(part) for part in opens.split(":"))
            return datetime.combine(local.date(), time(hour, minute), tzinfo=local.tzinfo)
    return None


async def raise_offline_alerts(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> int:
    """A camera of an approved facility silent for longer than `offline_after_seconds` of the
    current opening period raises one alert (none while an earlier one is still active)."""
    silence = timedelta(seconds=settings.offline_after_seconds)
    zone = ZoneInfo(settings.timezone)
    local = now.astimezone(zone)
    already_alerted = exists().where(
        Alert.camera_id == Camera.id, Alert.type == OFFLINE, Alert.status.in_(ACTIVE_STATUSES)
    )
    raised = 0
    async with session_scope(maker) as session:
        rows = (
            await session.execute(
                select(Camera.id, Camera.last_seen_at, Camera.registered_at, Facility)
                .join(Facility, Facility.id == Camera.facility_id)
                .where(
                    Camera.active,
                    Facility.status == "approved",
                    or_(
                        Camera.last_seen_at < now - silence,
                        and_(Camera.last_seen_at.is_(None), Camera.registered_at < now - silence),
                    ),
                    ~already_alerted,
                )
            )
        ).all()
        for row in rows:
            opened = opened_at(row.Facility.opening_hours, local)
            if opened is None:
                continue
            heard = as_utc(row.last_seen_at) if row.last_seen_at else as_utc(row.registered_at)
            silent_since = max(heard, opened)
            if now - silent_since <= silence:
                continue
            await raise_alert(
                session,
                facility=row.Facility,
                type=OFFLINE,
                severity="high",
                source="offline",
                at=now,
                now=now,
                camera_id=row.id,
                details={
                    "silent_since": silent_since.isoformat(),
                    "last_seen_at": row.last_seen_at and heard.isoformat(),
                },
            )
            raised += 1
    return raised


async def purge_routine_events(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> int:
    """Routine events older than the retention go, in chunks so writers are never held up long;
    alerts and incidents keep their own copy of what they need."""
    cutoff = now - timedelta(days=settings.event_retention_days)
    purged = 0
    while True:
        async with session_scope(maker) as session:
            key = tuple_(CctvEvent.id_ms, CctvEvent.dedup_key)
            chunk = (
                select(CctvEvent.id_ms, CctvEvent.dedup_key)
                .where(CctvEvent.received_at < cutoff)
                .limit(PURGE_CHUNK)
            )
            result = await session.execute(delete(CctvEvent).where(key.in_(chunk)))
        purged += result.rowcount or 0
        if (result.rowcount or 0) < PURGE_CHUNK:
            return purged


# ---- the casework's deadlines ---------------------------------------------------------------
# Scheduled casework: incidents whose finding is overdue and rectifications past their deadline.
# Each raises one alert and one event, once: the row is marked in the same transaction, the alert
# carries a unique `source_ref`, and on PostgreSQL rows are claimed with SKIP LOCKED so replicas
# never take the same one.


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
                    .limit(DEADLINE_CHUNK)
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
        if len(rows) < DEADLINE_CHUNK:
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
                    .limit(DEADLINE_CHUNK)
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
        if len(rows) < DEADLINE_CHUNK:
            return flagged


async def escalate_late_complaints(*, maker: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Complaints not acknowledged or not answered in time go to the city, once per deadline."""
    escalated = 0
    while True:
        async with session_scope(maker) as session:
            done = await complaints.escalate_late(session=session, now=now)
        escalated += done
        if done < complaints.LATE_CHUNK:
            return escalated


async def flag_missed_deadlines(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> dict[str, int]:
    """The casework's deadlines; returns what it did, by name (counts)."""
    return {
        "findings_overdue": await flag_overdue_findings(maker=maker, settings=settings, now=now),
        "rectifications_overdue": await flag_overdue_rectifications(maker=maker, settings=settings, now=now),
        "complaints_escalated": await escalate_late_complaints(maker=maker, now=now),
    }


async def run_due_jobs(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> dict[str, int]:
    report = {
        "offline_alerts": await raise_offline_alerts(maker=maker, settings=settings, now=now),
        "events_purged": await purge_routine_events(maker=maker, settings=settings, now=now),
    }
    report |= await flag_missed_deadlines(maker=maker, settings=settings, now=now)
    return report


async def run_round(
    *, maker: async_sessionmaker[AsyncSession], settings: MonitoringSettings, now: datetime
) -> dict[str, int] | None:
    """The due jobs, when no other replica is running them (shared/jobs.py); None when one is."""
    async with round_alone(maker, "monitoring.jobs") as mine:
        return await run_due_jobs(maker=maker, settings=settings, now=now) if mine else None


async def run_forever(
    *,
    maker: async_sessionmaker[AsyncSession],
    settings: MonitoringSettings,
    interval_seconds: float,
    before: Callable[[], Awaitable[object]] | None = None,
) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            if before is not None:
                await before()  # the cameras' last-seen times, so none looks silent by mistake
            report = await run_round(maker=maker, settings=settings, now=utcnow())
            if report and any(report.values()):
                log.info("jobs_ran", **report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the scheduler must outlive a database hiccup
            raise_if_cancelling()
            log.warning("jobs_failed", error=f"{type(exc).__name__}: {exc}"[:300])
