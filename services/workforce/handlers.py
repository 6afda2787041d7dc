"""Events the workforce consumes, each handler idempotent by construction (the runner's inbox) and
tolerant of order (a stale event never overwrites a newer state)."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import Employment, FacilityProjection, Practitioner
from services.workforce.service import staffing
from services.workforce.service.bans import ban_practitioner_for_incident
from shared.clock import as_utc, shanghai_today, utcnow
from shared.contracts import payload_of
from shared.contracts.monitoring import IncidentConfirmed
from shared.contracts.registry import FACILITY_FACT_EVENTS, FacilityFacts
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent

log = structlog.get_logger("cradle.workforce.handlers")


def _position(version: int | None, moment: datetime) -> tuple[int, datetime]:
    return (version or 0, as_utc(moment))  # a row made before projections kept versions has none


async def on_facility_changed(event: CloudEvent, session: AsyncSession) -> None:
    """Every registry facility event carries the facility's current facts: keep the newest, by the
    facility's version and then the event's time."""
    facts = payload_of(event, FacilityFacts)
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
    projection.version = facts.version
    projection.capacity_infant = facts.capacity.infant
    projection.capacity_toddler = facts.capacity.toddler
    projection.capacity_preschool = facts.capacity.preschool
    projection.enrolment_infant = facts.enrolment.infant
    projection.enrolment_toddler = facts.enrolment.toddler
    projection.enrolment_preschool = facts.enrolment.preschool
    projection.source_event_at = event.time
    projection.updated_at = utcnow()
    if projection.status == "approved":
        await session.flush()
        await staffing.announce(session, [projection.facility_id])


on_facility_submitted = on_facility_changed


class FindingNamesStrangers(Exception):
    """A confirmed finding names someone the facility did not employ at or after the incident: nobody
    is banned on its word, and the event is dead-lettered, where operators look."""


async def _not_employed_there(
    session: AsyncSession, *, incident: IncidentConfirmed, practitioner_ids: list[str]
) -> list[str]:
    """The named people with no employment at the incident's facility lasting to the incident's day."""
    since = shanghai_today(incident.occurred_at or incident.decided_at)
    rows = await session.execute(
        select(Employment.practitioner_id).where(
            Employment.facility_id == incident.facility_id,
            Employment.practitioner_id.in_(practitioner_ids),
            or_(Employment.end_date.is_(None), Employment.end_date >= since),
        )
    )
    employed = set(rows.scalars())
    return [pid for pid in practitioner_ids if pid not in employed]


async def on_incident_confirmed(event: CloudEvent, session: AsyncSession) -> None:
    """A confirmed finding bans every named abuser and responsible manager, once: the inbox drops a
    redelivery, and a re-publish under a new event id finds the ban of this incident already there.
    Every named person is checked first (defence in depth): one stranger, and nobody is banned."""
    incident = payload_of(event, IncidentConfirmed)
    named = [(pid, "abuser") for pid in incident.abuser_practitioner_ids] + [
        (pid, "responsible_manager") for pid in incident.responsible_manager_ids
    ]
    # The contract guarantees well-formed ids; whether they worked there is ours to check.
    strangers = await _not_employed_there(
        session, incident=incident, practitioner_ids=sorted({pid for pid, _ in named})
    )
    if strangers:
        log.error(
            "incident_names_people_not_employed_there",
            incident_id=incident.incident_id,
            facility_id=incident.facility_id,
            practitioner_ids=strangers,
        )
        raise FindingNamesStrangers(
            f"incident {incident.incident_id} names people not employed at facility "
            f"{incident.facility_id} at or after the incident: {', '.join(strangers)}; nobody was banned"
        )
    seen: set[str] = set()
    for practitioner_id, role in named:
        if practitioner_id in seen:
            continue  # named twice (abuser and manager): the abuser's ban stands
        seen.add(practitioner_id)
        practitioner = (
            await session.execute(select(Practitioner).where(Practitioner.id == practitioner_id))
        ).scalar_one()  # an employment row names them, so they exist
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
    **{model.event_type: on_facility_changed for model in FACILITY_FACT_EVENTS},
    "cradle.monitoring.incident.confirmed": on_incident_confirmed,
}
