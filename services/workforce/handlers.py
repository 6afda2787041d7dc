"""Events the workforce consumes, each handler idempotent by construction (the runner's inbox) and
tolerant of order (a stale event never overwrites a newer state)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import FacilityProjection
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent


class FacilityFacts(BaseModel):
    """What the workforce reads from registry facility events; other fields are ignored."""

    facility_id: str
    name: str
    district_code: str
    town_code: str
    status: str
    owner_client_id: str | None = None


async def on_facility_submitted(event: CloudEvent, session: AsyncSession) -> None:
    facts = FacilityFacts.model_validate(event.data)
    now = datetime.now(UTC)
    projection = await session.get(FacilityProjection, facts.facility_id)
    if projection is None:
        session.add(
            FacilityProjection(
                facility_id=facts.facility_id,
                name=facts.name,
                district_code=facts.district_code,
                town_code=facts.town_code,
                status=facts.status,
                owner_client_id=facts.owner_client_id,
                source_event_at=event.time,
                updated_at=now,
            )
        )
        return
    if _as_utc(projection.source_event_at) >= _as_utc(event.time):
        return  # a later event already shaped this row
    projection.name = facts.name
    projection.district_code = facts.district_code
    projection.town_code = facts.town_code
    projection.status = facts.status
    projection.owner_client_id = facts.owner_client_id
    projection.source_event_at = event.time
    projection.updated_at = now


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


HANDLERS: dict[str, Handler] = {
    "cradle.registry.facility.submitted": on_facility_submitted,
}
