"""Events the delivery service publishes: about its subscriptions, never about anyone's data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field

from shared.contracts.types import ClientId, Uuid, text
from shared.events.envelope import DomainEvent


class SubscriptionDisabled(DomainEvent):
    """A webhook whose every attempt failed for the configured time (3 days) is switched off; its
    owner is told through this event (on its own feed) and monitoring's alert."""

    event_type: ClassVar[str] = "cradle.delivery.subscription.disabled"

    subscription_id: Uuid
    client_id: ClientId
    url_host: text(255, min_length=1)
    failing_since: datetime
    pending_deliveries: Annotated[int, Field(ge=0)]
    disabled_at: datetime

    def subject_id(self) -> str:
        return self.subscription_id


EVENTS: tuple[type[DomainEvent], ...] = (SubscriptionDisabled,)
