"""Alerts: raised by CCTV events, silent cameras, the workforce's events and missed deadlines;
folded when they repeat; open → acknowledged → resolved, or escalated to an incident. Every state
change is a transition row and an event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.errors import AlertNotFound, TransitionNotAllowed
from services.monitoring.events import AlertChanged, AlertRaised
from services.monitoring.models import Alert, AlertTransition, Facility
from services.monitoring.schemas import AlertDetail, AlertRead, AlertTransitionRead
from services.monitoring.service.common import may_see, visible_facilities_clause
from shared.clock import as_utc, new_id
from shared.errors import invalid
from shared.events.deadletters import DeadLetter
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import Page, PageParams, make_page

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
# An event a consumer (any service's) gave up on: its effect has not happened anywhere it should.
DEAD_LETTER = "dead_letter"
ALERTING_SEVERITIES = frozenset({"low", "medium", "high", "critical"})
ACTIVE_STATUSES = ("open", "acknowledged")
ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "resolved", "escalated"}),
    "acknowledged": frozenset({"resolved", "escalated"}),
    "resolved": frozenset(),
    "escalated": frozenset(),
}


@dataclass(frozen=True, slots=True)
class Raised:
    alert: Alert
    created: bool  # False: folded into an active alert, or the source was seen before


async def raise_alert(
    session: AsyncSession,
    *,
    facility: Facility,
    type: str,
    severity: str,
    source: str,
    at: datetime,
    now: datetime,
    camera_id: str | None = None,
    source_ref: str | None = None,
    details: dict[str, Any] | None = None,
    fold_window: timedelta | None = None,
) -> Raised:
    """Open an alert, or fold it into the active one of the same type on the same camera (or, with no
    camera, the same facility) last seen within `fold_window`. `source_ref` names what caused it
    (an event, a deadline) so that a replay raises nothing twice. The caller holds the camera's or
    facility's row lock when folding matters (PostgreSQL), so two batches never both open one."""
    if source_ref is not None:
        seen = (
            await session.execute(select(Alert).where(Alert.source_ref == source_ref))
        ).scalar_one_or_none()
        if seen is not None:
            return Raised(seen, created=False)
    if fold_window is not None:
        same_target = Alert.camera_id == camera_id if camera_id else Alert.camera_id.is_(None)
        active = (
            await session.execute(
                select(Alert)
                .where(
                    same_target,
                    Alert.facility_id == facility.id,
                    Alert.type == type,
                    Alert.status.in_(ACTIVE_STATUSES),
                    Alert.last_at >= at - fold_window,
                )
                .order_by(Alert.last_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if active is not None:
            active.count += 1
            if at > as_utc(active.last_at):
                active.last_at = at
            active.updated_at = now
            return Raised(active, created=False)
    alert = Alert(
        id=new_id(),
        facility_id=facility.id,
        district_code=facility.district_code,
        camera_id=camera_id,
        type=type,
        severity=severity,
        status="open",
        source=source,
        source_ref=source_ref,
        count=1,
        first_at=at,
        last_at=at,
        raised_at=now,
        details=details or {},
        updated_at=now,
    )
    session.add(alert)
    session.add(
        AlertTransition(id=new_id(), alert_id=alert.id, to_status="open", actor=source, note=type, at=now)
    )
    await session.flush()
    await emit(
        session,
        AlertRaised(
            alert_id=alert.id,
            facility_id=facility.id,
            district_code=facility.district_code,
            camera_id=camera_id,
            type=type,
            severity=severity,
            status="open",
            count=1,
            source=source,
            raised_at=now,
        ),
    )
    return Raised(alert, created=True)


async def get_visible_alert(
    *, session: AsyncSession, caller: Identity, alert_id: str, for_update: bool = False
) -> tuple[Alert, Facility]:
    query = (
        select(Alert, Facility)
        .join(Facility, and_(Facility.id == Alert.facility_id))
        .where(Alert.id == alert_id)
    )
    if for_update:
        query = query.with_for_update(of=Alert)
    row = (await session.execute(query)).first()
    if row is None or not may_see(caller, row.Facility):
        raise AlertNotFound(tr("No alert {alert_id} that you may see.", alert_id=alert_id))
    return row.Alert, row.Facility


async def transition(
    session: AsyncSession,
    *,
    alert: Alert,
    to_status: str,
    actor: str,
    note: str,
    now: datetime,
    incident_id: str | None = None,
) -> Alert:
    if to_status not in ALLOWED[alert.status]:
        raise TransitionNotAllowed(
            tr(
                "An alert that is {status} cannot become {to_status}.",
                status=alert.status,
                to_status=to_status,
            )
        )
    session.add(
        AlertTransition(
            id=new_id(),
            alert_id=alert.id,
            from_status=alert.status,
            to_status=to_status,
            actor=actor,
            note=note,
            at=now,
        )
    )
    alert.status = to_status
    alert.version += 1
    alert.updated_at = now
    if incident_id is not None:
        alert.incident_id = incident_id
    await session.flush()
    await emit(
        session,
        AlertChanged(
            alert_id=alert.id,
            facility_id=alert.facility_id,
            district_code=alert.district_code,
            camera_id=alert.camera_id,
            type=alert.type,
            severity=alert.severity,
            status=to_status,
            count=alert.count,
            changed_at=now,
            incident_id=alert.incident_id,
        ),
    )
    return alert


async def raise_dead_letter_alert(
    session: AsyncSession, *, letter: DeadLetter, now: datetime
) -> Raised | None:
    """A critical alert on the facility the parked event is about, so its district and the city see
    it; once per dead letter (its place on the dead-letter stream). None when the event names no
    facility monitoring knows: /readyz of the consumer's service and `cradle dlq list` still show it."""
    facility = await session.get(Facility, letter.facility_id) if letter.facility_id else None
    if facility is None:
        return None
    return await raise_alert(
        session,
        facility=facility,
        type=DEAD_LETTER,
        severity="critical",
        source=DEAD_LETTER,
        at=as_utc(letter.dead_lettered_at) if letter.dead_lettered_at else now,
        now=now,
        source_ref=f"{DEAD_LETTER}:{letter.subject}:{letter.seq}"[:200],
        details={
            "service": letter.service,
            "consumer": letter.consumer,
            "event_id": letter.event_id,
            "event_type": letter.event_type,
            "reason": letter.reason[:500],
            "dead_letter_seq": letter.seq,
        },
    )


@dataclass(frozen=True)
class AlertFilters:
    facility_id: str | None = None
    district_code: str | None = None
    status: str | None = None
    severity: str | None = None
    type: str | None = None


def alert_read(alert: Alert) -> AlertRead:
    read = AlertRead.model_validate(alert, from_attributes=True)
    read.raised_at, read.first_at, read.last_at = (
        as_utc(alert.raised_at),
        as_utc(alert.first_at),
        as_utc(alert.last_at),
    )
    return read


async def list_alerts(
    *, session: AsyncSession, caller: Identity, filters: AlertFilters, paging: PageParams
) -> Page[AlertRead]:
    """Newest first, of the facilities the caller may see."""
    query = (
        select(Alert)
        .join(Facility, Facility.id == Alert.facility_id)
        .where(visible_facilities_clause(caller))
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(paging.limit + 1)
    )
    for column, value in (
        (Alert.facility_id, filters.facility_id),
        (Alert.district_code, filters.district_code),
        (Alert.status, filters.status),
        (Alert.severity, filters.severity),
        (Alert.type, filters.type),
    ):
        if value is not None:
            query = query.where(column == value)
    if paging.after:
        if len(paging.after) != 2:
            raise invalid("cursor", "is not a cursor this API returned")
        try:
            raised_at = datetime.fromisoformat(str(paging.after[0]))
        except ValueError:
            raise invalid("cursor", "is not a cursor this API returned") from None
        last_id = str(paging.after[1])
        query = query.where(
            or_(Alert.raised_at < raised_at, and_(Alert.raised_at == raised_at, Alert.id < last_id))
        )
    rows = [alert_read(alert) for alert in (await session.execute(query)).scalars()]
    return make_page(rows, limit=paging.limit, position_of=lambda a: [a.raised_at.isoformat(), a.id])


async def alert_detail(*, session: AsyncSession, alert: Alert) -> AlertDetail:
    history = (
        await session.execute(
            select(AlertTransition)
            .where(AlertTransition.alert_id == alert.id)
            .order_by(AlertTransition.at, AlertTransition.id)
        )
    ).scalars()
    read = alert_read(alert)
    return AlertDetail(
        **read.model_dump(),
        history=[
            AlertTransitionRead(
                from_status=t.from_status, to_status=t.to_status, actor=t.actor, note=t.note, at=as_utc(t.at)
            )
            for t in history
        ],
    )
