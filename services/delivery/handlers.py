"""Every event the API's callers may see, from the four producing services' streams: stored once
(the consumer runner's inbox; a fetched batch in one transaction, `on_events`), its audience
recorded, a delivery owed to each subscription that may see it. Registry facility events also keep
the facility projection that decides those audiences, guidance's `family.linked` the parents' links
that decide what a parent's feed shows."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.service.log import link_parent, record_event, record_events, update_facility
from shared.contracts import EVENT_MODELS
from shared.contracts.guidance import FamilyLinked
from shared.contracts.registry import FacilityFacts
from shared.events.consumer import Handler
from shared.events.envelope import CloudEvent

SOURCES = ("registry", "workforce", "monitoring", "guidance")


async def on_event(event: CloudEvent, session: AsyncSession) -> None:
    await record_event(session=session, event=event)


async def on_facility_event(event: CloudEvent, session: AsyncSession) -> None:
    projection = await update_facility(session=session, event=event)
    await record_event(session=session, event=event)  # finds the projection held, not read again
    del projection


async def on_family_linked(event: CloudEvent, session: AsyncSession) -> None:
    await link_parent(session=session, event=event)
    await record_event(session=session, event=event)


async def on_events(events: Sequence[CloudEvent], session: AsyncSession) -> None:
    """A fetched batch, in one transaction: what the handlers below do, event by event."""
    await record_events(session=session, events=events)


def _handler(event_type: str) -> Handler:
    if event_type == FamilyLinked.event_type:
        return on_family_linked
    return on_facility_event if issubclass(EVENT_MODELS[event_type], FacilityFacts) else on_event


HANDLERS: dict[str, Handler] = {
    event_type: _handler(event_type)
    for event_type in sorted(EVENT_MODELS)
    if event_type.split(".")[1] in SOURCES
}
