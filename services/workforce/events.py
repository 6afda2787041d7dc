"""Events the workforce publishes. Their payload models live in shared/contracts/workforce.py, one definition
for this producer and every consumer (catalogue in docs/EVENTS.md)."""

from __future__ import annotations

from shared.contracts.workforce import (
    AgeClassStaffingFacts,
    BackgroundCheckRequested,
    BanIssued,
    BannedAt,
    BanNotificationUnacknowledged,
    BanRescinded,
    CertificateAdded,
    CertificateExpired,
    EmploymentEnded,
    EmploymentFlagged,
    EmploymentReinstated,
    EmploymentStarted,
    EmploymentSuspended,
    EmploymentUpdated,
    HireBlocked,
    PractitionerRegistered,
    StaffingAssessed,
    TrainingRecorded,
)

__all__ = [
    "AgeClassStaffingFacts",
    "BackgroundCheckRequested",
    "BanIssued",
    "BanNotificationUnacknowledged",
    "BanRescinded",
    "BannedAt",
    "CertificateAdded",
    "CertificateExpired",
    "EmploymentEnded",
    "EmploymentFlagged",
    "EmploymentReinstated",
    "EmploymentStarted",
    "EmploymentSuspended",
    "EmploymentUpdated",
    "HireBlocked",
    "PractitionerRegistered",
    "StaffingAssessed",
    "TrainingRecorded",
]
