"""Events the registry publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from shared.events.envelope import DomainEvent


class FacilitySubmitted(DomainEvent):
    event_type: ClassVar[str] = "cradle.registry.facility.submitted"

    facility_id: str
    name: str
    kind: str
    inclusive: bool
    town_code: str
    district_code: str
    status: str
    owner_client_id: str | None
    submitted_at: datetime

    def subject_id(self) -> str:
        return self.facility_id
