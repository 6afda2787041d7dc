"""Events the monitoring service publishes. Their payload models live in
shared/contracts/monitoring.py, one definition for this producer and every consumer (docs/EVENTS.md)."""

from __future__ import annotations

from shared.contracts.monitoring import (
    AlertChanged,
    AlertFacts,
    AlertRaised,
    CameraRegistered,
    DeadlineMissed,
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
    "DeadlineMissed",
    "IncidentConfirmed",
    "IncidentReported",
    "IncidentUnfounded",
    "InspectionCompleted",
    "InspectionItem",
    "InspectionPlanDrawn",
    "RectificationCompleted",
    "RectificationOverdue",
]
