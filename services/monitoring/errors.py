"""monitoring's error types, the watch's and the casework's (rendered by the one problem+json handler)."""

from shared.errors import Conflict, CradleError, NotFound


class FacilityNotFound(NotFound):
    title = "Facility not found"


class CameraNotFound(NotFound):
    title = "Camera not found"


class AlertNotFound(NotFound):
    title = "Alert not found"


class TransitionNotAllowed(Conflict):
    title = "State change not allowed"
    type = "/problems/state-change"


class BatchTooLarge(CradleError):
    status, title, type = 413, "Batch too large", "/problems/batch-too-large"


# ---- the casework ----------------------------------------------------------------------------


class IncidentNotFound(NotFound):
    title = "Incident not found"


class InspectionNotFound(NotFound):
    title = "Inspection not found"


class PlanNotFound(NotFound):
    title = "Inspection plan not found"


class InspectorNotFound(NotFound):
    title = "Inspector not found"


class AlreadyDecided(Conflict):
    title = "Already decided"
    type = "/problems/already-decided"


class NotEnoughInspectors(Conflict):
    title = "Not enough inspectors"
    type = "/problems/not-enough-inspectors"


class NothingToDraw(Conflict):
    title = "Nothing to draw"
    type = "/problems/nothing-to-draw"


# ---- complaints ------------------------------------------------------------------------------


class ComplaintNotFound(NotFound):
    title = "Complaint not found"
