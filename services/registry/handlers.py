"""Events the registry consumes: the credit record and the public inspection history are written
from the monitoring and workforce services' events (contracts in docs/EVENTS.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.models import Facility, InspectionRecord
from services.registry.service.credit import OUTCOME_WORDS, describe_failed, entry_from_event
from shared.clock import shanghai_today
from shared.contracts import payload_of
from shared.contracts.monitoring import (
    ComplaintAnswered,
    DeadlineMissed,
    IncidentConfirmed,
    InspectionCompleted,
    RectificationCompleted,
    RectificationOverdue,
)
from shared.contracts.workforce import BanIssued
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent


async def on_inspection_completed(event: CloudEvent, session: AsyncSession) -> None:
    facts = payload_of(event, InspectionCompleted)
    if await session.get(Facility, facts.facility_id) is None:
        return
    failed = [i.model_dump(exclude_none=True) for i in facts.items if not i.passed]
    record = await session.get(InspectionRecord, facts.inspection_id)
    if record is None:
        session.add(
            InspectionRecord(
                inspection_id=facts.inspection_id,
                facility_id=facts.facility_id,
                inspected_on=facts.inspected_on,
                outcome=facts.outcome,
                failed_items=failed,
                rectify_by=facts.rectify_by,
                received_at=datetime.now(UTC),
            )
        )
    else:
        record.inspected_on, record.outcome = facts.inspected_on, facts.outcome
        record.failed_items, record.rectify_by = failed, facts.rectify_by
    if facts.outcome == "fail":
        words = "; ".join(item.description for item in describe_failed(failed)) or "—"
        await entry_from_event(
            session=session,
            facility_id=facts.facility_id,
            event_id=event.id,
            event_type=event.type,
            category="inspection_failed",
            title=f"监督检查{OUTCOME_WORDS['fail']} Inspection failed",
            detail=f"{facts.inspected_on}: {words}",
            occurred_on=facts.inspected_on,
        )


async def on_rectification_overdue(event: CloudEvent, session: AsyncSession) -> None:
    facts = payload_of(event, RectificationOverdue)
    await entry_from_event(
        session=session,
        facility_id=facts.facility_id,
        event_id=event.id,
        event_type=event.type,
        category="rectification_overdue",
        title="整改逾期 Rectification overdue",
        detail=f"due {facts.rectify_by}",
        occurred_on=facts.rectify_by,
    )


async def on_rectification_completed(event: CloudEvent, session: AsyncSession) -> None:
    facts = payload_of(event, RectificationCompleted)
    record = await session.get(InspectionRecord, facts.inspection_id)
    if record is not None:
        record.rectified_on = facts.rectified_on


async def on_incident_confirmed(event: CloudEvent, session: AsyncSession) -> None:
    facts = payload_of(event, IncidentConfirmed)
    await entry_from_event(
        session=session,
        facility_id=facts.facility_id,
        event_id=event.id,
        event_type=event.type,
        category="incident_confirmed",
        title="经查实的突发事件 Confirmed incident",
        detail=f"{facts.category}; decision {facts.decision_ref}",
        occurred_on=facts.decided_at.date(),
    )


async def on_ban_issued(event: CloudEvent, session: AsyncSession) -> None:
    """Every facility that employed the banned person gets an entry; no names are published."""
    facts = payload_of(event, BanIssued)
    role = (
        "直接管理人员 a responsible manager"
        if facts.role == "responsible_manager"
        else "从业人员 a staff member"
    )
    for affected in facts.facilities:
        await entry_from_event(
            session=session,
            facility_id=affected.facility_id,
            event_id=event.id,
            event_type=event.type,
            category="staff_banned",
            title="从业人员被终身禁入 A staff member was banned for life",
            detail=f"{role}; decision {facts.decision_ref}",
            occurred_on=facts.issued_at.date(),
        )


async def on_deadline_missed(event: CloudEvent, session: AsyncSession) -> None:
    """A facility that reported an incident late gets an entry. A district's overdue findings are the
    district's lapse, not the facility's: they stay an alert in monitoring, off the public record."""
    facts = payload_of(event, DeadlineMissed)
    if facts.deadline != "report":
        return
    await entry_from_event(
        session=session,
        facility_id=facts.facility_id,
        event_id=event.id,
        event_type=event.type,
        category="incident_reported_late",
        title="突发事件未按时报告 Incident reported late",
        detail=f"due {facts.due_at.isoformat(timespec='minutes')}",
        occurred_on=facts.detected_at.date(),
    )


COMPLAINT_OUTCOME_WORDS = {
    "founded": "投诉属实 Complaint founded",
    "partly_founded": "投诉部分属实 Complaint partly founded",
}


async def on_complaint_answered(event: CloudEvent, session: AsyncSession) -> None:
    """A complaint the district found founded, or partly founded, is an entry; an unfounded one is
    not. The complainant and the complaint's words stay in monitoring: the entry says what it was
    about."""
    facts = payload_of(event, ComplaintAnswered)
    title = COMPLAINT_OUTCOME_WORDS.get(facts.outcome)
    if title is None:
        return
    await entry_from_event(
        session=session,
        facility_id=facts.facility_id,
        event_id=event.id,
        event_type=event.type,
        category="complaint_founded",
        title=title,
        detail=f"{facts.category}; complaint {facts.complaint_id}",
        occurred_on=shanghai_today(facts.answered_at),
    )


HANDLERS: dict[str, Handler] = {
    "cradle.monitoring.inspection.completed": on_inspection_completed,
    "cradle.monitoring.rectification.overdue": on_rectification_overdue,
    "cradle.monitoring.rectification.completed": on_rectification_completed,
    "cradle.monitoring.incident.confirmed": on_incident_confirmed,
    "cradle.monitoring.deadline.missed": on_deadline_missed,
    "cradle.monitoring.complaint.answered": on_complaint_answered,
    "cradle.workforce.ban.issued": on_ban_issued,
}
