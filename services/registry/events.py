"""Events the registry publishes. Their payload models live in shared/contracts/registry.py, one definition
for this producer and every consumer (catalogue in docs/EVENTS.md)."""

from __future__ import annotations

from shared.contracts.registry import (
    AssessmentFacts,
    AssessmentRecorded,
    EnrolmentUpdated,
    EntryHealthCheckFacts,
    EntryHealthChecksReported,
    FacilityApproved,
    FacilityClosed,
    FacilityFacts,
    FacilityReinstated,
    FacilityRejected,
    FacilityReviewed,
    FacilitySubmitted,
    FacilitySuspended,
    FacilityUpdated,
    HealthAssessmentFacts,
    HealthAssessmentRecorded,
    OpeningHours,
    Places,
    QualityFrameworkPublished,
    ReviewFacts,
)

__all__ = [
    "AssessmentFacts",
    "AssessmentRecorded",
    "EnrolmentUpdated",
    "EntryHealthCheckFacts",
    "EntryHealthChecksReported",
    "FacilityApproved",
    "FacilityClosed",
    "FacilityFacts",
    "FacilityReinstated",
    "FacilityRejected",
    "FacilityReviewed",
    "FacilitySubmitted",
    "FacilitySuspended",
    "FacilityUpdated",
    "HealthAssessmentFacts",
    "HealthAssessmentRecorded",
    "OpeningHours",
    "Places",
    "QualityFrameworkPublished",
    "ReviewFacts",
]
