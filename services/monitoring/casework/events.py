"""The casework's own events about findings under review (docs/EVENTS.md). Neither names a person
nor bans anyone: only `incident.confirmed`, published when a finding is final, does."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from shared.events.envelope import DomainEvent


class FindingProposed(DomainEvent):
    """A district's abuse finding, waiting for EDU's confirmation."""

    event_type: ClassVar[str] = "cradle.monitoring.finding.proposed"
    finding_id: str
    incident_id: str
    facility_id: str
    district_code: str
    category: str
    decision_ref: str
    proposed_at: datetime

    def subject_id(self) -> str:
        return self.incident_id


class FindingRejected(DomainEvent):
    """EDU rejected a proposed finding: the incident is open for a new finding."""

    event_type: ClassVar[str] = "cradle.monitoring.finding.rejected"
    finding_id: str
    incident_id: str
    facility_id: str
    district_code: str
    reason: str
    rejected_at: datetime

    def subject_id(self) -> str:
        return self.incident_id
