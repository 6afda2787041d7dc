"""Events the workforce consumes, each handler idempotent by construction (the runner's inbox) and
tolerant of order (a stale event never overwrites a newer state)."""

from __future__ import annotations

import re
from datetime import datetime

import structlog
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import FacilityProjection, Practitioner
from services.workforce.service import staffing
from services.workforce.service.bans import ban_practitioner_for_incident
from services.workforce.service.common import as_utc, utcnow
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent

log = structlog.get_logger("cradle.workforce.handlers")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class PerAgeClass(BaseModel):
    infant: int = Field(default=0, ge=0)
    toddler: int = Field(default=0, ge=0)
    preschool: int = Field(default=0, ge=0)


class FacilityFacts(BaseModel):
    """What the workforce reads from registry facility events; other fields are ignored."""

    facility_id: str
    name: str
    district_code: str
    town_code: str
    status: str
    owner_client_id: str | None = None
    capacity: PerAgeClass | None = None
    enrolment: PerAgeClass | None = None
    version: int | None = None


def _position(version: int | None, moment: datetime) -> tuple[int, datetime]:
    return (version or 0, as_utc(moment))


async def on_facility_changed(event: CloudEvent, session: AsyncSession) -> None:
    """Every registry facility event carries the facility's current facts: keep the newest, by the
    facility's version and then the event's time."""
    facts = FacilityFacts.model_validate(event.data)
    projection = await session.get(FacilityProjection, facts.facility_id)
    if projection is None:
        projection = FacilityProjection(
            facility_id=facts.facility_id,
            name=facts.name,
            district_code=facts.district_code,
            town_code=facts.town_code,
            status=facts.status,
            source_event_at=event.time,
            updated_at=utcnow(),
        )
        session.add(projection)
    elif _position(facts.version, event.time) <= _position(projection.version, projection.source_event_at):
        return  # a later event already shaped this row
    projection.name = facts.name
    projection.district_code = facts.district_code
    projection.town_code = facts.town_code
    projection.status = facts.status
    projection.owner_client_id = facts.owner_client_id
    projection.version = facts.version or 0
    if facts.capacity is not None:
        projection.capacity_infant = facts.capacity.infant
        projection.capacity_toddler = facts.capacity.toddler
        projection.capacity_preschool = facts.capacity.preschool
    if facts.enrolment is not None:
        projection.enrolment_infant = facts.enrolment.infant
        projection.enrolment_toddler = facts.enrolment.toddler
        projection.enrolment_preschool = facts.enrolment.preschool
    projection.source_event_at = event.time
    projection.updated_at = utcnow()
    if facts.enrolment is not None and projection.status == "approved":
        await session.flush()
        await staffing.announce(session, [projection.facility_id])


on_facility_submitted = on_facility_changed


class IncidentConfirmed(BaseModel):
    incident_id: str
    facility_id: str
    district_code: str
    category: str
    decision_ref: str = Field(min_length=1, max_length=100)
    decided_at: datetime
    abuser_practitioner_ids: list[str] = Field(default_factory=list)
    responsible_manager_ids: list[str] = Field(default_factory=list)


async def on_incident_confirmed(event: CloudEvent, session: AsyncSession) -> None:
    """A confirmed finding bans every named abuser and responsible manager, once: the inbox drops a
    redelivery, and a re-publish under a new event id finds the ban of this incident already there."""
    incident = IncidentConfirmed.model_validate(event.data)
    named = [(pid, "abuser") for pid in incident.abuser_practitioner_ids] + [
        (pid, "responsible_manager") for pid in incident.responsible_manager_ids
    ]
    seen: set[str] = set()
    for practitioner_id, role in named:
        if not UUID.match(practitioner_id):
            log.error("incident_names_malformed_id", incident_id=incident.incident_id, role=role)
            continue
        if practitioner_id in seen:
            continue  # named twice (abuser and manager): the abuser's ban stands
        seen.add(practitioner_id)
        practitioner = (
            await session.execute(select(Practitioner).where(Practitioner.id == practitioner_id))
        ).scalar_one_or_none()
        if practitioner is None:
            # Not ours to invent: the others are still banned, and this is logged for the district.
            log.error(
                "incident_names_unknown_practitioner",
                incident_id=incident.incident_id,
                practitioner_id=practitioner_id,
            )
            continue
        await ban_practitioner_for_incident(
            session=session,
            practitioner=practitioner,
            role=role,
            incident_id=incident.incident_id,
            decision_ref=incident.decision_ref,
            reason=f"Confirmed incident {incident.incident_id} ({incident.category}) at facility "
            f"{incident.facility_id}: {role.replace('_', ' ')}",
        )


HANDLERS: dict[str, Handler] = {
    "cradle.registry.facility.submitted": on_facility_changed,
    "cradle.registry.facility.approved": on_facility_changed,
    "cradle.registry.facility.rejected": on_facility_changed,
    "cradle.registry.facility.suspended": on_facility_changed,
    "cradle.registry.facility.closed": on_facility_changed,
    "cradle.registry.facility.reinstated": on_facility_changed,
    "cradle.registry.facility.updated": on_facility_changed,
    "cradle.registry.enrolment.updated": on_facility_changed,
    "cradle.monitoring.incident.confirmed": on_incident_confirmed,
}
