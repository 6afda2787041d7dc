"""OpenAPI operationIds clients can read and rely on: the route function's name in camelCase
(`issue_ban` → `issueBan`), or a name of its own where the function's reads badly as an operation
(`search_facilities` → `listFacilities`). Generated clients name their methods after these, so a
change is a breaking change (docs/API.md, Versioning); the merged document's test keeps them unique."""

from __future__ import annotations

from fastapi.routing import APIRoute

# Route function name (or `module:name`, where two services' functions share a name) → operationId,
# where the function's own name would mislead a client reading the document: a verb the other
# operations do not use, a noun with no verb, or a name another operation has.
OVERRIDES = {
    "gateway.router:rotate_secret": "rotateClientSecret",
    "services.delivery.router.subscriptions:rotate_secret": "rotateSubscriptionSecret",
    "get_subscription": "readSubscription",
    "list_attempts": "listDeliveryAttempts",
    "replay": "replayDeliveries",
    "read_feed": "listEvents",
    "stream_feed": "streamEvents",
    "search_facilities": "listFacilities",
    "public_search": "listPublicFacilities",
    "public_facility": "readPublicFacility",
    "public_credit_record": "readPublicCreditRecord",
    "facility_versions": "listFacilityVersions",
    "status_history": "listStatusHistory",
    "enrolment_history": "listEnrolmentReports",
    "read_inspections": "listFacilityInspections",
    "facility_profile": "readFacilityProfile",
    "plan_indicators": "listIndicators",
    "list_audit": "listAuditRecords",
    "get_camera": "readCamera",
    "get_alert": "readAlert",
    "ingest_events": "ingestCctvEvents",
    "facility_risk": "readFacilityRisk",
    "risk_ranking": "listRiskRanking",
    "monitoring_figures": "readMonitoringFigures",
    "read_figures": "readGuidanceFigures",
    "family_visits": "listFamilyHomeVisits",
    "family_bookings": "listFamilyBookings",
    "family_feed": "readFamilyFeed",
    "session_bookings": "listSessionBookings",
    "hire": "hirePractitioner",
    "ban_check": "checkBans",
    "ban_check_batch": "checkBansInBatch",
    "grade_history": "listGrades",
    "practitioner_training": "readPractitionerTraining",
    "background_check_queue": "listBackgroundCheckQueue",
    "ban_notifications": "listBanNotifications",
    "facility_staffing": "readFacilityStaffing",
    "out_of_ratio": "listOutOfRatioFacilities",
    "training_compliance": "readTrainingCompliance",
    "certification_compliance": "readCertificationCompliance",
    "recheck_summary": "readRecheckSummary",
    "authorization_server_metadata": "readAuthorizationServerMetadata",
}


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def operation_id(route: APIRoute) -> str:
    """FastAPI's `generate_unique_id_function` for every Cradle app (the gateway and each service)."""
    qualified = f"{getattr(route.endpoint, '__module__', '')}:{route.name}"
    return OVERRIDES.get(qualified) or OVERRIDES.get(route.name) or camel_case(route.name)
