"""Events the monitoring service publishes. Their payload models live in
shared/contracts/monitoring.py, one definition for this producer and every consumer (docs/EVENTS.md).

The casework's own events about findings under review (`finding.proposed`, `finding.rejected`)
name no person and ban nobody: only `incident.confirmed`, published when a finding is final, does."""

from __future__ import annotations

from shared.contracts.monitoring import (
    AlertChanged,
    AlertFacts,
    AlertRaised,
    CameraRegistered,
    ComplaintAcknowledged,
    ComplaintAnswered,
    ComplaintEscalated,
    ComplaintLodged,
    DeadlineMissed,
    FindingProposed,
    FindingRejected,
    IncidentConfirmed,
    IncidentReported,
    IncidentUnfounded,
    InspectionCompleted,
    InspectionItem,
    InspectionPlanDrawn,
    RectificationCompleted,
    RectificationOverdue,
)

__all__ = [
    "AlertChanged",
    "AlertFacts",
    "AlertRaised",
    "CameraRegistered",
    "ComplaintAcknowledged",
    "ComplaintAnswered",
    "ComplaintEscalated",
    "ComplaintLodged",
    "DeadlineMissed",
    "FindingProposed",
    "FindingRejected",
    "IncidentConfirmed",
    "IncidentReported",
    "IncidentUnfounded",
    "InspectionCompleted",
    "InspectionItem",
    "InspectionPlanDrawn",
    "RectificationCompleted",
    "RectificationOverdue",
]
